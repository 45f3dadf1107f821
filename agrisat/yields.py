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


def estimate_yield(growth: pd.DataFrame, plots: pd.DataFrame, crops: CropTable) -> pd.DataFrame:
    """Per plot: ``yield_p10, yield_p50, yield_p90`` (t/ha), ``yield_method``."""
    crop_of = dict(zip(plots["plot_id"], plots["declared_crop"]))
    rows = []
    for pid, peak, flags in zip(growth["plot_id"], growth["peak_ndvi"], growth["growth_flags"]):
        c = crops.get(str(crop_of[pid]), plot_id=str(pid))
        if any(f in EXCLUDING_GROWTH_FLAGS for f in flags) or not np.isfinite(peak):
            rows.append({"plot_id": pid, "yield_p10": np.nan, "yield_p50": np.nan, "yield_p90": np.nan,
                         "yield_method": "none"})
            continue
        ratio = min(max(peak, 0.0) / c.reference_peak_ndvi, MAX_RELATIVE_TO_REFERENCE)
        p50 = c.reference_yield_t_ha * ratio
        sd = c.relative_sd * p50
        rows.append({"plot_id": pid, "yield_p10": max(p50 - Z90 * sd, 0.0), "yield_p50": p50,
                     "yield_p90": p50 + Z90 * sd, "yield_method": "empirical_peak_ndvi"})
    return pd.DataFrame(rows)


def prior_yield(plots: pd.DataFrame, crops: CropTable, relative_sd: float) -> pd.DataFrame:
    """Before the crop is visible (planting stage): the crop's reference yield with a wide band."""
    rows = []
    for pid, crop in zip(plots["plot_id"], plots["declared_crop"]):
        p50 = crops.get(str(crop), plot_id=str(pid)).reference_yield_t_ha
        sd = relative_sd * p50
        rows.append({"plot_id": pid, "yield_p10": max(p50 - Z90 * sd, 0.0), "yield_p50": p50,
                     "yield_p90": p50 + Z90 * sd, "yield_method": "prior_reference"})
    return pd.DataFrame(rows)


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
