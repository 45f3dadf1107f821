"""One exception tree for everything a user can hit.

    AgrisatError
    ├── ConfigError(AgrisatError, ValueError)        bad or missing configuration value
    ├── InputDataError(AgrisatError, ValueError)     bad input table or file: names file, row, id
    │   ├── PlotError                                a plot that cannot be used (names plot_id)
    │   └── UnknownCropError                         a crop missing from configs/crops.yaml
    ├── ImageryError(AgrisatError, OSError)          tiles missing, unreadable, wrong grid
    │   └── MissingBandError                         a band the pipeline needs is not there
    └── RunStoreError(AgrisatError, OSError)         run folder cannot be written or found

Each message names the culprit (file, row, plot, farmer) so the CLI can print it as one line.
"""

from __future__ import annotations


class AgrisatError(Exception):
    """Root of every error agrisat raises on purpose."""


class ConfigError(AgrisatError, ValueError):
    """A configuration file or value is missing or invalid."""


class InputDataError(AgrisatError, ValueError):
    """An input table or vector file is malformed."""


class PlotError(InputDataError):
    """A plot geometry or attribute cannot be used."""


class UnknownCropError(InputDataError):
    """A plot declares a crop that the crop table does not know."""


class ImageryError(AgrisatError, OSError):
    """Imagery is missing, unreadable or not on the expected grid."""


class MissingBandError(ImageryError):
    """A requested band is not present in the imagery index."""


class RunStoreError(AgrisatError, OSError):
    """A run folder cannot be written, or a run cannot be found."""
