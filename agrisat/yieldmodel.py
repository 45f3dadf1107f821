"""Trainable yield model with honest quantiles, its baselines and its evaluation.

``QuantileYieldModel`` is a scikit-learn estimator: three gradient-boosting regressors with quantile
loss (P10, P50, P90), then *conformalised* on a held-out calibration split (conformalised quantile
regression, Romano et al. 2019): the P10-P90 band is widened (or narrowed) by the calibration
residual quantile so that about 80% of truths fall inside, instead of trusting the raw quantile
fits, which are usually too narrow on small data.

Baselines (what the model must beat): the average yield of the crop in the region over earlier
seasons, and a linear trend over seasons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted, check_X_y

QUANTILES = (0.1, 0.5, 0.9)


class QuantileYieldModel(RegressorMixin, BaseEstimator):
    """P10/P50/P90 yield (t/ha) from growth and weather features, conformalised to ``coverage``."""

    def __init__(self, n_estimators: int = 200, max_depth: int = 3, learning_rate: float = 0.05,
                 coverage: float = 0.8, calibration_size: float = 0.25, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.coverage = coverage
        self.calibration_size = calibration_size
        self.random_state = random_state

    def _gbr(self, alpha: float) -> GradientBoostingRegressor:
        return GradientBoostingRegressor(loss="quantile", alpha=alpha, n_estimators=self.n_estimators,
                                         max_depth=self.max_depth, learning_rate=self.learning_rate,
                                         random_state=self.random_state)

    def fit(self, X, y):  # noqa: N803  (scikit-learn convention)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        X, y = check_X_y(np.asarray(X, dtype=float), np.asarray(y, dtype=float))
        X_fit, X_cal, y_fit, y_cal = train_test_split(X, y, test_size=self.calibration_size,
                                                      random_state=self.random_state)
        self.models_ = {q: self._gbr(q).fit(X_fit, y_fit) for q in QUANTILES}
        lo, hi = self.models_[0.1].predict(X_cal), self.models_[0.9].predict(X_cal)
        scores = np.maximum(lo - y_cal, y_cal - hi)
        n = len(y_cal)
        level = min(np.ceil((n + 1) * self.coverage) / n, 1.0)
        self.conformal_margin_ = float(np.quantile(scores, level, method="higher"))
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):  # noqa: N803
        return self.predict_quantiles(X)["p50"].to_numpy()

    def predict_quantiles(self, X) -> pd.DataFrame:  # noqa: N803
        check_is_fitted(self, "models_")
        X = np.asarray(X, dtype=float)
        p50 = self.models_[0.5].predict(X)
        p10 = np.minimum(self.models_[0.1].predict(X) - self.conformal_margin_, p50)
        p90 = np.maximum(self.models_[0.9].predict(X) + self.conformal_margin_, p50)
        return pd.DataFrame({"p10": np.maximum(p10, 0.0), "p50": np.maximum(p50, 0.0), "p90": p90})


def region_average_baseline(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Mean yield of the same crop and region in the training seasons (crop mean if region unseen)."""
    by_cr = train.groupby(["crop", "region"])["yield_t_ha"].mean()
    by_c = train.groupby("crop")["yield_t_ha"].mean()
    return np.array([by_cr.get((c, r), by_c.get(c, train["yield_t_ha"].mean()))
                     for c, r in zip(test["crop"], test["region"])])


def trend_baseline(train: pd.DataFrame, test: pd.DataFrame, *, key: tuple[str, ...] = ("crop", "region")) -> np.ndarray:
    """Linear trend of yield over seasons per crop and region, extrapolated to the test season."""
    out = []
    for _, r in test.iterrows():
        hist = train
        for k in key:
            hist = hist[hist[k] == r[k]]
        hist = hist.groupby("season")["yield_t_ha"].mean()
        if len(hist) >= 3:
            slope, intercept = np.polyfit(hist.index.to_numpy(dtype=float), hist.to_numpy(), 1)
            out.append(intercept + slope * float(r["season"]))
        else:
            out.append(hist.mean() if len(hist) else train["yield_t_ha"].mean())
    return np.array(out)


@dataclass(frozen=True)
class Scores:
    rmse: float
    mape: float
    coverage_p10_p90: float | None = None

    def as_dict(self) -> dict:
        return {k: (None if v is None else round(float(v), 4)) for k, v in self.__dict__.items()}


def score(y: np.ndarray, p50: np.ndarray, p10: np.ndarray | None = None, p90: np.ndarray | None = None) -> Scores:
    y, p50 = np.asarray(y, float), np.asarray(p50, float)
    cov = None if p10 is None else float(np.mean((y >= p10) & (y <= p90)))
    return Scores(rmse=float(np.sqrt(np.mean((y - p50) ** 2))),
                  mape=float(np.mean(np.abs(y - p50) / np.maximum(np.abs(y), 1e-9))), coverage_p10_p90=cov)
