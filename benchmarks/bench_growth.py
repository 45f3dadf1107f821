"""The growth stage (growth.growth_analysis): columnar rewrite vs the per-plot oracle it replaced.

    .venv/bin/python benchmarks/bench_growth.py --plots 1000
    .venv/bin/python benchmarks/bench_growth.py --plots 20000             # oracle skipped above 2,000
    .venv/bin/python benchmarks/bench_growth.py --plots 20000 --oracle    # ... unless asked (~3-4 min)

Builds a seeded synthetic series of N plots x 24 dates over the 2020-11-01 .. 2021-10-31 season,
the crops of configs/crops.yaml in turn (5% declared wrong), cohorts of ~30 plots per crop and
region, cloud cover drawn per date and then per plot (independent between plots: every plot's clear
dates differ, the worst case for sharing smoothing factors), 5% residual-cloud drops, a few plots
without pixels, with 2 pixels, partly off the tile, and earlier seasons for the own-history z.
Times the columnar code and the per-plot oracle (tests/oracle_growth.py) on the same input, in one
process, and prints ms per plot for both (best of --repeat) and whether their metrics agree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from agrisat import growth  # noqa: E402
from agrisat.config import load_crops, load_policy  # noqa: E402
from agrisat.cropcheck import crop_template  # noqa: E402

S0, S1 = dt.date(2020, 11, 1), dt.date(2021, 10, 31)


def build(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    crops = load_crops(ROOT / "configs" / "crops.yaml")
    names = sorted(crops.crops)
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-11-08", "2021-10-27", periods=24).normalize()
    tmpl = np.stack([crop_template(crops.crops[c], dates, S1, S0) for c in names])
    declared = np.arange(n) % len(names)
    true = np.where(rng.random(n) < 0.05, rng.integers(0, len(names), n), declared)
    amp = rng.uniform(0.3, 0.75, n)
    mean = 0.15 + amp[:, None] * tmpl[true] + rng.normal(0, 0.02, (n, len(dates)))
    cover = rng.uniform(0, 0.8, len(dates))  # the tile's cloud cover on each date
    frac = np.where(rng.random((n, len(dates))) < cover, rng.uniform(0, 0.5, (n, len(dates))), 1.0)
    drop = rng.random((n, len(dates))) < 0.05
    mean[drop] -= rng.uniform(0.2, 0.5, drop.sum())  # residual cloud the mask missed
    n_grid = rng.integers(20, 500, n)
    n_pix = n_grid.copy()
    kind = rng.random(n)
    n_pix[kind < 0.01] = 0
    n_pix[(kind >= 0.01) & (kind < 0.02)] = 2
    n_pix[(kind >= 0.02) & (kind < 0.05)] = (n_grid[(kind >= 0.02) & (kind < 0.05)] * 0.6).astype(int)
    mean[n_pix == 0] = np.nan
    frac[n_pix == 0] = 0.0
    ids = np.array([f"P{i:07d}" for i in range(n)], dtype=object)
    series = pd.DataFrame({
        "plot_id": np.repeat(ids, len(dates)), "date": np.tile(dates.to_numpy(), n),
        "n_pixels": np.repeat(n_pix, len(dates)), "n_pixels_grid": np.repeat(n_grid, len(dates)),
        "count": np.floor(n_pix[:, None] * frac).astype(int).ravel(), "valid_fraction": frac.ravel(),
        "mean": mean.ravel()})
    plots = pd.DataFrame({"plot_id": ids, "declared_crop": np.array(names, dtype=object)[declared],
                          "region": [f"r{i // (30 * len(names))}" for i in range(n)]})
    past = rng.integers(0, 5, n)
    history = pd.DataFrame({"plot_id": np.repeat(ids, past),  # earlier seasons near this one's canopy
                            "peak_ndvi": np.repeat(0.15 + amp, past) + rng.normal(0, 0.04, past.sum())})
    return series, plots, history


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plots", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the columnar code (best is reported)")
    ap.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=None,
                    help="time the per-plot oracle too (default: only up to 2,000 plots; it runs once)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    crops = load_crops(ROOT / "configs" / "crops.yaml")
    policy = load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest")
    series, plots, history = build(args.plots, args.seed)

    def new():
        return growth.growth_analysis(series, plots, crops, policy, S1, S1, history, season_start=S0)

    t_new, res = timed(new, args.repeat)
    print(f"plots {args.plots}, dates 24, series rows {len(series)}")
    print(f"columnar  {t_new:8.2f} s  {1e3 * t_new / args.plots:8.3f} ms/plot")
    if args.oracle or (args.oracle is None and args.plots <= 2000):
        import oracle_growth

        t_old, old = timed(lambda: oracle_growth.growth_analysis(series, plots, crops, policy, S1, S1, history,
                                                                 season_start=S0), 1)
        print(f"per-plot  {t_old:8.2f} s  {1e3 * t_old / args.plots:8.3f} ms/plot  ({t_old / t_new:.0f}x)")
        same = all(res.metrics[c].equals(old.metrics[c]) for c in old.metrics.columns)
        print(f"metrics identical (bit for bit): {same}; observations: {res.observations.equals(old.observations)}; "
              f"curves: {res.curves.equals(old.curves)}")
    flags = pd.Series([f for fl in res.metrics["growth_flags"] for f in fl]).value_counts()
    print("flags:", ", ".join(f"{k} {v}" for k, v in flags.items()))


if __name__ == "__main__":
    main()
