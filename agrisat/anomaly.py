"""Growth status: how a plot's season compares with its cohort and with its own earlier seasons.

The cohort is the plots of the same declared crop in the same region in this run (so the same
dates and the same weather). A cohort smaller than ``min_cohort`` gives no z-score (NaN): with four
plots a "low" plot is as likely noise as a problem, and a number would only look precise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def cohort_anomaly(metrics: pd.DataFrame, plots: pd.DataFrame, column: str, min_cohort: int) -> pd.DataFrame:
    """Per plot: ``cohort_n``, ``cohort_z`` and ``cohort_percentile`` (0-100) of ``column`` among
    plots of the same ``declared_crop`` and ``region`` with a finite value."""
    df = metrics[["plot_id", column]].merge(plots[["plot_id", "declared_crop"]].assign(
        region=plots["region"] if "region" in plots.columns else "all"), on="plot_id")
    out = pd.DataFrame({"plot_id": df["plot_id"], "cohort_n": 0, "cohort_z": np.nan, "cohort_percentile": np.nan})
    for _, g in df.groupby(["declared_crop", "region"], sort=True):
        v = g[column].to_numpy(float)
        ok = np.isfinite(v)
        out.loc[g.index, "cohort_n"] = int(ok.sum())
        if ok.sum() < min_cohort:
            continue
        mu, sd = v[ok].mean(), v[ok].std(ddof=1)
        rank = np.array([(v[ok] < x).sum() + 0.5 * (v[ok] == x).sum() for x in v])
        out.loc[g.index, "cohort_z"] = np.where(ok, (v - mu) / sd if sd > 0 else 0.0, np.nan)
        out.loc[g.index, "cohort_percentile"] = np.where(ok, 100.0 * rank / ok.sum(), np.nan)
    return out


def own_history_anomaly(metrics: pd.DataFrame, history: pd.DataFrame | None, column: str, min_seasons: int) -> pd.DataFrame:
    """Per plot: ``history_n`` earlier seasons of ``column`` (``history`` has ``plot_id`` and that
    column, one row per earlier season), and this season's ``history_z`` and ``history_percentile``
    (0-100, share of earlier seasons below it, ties counted half) against them."""
    out = pd.DataFrame({"plot_id": metrics["plot_id"], "history_n": 0, "history_z": np.nan, "history_percentile": np.nan})
    if history is None or history.empty:
        return out
    h = history[np.isfinite(history[column].astype(float))]
    past = {pid: g[column].to_numpy(float) for pid, g in h.groupby("plot_id")}
    now = metrics.set_index("plot_id")[column].astype(float)
    for i, pid in enumerate(out["plot_id"]):
        v = past.get(pid)
        if v is None:
            continue
        out.loc[i, "history_n"] = len(v)
        if len(v) >= min_seasons and np.isfinite(now[pid]):
            sd = v.std(ddof=1)
            if sd > 0:
                out.loc[i, "history_z"] = (now[pid] - v.mean()) / sd
            out.loc[i, "history_percentile"] = 100.0 * ((v < now[pid]).sum() + 0.5 * (v == now[pid]).sum()) / len(v)
    return out
