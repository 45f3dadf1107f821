"""Train the crop classifier from labelled NDVI profiles, validate it, and write a versioned artifact.

    agrisat train-crops LABELLED.parquet --out models/
    agrisat train-crops --from-run runs/<run_id> --out models/      # a run's declarations as labels

LABELLED has one row per plot and clear date: ``plot_id, crop, season_start, date, ndvi`` (a
plot-season is ``plot_id, season_start``). ``--from-run`` takes a run's clear, non-outlier dates
and the plots' declared crops: declarations are mostly right, so a classifier trained on many of
them flags the few that are not (check its cross-validated accuracy first).

Validation: 5-fold cross-validation grouped by plot (a plot's seasons never sit on both sides),
accuracy and per-crop recall against the majority-class baseline.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import GroupKFold

from agrisat.cropclassifier import CropProfileClassifier, feature_table
from agrisat.io import artifacts
from agrisat.io.tables import _dates, _numbers, _read_table

REQUIRED = ("plot_id", "crop", "season_start", "date", "ndvi")


def read_labelled(path: Path) -> pd.DataFrame:
    df = _read_table(path, REQUIRED, "labelled profiles")
    for col in ("season_start", "date"):
        df[col] = _dates(df, col, path)
    df["ndvi"] = _numbers(df, "ndvi", path, min_value=-1.0, max_value=1.0)
    return df


def from_run(run_dir: Path) -> pd.DataFrame:
    """A run's clear dates (valid fraction at the policy's minimum, no residual cloud) labelled with
    each plot's declared crop."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    series = pd.read_parquet(run_dir / "plot_timeseries.parquet")
    plots = pd.read_parquet(run_dir / "plots.parquet", columns=["plot_id", "declared_crop"])
    clear = series[(series["valid_fraction"] >= manifest["min_valid_fraction"]) & series["mean"].notna()
                   & ~series["is_outlier"]]
    out = clear[["plot_id", "date"]].assign(ndvi=clear["mean"].to_numpy(float))
    out["crop"] = out["plot_id"].map(dict(zip(plots["plot_id"], plots["declared_crop"].astype(str))))
    out["season_start"] = pd.Timestamp(manifest["config"]["season"]["start"])
    return out.reset_index(drop=True)


def data_sha256(df: pd.DataFrame) -> str:
    cols = list(REQUIRED)
    canon = df[cols].sort_values(cols).to_csv(index=False, float_format="%.10g", date_format="%Y-%m-%d")
    return hashlib.sha256(canon.encode()).hexdigest()


def _cross_validate(X: pd.DataFrame, y: pd.Series, params: dict[str, Any]) -> dict[str, Any]:
    groups = X.index.get_level_values("plot_id")
    n_splits = min(5, len(set(groups)))
    pred = pd.Series(index=y.index, dtype=object)
    for train, test in GroupKFold(n_splits=n_splits).split(X, y, groups):
        if y.iloc[train].nunique() < 2:
            continue
        model = CropProfileClassifier(**params).fit(X.iloc[train], y.iloc[train])
        pred.iloc[test] = model.predict(X.iloc[test])
    done = pred.notna()
    majority = y.value_counts().sort_index().idxmax()
    return {
        "n": int(done.sum()),
        "accuracy": round(float((pred[done] == y[done]).mean()), 4),
        "baseline_majority_accuracy": round(float((y[done] == majority).mean()), 4),
        "recall_by_crop": {str(c): round(float((pred[done & (y == c)] == c).mean()), 4)
                           for c in sorted(y[done].unique())},
    }


def train(labelled: pd.DataFrame, params: dict[str, Any] | None = None, *, validate: bool = True) -> dict[str, Any]:
    params = {"max_iter": 200, "learning_rate": 0.1, "max_depth": 4, "random_state": 0, **(params or {})}
    X, y = feature_table(labelled)
    sha = data_sha256(labelled)
    params_sha = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    model = CropProfileClassifier(**params).fit(X, y)
    return {
        "version": f"hgbc-{sha[:10]}-{params_sha[:6]}",
        "training_data_sha256": sha,
        "params": params,
        "crops": [str(c) for c in model.classes_],
        "n_profiles": int(len(X)),
        "metrics": {"cross_validation": _cross_validate(X, y, params)} if validate else {},
        "model": model,
    }


def save(artifact: dict[str, Any], out_dir: Path) -> Path:
    return artifacts.save(artifact, out_dir, "crops", "model")


def load(path: Path) -> dict[str, Any]:
    return artifacts.load(path, "crop classifier", lambda a: isinstance(a.get("model"), CropProfileClassifier))
