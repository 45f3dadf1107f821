"""A trainable crop classifier on NDVI profiles, for lenders who hold labelled parcels.

Labelled profiles are common where they exist at all: EU farmers declare every parcel's crop each
year (IACS/GSAA), and a lender's own verified plots accumulate. Where they exist, a classifier
trained on them knows the local calendars better than the templates of configs/crops.yaml; where
they do not, the template check (cropcheck.py) stands alone.

Features: the clear, cleaned NDVI of one plot-season interpolated at the middle of each of the 12
months from the season's start (``season_start``), NaN where the nearest clear date is more than
``MAX_REACH_DAYS`` away (gradient boosting handles missing values natively, so a cloudy month is
"unknown", not "bare"). A scikit-learn estimator: ``fit`` validates and sets attributes ending in
``_``; the fitted model is saved with joblib by ``pipelines/train_crops.py``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier

N_MONTHS = 12
MAX_REACH_DAYS = 25  # a month's value is taken from clear dates no farther than this


def profile_features(dates: pd.DatetimeIndex, values: np.ndarray, season_start: dt.date) -> np.ndarray:
    """The 12 monthly NDVI values of one plot-season (see module docstring)."""
    start = pd.Timestamp(season_start)
    mids = np.array([(start + pd.DateOffset(months=k) + pd.Timedelta(days=14) - start).days for k in range(N_MONTHS)], float)
    ok = np.isfinite(values)
    days = np.asarray((pd.DatetimeIndex(dates)[ok] - start).days, dtype=float)
    vals = np.asarray(values, dtype=float)[ok]
    out = np.full(N_MONTHS, np.nan)
    if len(days) == 0:
        return out
    order = np.argsort(days, kind="stable")
    days, vals = days[order], vals[order]
    interp = np.interp(mids, days, vals)
    reach = np.min(np.abs(mids[:, None] - days[None, :]), axis=1)
    out[reach <= MAX_REACH_DAYS] = interp[reach <= MAX_REACH_DAYS]
    return out


def feature_table(profiles: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """``plot_id, season_start, date, ndvi [, crop]`` long rows -> one feature row per plot-season
    (index ``plot_id, season_start``) and the labels (the first ``crop`` of each, if given)."""
    rows, labels, index = [], [], []
    for (pid, start), g in profiles.groupby(["plot_id", "season_start"], sort=True):
        rows.append(profile_features(pd.DatetimeIndex(g["date"]), g["ndvi"].to_numpy(float), pd.Timestamp(start).date()))
        labels.append(g["crop"].iloc[0] if "crop" in g else None)
        index.append((pid, pd.Timestamp(start)))
    idx = pd.MultiIndex.from_tuples(index, names=["plot_id", "season_start"])
    cols = [f"ndvi_m{k:02d}" for k in range(N_MONTHS)]
    return pd.DataFrame(np.array(rows).reshape(-1, N_MONTHS), index=idx, columns=cols), pd.Series(labels, index=idx, name="crop")


class CropProfileClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, max_iter: int = 200, learning_rate: float = 0.1, max_depth: int | None = 4,
                 random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.random_state = random_state

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> "CropProfileClassifier":
        X = np.asarray(X, dtype=float)
        y = np.asarray(y).astype(str)
        if X.ndim != 2 or X.shape[1] != N_MONTHS:
            raise ValueError(f"expected {N_MONTHS} monthly NDVI features per row, got shape {X.shape}")
        if len(np.unique(y)) < 2:
            raise ValueError("a crop classifier needs at least two crops among the labels")
        # A month never seen clear in the training set (December in a cloudy region) carries nothing.
        self.months_ = np.flatnonzero(~np.isnan(X).all(axis=0))
        self.model_ = HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                                     max_depth=self.max_depth, random_state=self.random_state,
                                                     early_stopping=False).fit(X[:, self.months_], y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(np.asarray(X, dtype=float)[:, self.months_])

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.model_.predict(np.asarray(X, dtype=float)[:, self.months_])


def classify(model: CropProfileClassifier, dates: pd.DatetimeIndex, values: np.ndarray, declared: str,
             season_start: dt.date, margin: float, min_obs: int) -> dict:
    """The template check's answer shape (``cropcheck.check_crop``) from the classifier: scores are
    probabilities; CROP_MISMATCH when the best crop's beats the declared crop's by ``margin``.
    A declared crop the classifier was not trained on gets no verdict (the caller falls back)."""
    out = {"best_crop": None, "best_crop_score": np.nan, "declared_crop_score": np.nan,
           "crop_mismatch": False, "crop_mismatch_confidence": np.nan, "crop_check_method": "classifier"}
    if np.isfinite(values).sum() < min_obs or declared not in set(model.classes_):
        return out
    x = profile_features(dates, values, season_start)
    if not np.isfinite(x).any():
        return out
    p = dict(zip(model.classes_, model.predict_proba(x[None, :])[0]))
    best = max(sorted(p), key=lambda k: p[k])
    gap = float(p[best] - p[declared])
    return out | {"best_crop": str(best), "best_crop_score": round(float(p[best]), 4),
                  "declared_crop_score": round(float(p[declared]), 4),
                  "crop_mismatch": bool(best != declared and gap >= margin), "crop_mismatch_confidence": round(gap, 4)}
