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
    if df.empty:
        return out
    # Cohorts as codes (a missing crop or region is in no cohort, as groupby drops it).
    codes = df.groupby(["declared_crop", "region"], sort=True).ngroup().fillna(-1).to_numpy(int)
    v = df[column].to_numpy(float)
    ok = np.isfinite(v) & (codes >= 0)
    n_groups = int(codes.max()) + 1
    n = np.bincount(codes[ok], minlength=n_groups)
    grouped = codes >= 0
    cohort_n = np.zeros(len(df), dtype=np.int64)
    cohort_n[grouped] = n[codes[grouped]]
    out["cohort_n"] = cohort_n
    big = n >= min_cohort
    sel = ok & big[np.maximum(codes, 0)] & grouped
    if not sel.any():
        return out
    mean, sd = _group_mean_sd(codes[sel], v[sel], n_groups)
    c = codes[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd[c] > 0, (v[sel] - mean[c]) / sd[c], 0.0)
    rank = _rank_in_group(c, v[sel])
    zs, pct = np.full(len(df), np.nan), np.full(len(df), np.nan)
    zs[sel], pct[sel] = z, 100.0 * rank / n[c]
    out["cohort_z"], out["cohort_percentile"] = zs, pct
    return out


def own_history_anomaly(metrics: pd.DataFrame, history: pd.DataFrame | None, column: str, min_seasons: int) -> pd.DataFrame:
    """Per plot: ``history_n`` earlier seasons of ``column`` (``history`` has ``plot_id`` and that
    column, one row per earlier season), and this season's ``history_z`` and ``history_percentile``
    (0-100, share of earlier seasons below it, ties counted half) against them."""
    out = pd.DataFrame({"plot_id": metrics["plot_id"], "history_n": 0, "history_z": np.nan, "history_percentile": np.nan})
    if history is None or history.empty:
        return out
    h = history[np.isfinite(history[column].astype(float))]
    codes, ids = pd.factorize(h["plot_id"])  # a missing plot_id is no plot's past (-1), as groupby drops it
    hv = h[column].to_numpy(float)[codes >= 0]
    codes = codes[codes >= 0]
    n = np.bincount(codes, minlength=len(ids))
    pos = pd.Index(ids).get_indexer(metrics["plot_id"]) if len(ids) else np.full(len(metrics), -1)
    has = pos >= 0
    history_n = np.zeros(len(metrics), dtype=np.int64)
    history_n[has] = n[pos[has]]
    out["history_n"] = history_n
    now = metrics[column].to_numpy(float)
    go = has & (history_n >= min_seasons) & np.isfinite(now)
    if not go.any():
        return out
    want = np.zeros(len(ids), dtype=bool)
    want[pos[go]] = True
    keep = want[codes]
    mean, sd = _group_mean_sd(codes[keep], hv[keep], len(ids))
    # Earlier seasons below / equal to this season's value, counted per plot.
    now_of = np.full(len(ids), np.nan)
    now_of[pos[go]] = now[go]
    below = np.bincount(codes[keep], weights=hv[keep] < now_of[codes[keep]], minlength=len(ids))
    equal = np.bincount(codes[keep], weights=hv[keep] == now_of[codes[keep]], minlength=len(ids))
    p = pos[go]
    z, pct = np.full(len(metrics), np.nan), np.full(len(metrics), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        z[go] = np.where(sd[p] > 0, (now[go] - mean[p]) / sd[p], np.nan)
    pct[go] = 100.0 * (below[p].astype(np.int64) + 0.5 * equal[p].astype(np.int64)) / n[p]
    out["history_z"], out["history_percentile"] = z, pct
    return out


def _group_mean_sd(codes: np.ndarray, v: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample sd (ddof=1) of ``v`` per group code, each as numpy computes it on the group's
    values in row order: groups of one size are stacked, so the pairwise sums see the same arrays
    as the per-group loop did (z-scores are bit-identical)."""
    order = np.argsort(codes, kind="stable")
    n = np.bincount(codes, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    mean, sd = np.full(n_groups, np.nan), np.full(n_groups, np.nan)
    for size in np.unique(n[n > 0]):  # one pass per distinct cohort size, not per cohort
        g = np.flatnonzero(n == size)
        x = v[order[start[g, None] + np.arange(size)]]
        mean[g] = x.mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd[g] = x.std(axis=1, ddof=1) if size > 1 else np.nan
    return mean, sd


def _rank_in_group(codes: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per value: how many values of its group lie below it, plus half of those equal to it (itself
    included), from one sort of (group, value) pairs."""
    order = np.lexsort((v, codes))
    c, x = codes[order], v[order]
    new_group = np.r_[True, c[1:] != c[:-1]]
    new_run = new_group | np.r_[True, x[1:] != x[:-1]]
    idx = np.arange(len(x))
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    run_id = np.cumsum(new_run) - 1
    run_start = idx[new_run]
    run_len = np.diff(np.r_[run_start, len(x)])
    rank = np.empty(len(x))
    rank[order] = (run_start[run_id] - group_start) + 0.5 * run_len[run_id]
    return rank
