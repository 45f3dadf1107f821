"""Train the yield model from a yield history table, validate it, and write a versioned artifact.

    agrisat train-yield HISTORY.parquet --out models/

HISTORY has one row per plot-season: ``crop, region, season, yield_t_ha`` and the feature columns
(FEATURES: what the seasonal run computes per plot). One model per crop with enough rows; other
crops fall back to the empirical relation of configs/crops.yaml at run time.

Validation (in the spirit of CY-Bench): leave one season out and leave one region out; RMSE and MAPE
of the model's P50 against two naive baselines (crop-region average, linear trend) and the share of
truths inside P10-P90.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from agrisat.errors import InputDataError
from agrisat.io import artifacts
from agrisat.yieldmodel import QuantileYieldModel, region_average_baseline, score, trend_baseline

FEATURES = ("peak_ndvi", "season_integral", "season_precip_mm", "season_tmean_c")
REQUIRED = ("crop", "region", "season", "yield_t_ha", *FEATURES)
MIN_ROWS_PER_CROP = 30


def read_history(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:
        raise InputDataError(f"{path}: cannot read yield history: {e}") from e
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputDataError(f"{path}: yield history lacks column(s) {', '.join(missing)}")
    bad = df.index[df[list(FEATURES) + ["yield_t_ha"]].isna().any(axis=1)]
    if len(bad):
        raise InputDataError(f"{path}: row {int(bad[0]) + 2}: missing feature or yield value")
    return df


def data_sha256(df: pd.DataFrame) -> str:
    cols = sorted(REQUIRED)
    canon = df[cols].sort_values(cols).to_csv(index=False, float_format="%.10g")
    return hashlib.sha256(canon.encode()).hexdigest()


def fit_crop_models(df: pd.DataFrame, params: dict[str, Any]) -> dict[str, QuantileYieldModel]:
    models = {}
    for crop, g in df.groupby("crop", sort=True):
        if len(g) >= MIN_ROWS_PER_CROP:
            models[str(crop)] = QuantileYieldModel(**params).fit(g[list(FEATURES)], g["yield_t_ha"])
    return models


def _holdout(df: pd.DataFrame, group: str, params: dict[str, Any]) -> dict[str, Any]:
    """Leave one ``group`` value out at a time; pooled scores for model and baselines."""
    preds = []
    for value in sorted(df[group].unique()):
        train, test = df[df[group] != value], df[df[group] == value]
        models = fit_crop_models(train, params)
        for crop, t in test.groupby("crop"):
            if crop not in models:
                continue
            q = models[crop].predict_quantiles(t[list(FEATURES)])
            preds.append(pd.DataFrame({
                "y": t["yield_t_ha"].to_numpy(), "p10": q["p10"].to_numpy(), "p50": q["p50"].to_numpy(),
                "p90": q["p90"].to_numpy(), "region_avg": region_average_baseline(train, t),
                "trend": trend_baseline(train, t, key=("crop", "region") if group == "season" else ("crop",)),
            }))
    p = pd.concat(preds, ignore_index=True)
    return {
        "n": int(len(p)),
        "model": score(p["y"], p["p50"], p["p10"], p["p90"]).as_dict(),
        "baseline_region_average": score(p["y"], p["region_avg"]).as_dict(),
        "baseline_trend": score(p["y"], p["trend"]).as_dict(),
    }


def train(history: pd.DataFrame, params: dict[str, Any] | None = None, *, validate: bool = True) -> dict[str, Any]:
    params = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "coverage": 0.8, "random_state": 0,
              **(params or {})}
    sha = data_sha256(history)
    params_sha = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    models = fit_crop_models(history, params)
    metrics = {}
    if validate:
        metrics = {"leave_one_season_out": _holdout(history, "season", params)}
        if history["region"].nunique() >= 2:
            metrics["leave_one_region_out"] = _holdout(history, "region", params)
    return {
        "version": f"qgbr-{sha[:10]}-{params_sha[:6]}",
        "training_data_sha256": sha,
        "features": list(FEATURES),
        "params": params,
        "crops": sorted(models),
        "n_rows": int(len(history)),
        "metrics": metrics,
        "models": models,
    }


def save(artifact: dict[str, Any], out_dir: Path) -> Path:
    return artifacts.save(artifact, out_dir, "yield", "models")


def load(path: Path) -> dict[str, Any]:
    return artifacts.load(path, "yield model", lambda a: "models" in a and "version" in a)


def predict(artifact: dict[str, Any], features: pd.DataFrame) -> pd.DataFrame:
    """Quantiles for rows whose crop has a trained model; NaN for the others (caller falls back)."""
    out = pd.DataFrame(index=features.index, columns=["yield_p10", "yield_p50", "yield_p90"], dtype=float)
    for crop, g in features.groupby("crop"):
        model = artifact["models"].get(crop)
        usable = g[list(FEATURES)].notna().all(axis=1)
        if model is None or not usable.any():
            continue
        q = model.predict_quantiles(g.loc[usable, list(FEATURES)])
        out.loc[g.index[usable], ["yield_p10", "yield_p50", "yield_p90"]] = q.to_numpy()
    return out
