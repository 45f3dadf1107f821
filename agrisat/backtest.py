"""Backtest: how past limits and risk scores ranked what actually happened.

Input: one row per loan with ``limit``, ``risk_score`` and ``defaulted`` (0/1). Output: default rate
by limit band and by score band, and the KS statistic and AUC of the risk score (higher score =
riskier). Pure: the CLI reads the CSV and prints the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from agrisat.errors import InputDataError

REQUIRED = ("limit", "risk_score", "defaulted")


@dataclass(frozen=True)
class BacktestReport:
    n_loans: int
    n_defaults: int
    default_rate: float
    auc: float
    ks: float
    by_limit_band: pd.DataFrame
    by_score_band: pd.DataFrame

    def to_text(self) -> str:
        head = (f"loans {self.n_loans}  defaults {self.n_defaults}  default rate {self.default_rate:.2%}\n"
                f"risk score: AUC {self.auc:.3f}  KS {self.ks:.3f}\n")
        return (head + "\nby limit band\n" + self.by_limit_band.to_string(index=False)
                + "\n\nby score band\n" + self.by_score_band.to_string(index=False))


def _validate(df: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputDataError(f"{source}: backtest file lacks column(s) {', '.join(missing)}")
    out = df.copy()
    for col in REQUIRED:
        out[col] = pd.to_numeric(out[col], errors="coerce")
        bad = np.flatnonzero(out[col].isna().to_numpy())
        if len(bad):
            raise InputDataError(f"{source}: row {bad[0] + 2}: {col} {df[col].iloc[bad[0]]!r} is not a number")
    bad = np.flatnonzero(~out["defaulted"].isin([0, 1]).to_numpy())
    if len(bad):
        raise InputDataError(f"{source}: row {bad[0] + 2}: defaulted must be 0 or 1")
    return out


def _bands(values: pd.Series, defaulted: pd.Series, edges: list[float], label: str) -> pd.DataFrame:
    cut = pd.cut(values, bins=edges, include_lowest=True, duplicates="drop")
    g = pd.DataFrame({"band": cut, "defaulted": defaulted}).groupby("band", observed=True)["defaulted"]
    return pd.DataFrame({label: g.count().index.astype(str), "loans": g.count().to_numpy(),
                         "defaults": g.sum().astype(int).to_numpy(), "default_rate": g.mean().round(4).to_numpy()})


def backtest(df: pd.DataFrame, *, source: str = "backtest", n_bands: int = 5) -> BacktestReport:
    df = _validate(df, source)
    y = df["defaulted"].astype(int)
    if y.nunique() < 2:
        raise InputDataError(f"{source}: needs both defaulted and repaid loans to score the ranking")
    score = df["risk_score"].astype(float)
    fpr, tpr, _ = roc_curve(y, score)
    q = np.linspace(0, 1, n_bands + 1)
    limit_edges = sorted(set(np.quantile(df["limit"], q).tolist()))
    score_edges = sorted(set(np.quantile(score, q).tolist()))
    return BacktestReport(
        n_loans=int(len(df)),
        n_defaults=int(y.sum()),
        default_rate=float(y.mean()),
        auc=float(roc_auc_score(y, score)),
        ks=float(np.max(tpr - fpr)),
        by_limit_band=_bands(df["limit"], y, limit_edges, "limit_band"),
        by_score_band=_bands(score, y, score_edges, "score_band"),
    )
