"""agrisat: dynamic credit limits for farmers from Sentinel-2 crop monitoring.

The data flow (see DESIGN.md) is visible in the module names:
plots -> io.tiles (cube) -> scenes (mask) -> indices (NDVI) -> zonal (per-plot series)
-> growth -> yields -> credit, wired by ``pipelines/seasonal.py``.
"""

__version__ = "0.1.0"
