"""Yield estimates with uncertainty.

Walking-skeleton relation (documented in configs/crops.yaml): the crop's reference yield scaled by
the plot's peak NDVI relative to the crop's reference peak, capped at 115% of reference. Uncertainty
is a normal band with the crop's relative standard deviation, so P10/P90 = P50 -/+ 1.2816 sd.
Plots whose growth flags say we cannot see the crop get no estimate (NaN), never an invented one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agrisat.config import CropTable
from agrisat.growth import EXCLUDING_GROWTH_FLAGS

Z90 = 1.2815515655446004  # standard normal quantile at 0.90
MAX_RELATIVE_TO_REFERENCE = 1.15


def model_version(crops: CropTable) -> str:
    return f"empirical-peak-ndvi/{crops.version}"


def _crop_column(plots: pd.DataFrame, ids: pd.Series, crops: CropTable, attr: str) -> np.ndarray:
    """``attr`` of each plot's declared crop (unknown crops name their first plot), per crop not per plot."""
    crop = ids.map(plots.drop_duplicates("plot_id").set_index("plot_id")["declared_crop"].astype(str))
    values = {c: getattr(crops.get(c, plot_id=str(ids[crop == c].iloc[0])), attr) for c in crop.unique()}
    return crop.map(values).to_numpy(float)


def estimate_yield(growth: pd.DataFrame, plots: pd.DataFrame, crops: CropTable) -> pd.DataFrame:
    """Per plot: ``yield_p10, yield_p50, yield_p90`` (t/ha), ``yield_method``."""
    ids = growth["plot_id"].reset_index(drop=True)
    peak = growth["peak_ndvi"].to_numpy(float)
    excluded = np.array([any(f in EXCLUDING_GROWTH_FLAGS for f in flags) for flags in growth["growth_flags"]], dtype=bool)
    none = excluded | ~np.isfinite(peak)
    ref_y, ref_peak = _crop_column(plots, ids, crops, "reference_yield_t_ha"), _crop_column(plots, ids, crops, "reference_peak_ndvi")
    sd_rel = _crop_column(plots, ids, crops, "relative_sd")
    ratio = np.minimum(np.maximum(peak, 0.0) / ref_peak, MAX_RELATIVE_TO_REFERENCE)
    p50 = ref_y * ratio
    sd = sd_rel * p50
    nan = np.nan
    return pd.DataFrame({"plot_id": ids, "yield_p10": np.where(none, nan, np.maximum(p50 - Z90 * sd, 0.0)),
                         "yield_p50": np.where(none, nan, p50), "yield_p90": np.where(none, nan, p50 + Z90 * sd),
                         "yield_method": np.where(none, "none", "empirical_peak_ndvi").astype(object)})


def prior_yield(plots: pd.DataFrame, crops: CropTable, relative_sd: float) -> pd.DataFrame:
    """Before the crop is visible (planting stage): the crop's reference yield with a wide band."""
    ids = plots["plot_id"].reset_index(drop=True)
    p50 = _crop_column(plots, ids, crops, "reference_yield_t_ha")
    sd = relative_sd * p50
    return pd.DataFrame({"plot_id": ids, "yield_p10": np.maximum(p50 - Z90 * sd, 0.0), "yield_p50": p50,
                         "yield_p90": p50 + Z90 * sd, "yield_method": "prior_reference"})


def with_model(empirical: pd.DataFrame, model_q: pd.DataFrame, model_id: str) -> pd.DataFrame:
    """Take the trained model's quantiles where it has them, the empirical relation elsewhere.

    ``empirical`` is estimate_yield's output; ``model_q`` has ``yield_p10/p50/p90`` on the same rows
    (NaN where the crop has no model). Plots without an empirical estimate (excluded by growth flags)
    get none from the model either: the flags say we cannot see the crop.
    """
    out = empirical.copy()
    use = model_q["yield_p50"].notna().to_numpy() & (out["yield_method"] != "none").to_numpy()
    for col in ("yield_p10", "yield_p50", "yield_p90"):
        out.loc[use, col] = model_q.loc[use, col].astype(float).to_numpy()
    out.loc[use, "yield_method"] = f"model:{model_id}"
    out.loc[~use & (out["yield_method"] != "none"), "yield_method"] = "empirical_fallback"
    return out
