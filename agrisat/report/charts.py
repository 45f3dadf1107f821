"""PNG charts with matplotlib's Agg backend (no display needed; works on servers and in CI)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PHENOLOGY_MARKS = (("sos_date", "start", "#2a9d8f"), ("peak_date", "peak", "#e76f51"), ("eos_date", "end", "#6d597a"))


def cohort_band(series: pd.DataFrame, plots: pd.DataFrame, plot_id: str, min_valid: float) -> pd.DataFrame:
    """P25-P75 and median of clear NDVI means per date among plots of the same declared crop."""
    crop = plots.loc[plots["plot_id"] == plot_id, "declared_crop"].iloc[0]
    peers = set(plots.loc[plots["declared_crop"] == crop, "plot_id"])
    s = series[series["plot_id"].isin(peers) & (series["valid_fraction"] >= min_valid)]
    g = s.groupby("date")["mean"]
    return pd.DataFrame({"p25": g.quantile(0.25), "median": g.median(), "p75": g.quantile(0.75), "n": g.count()}).reset_index()


def plot_chart(series: pd.DataFrame, plots: pd.DataFrame, plot_id: str, *, min_valid: float = 0.5,
               smoothed: pd.DataFrame | None = None, weather: pd.DataFrame | None = None) -> bytes:
    """NDVI of one plot (raw clear / raw cloudy / smoothed) over its crop cohort band, with phenology
    marks, and a weather strip (monthly rain bars, temperature line) when weather is given."""
    mine = series[series["plot_id"] == plot_id].sort_values("date")
    row = plots[plots["plot_id"] == plot_id].iloc[0]
    band = cohort_band(series, plots, plot_id, min_valid)
    has_wx = weather is not None and len(weather) > 0
    fig, axes = plt.subplots(2 if has_wx else 1, 1, figsize=(8, 4.8 if has_wx else 3.6), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1]} if has_wx else None, squeeze=False)
    ax = axes[0, 0]
    if len(band) and band["n"].max() >= 2:
        ax.fill_between(band["date"], band["p25"], band["p75"], color="#cccccc", alpha=0.6,
                        label=f"{row['declared_crop']} cohort P25-P75")
        ax.plot(band["date"], band["median"], color="#888888", lw=1, ls="--", label="cohort median")
    clear = mine["valid_fraction"] >= min_valid
    ax.plot(mine.loc[clear, "date"], mine.loc[clear, "mean"], "o-", color="#1b7837", label="NDVI (clear)")
    if (~clear & mine["mean"].notna()).any():
        ax.plot(mine.loc[~clear, "date"], mine.loc[~clear, "mean"], "x", color="#b2182b", label="NDVI (cloudy, not used)")
    if smoothed is not None and len(smoothed):
        sm = smoothed[smoothed["plot_id"] == plot_id].sort_values("date")
        ax.plot(sm["date"], sm["ndvi_smooth"], color="#2166ac", lw=2, label="smoothed")
    for col, label, colour in PHENOLOGY_MARKS:
        if col in row.index and pd.notna(row[col]):
            ax.axvline(pd.Timestamp(row[col]), color=colour, ls=":", lw=1.5)
            ax.text(pd.Timestamp(row[col]), 0.97, label, color=colour, rotation=90, va="top", ha="right",
                    transform=ax.get_xaxis_transform(), fontsize=8)
    ax.set_ylim(-0.1, 1.0)
    ax.set_ylabel("NDVI")
    ax.set_title(f"plot {plot_id} — {row['declared_crop']}, farmer {row['farmer_id']}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(alpha=0.3)
    if has_wx:
        wx = axes[1, 0]
        wx.bar(weather["month"], weather["precip_mm"], width=20, color="#4393c3", label="rain (mm)")
        wx.set_ylabel("rain mm", fontsize=8)
        t = wx.twinx()
        t.plot(weather["month"], weather["tmean_c"], color="#d6604d", marker=".", label="mean temp (°C)")
        t.set_ylabel("°C", fontsize=8)
        wx.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def histogram(values: np.ndarray, title: str, xlabel: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4, 2.6))
    vals = np.asarray(values, dtype=float)
    vals = vals[np.isfinite(vals)]
    if len(vals):
        ax.hist(vals, bins=min(20, len(vals)), color="#4d9221")
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    return _png(fig)


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    # Fixed metadata so the same run renders to the same bytes.
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
