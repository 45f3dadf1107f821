"""Columnar stages after extraction against the per-plot implementations they replaced, side by side.

    python benchmarks/bench_stages.py --plots 3000 30000

Builds a seeded registry (3 plots per farmer, a third leased, contracts with renewals, lessee
mismatches and overlaps, debt for half the farmers, previous limits with reasons, monthly weather
cells over the area), runs ``pipelines.seasonal.decide`` once to get each stage's inputs, then times
each stage and its oracle (tests/oracle_*.py) on the same inputs. The oracles are skipped above
``--oracle-max`` plots (they take minutes there). Figures: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import oracle_credit  # noqa: E402
import oracle_land  # noqa: E402
import oracle_weather  # noqa: E402
from agrisat import credit, land, plots as plotmod, weather  # noqa: E402
from agrisat.config import load_crops, load_policy  # noqa: E402
from agrisat.cropcheck import crop_template  # noqa: E402
from agrisat.io import tables  # noqa: E402
from agrisat.io import weather as weather_io  # noqa: E402
from pipelines.seasonal import Evidence, _crop_windows, decide  # noqa: E402

S0, S1 = dt.date(2020, 11, 1), dt.date(2021, 10, 31)
CROPS = load_crops(ROOT / "configs" / "crops.yaml")
POLICY = load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest")


def build(n_plots: int, seed: int = 0) -> Evidence:
    rng = np.random.default_rng(seed)
    names = sorted(CROPS.crops)
    side = int(np.ceil(np.sqrt(n_plots)))
    ix = np.arange(n_plots)
    x0, y0 = 640_000 + (ix % side) * 150.0, 5_600_000 + (ix // side) * 150.0  # 150 m apart, 100 m squares
    crop = np.array(names)[rng.integers(0, len(names), n_plots)]
    farmer = np.array([f"F{i // 3:06d}" for i in ix])
    leased = rng.random(n_plots) < 0.33
    raw = gpd.GeoDataFrame({"plot_id": [f"P{i:06d}" for i in ix], "farmer_id": farmer, "declared_crop": crop,
                            "season": "2021", "region": "r", "tenure": np.where(leased, "leased", "owned"),
                            "geometry": shapely.box(x0, y0, x0 + 100, y0 + 100)}, crs="EPSG:32631")
    plots = plotmod.validate_plots(raw, CROPS, area_tolerance=POLICY.area_tolerance)
    dates = pd.date_range("2020-11-01", "2021-10-01", freq="MS")
    amp = rng.uniform(0.2, 0.8, n_plots)
    cloudy = rng.random((n_plots, len(dates))) < 0.15
    tmpl = np.stack([crop_template(CROPS.crops[c], dates, S1, S0) for c in names])[np.searchsorted(names, crop)]
    mean = 0.15 + amp[:, None] * tmpl + rng.normal(0, 0.01, tmpl.shape)
    series = pd.DataFrame({"plot_id": np.repeat(plots["plot_id"].to_numpy(), len(dates)), "date": np.tile(dates, n_plots),
                           "n_pixels": 100, "n_pixels_grid": 100, "count": np.where(cloudy, 10, 100).ravel(),
                           "valid_fraction": np.where(cloudy, 0.1, 1.0).ravel(), "mean": mean.ravel(), "std": 0.02,
                           "median": mean.ravel(), "p10": mean.ravel() - 0.02, "p90": mean.ravel() + 0.02})
    li = np.flatnonzero(leased)
    lessee = np.where(rng.random(len(li)) < 0.9, farmer[li], farmer[(li + 3) % n_plots])
    start = pd.Timestamp("2018-10-01") + pd.to_timedelta(rng.integers(0, 900, len(li)), unit="D")
    c = pd.DataFrame({"contract_id": [f"C{k:06d}" for k in range(len(li))], "plot_id": plots["plot_id"].to_numpy()[li],
                      "lessor_id": "L", "lessee_id": lessee, "start_date": start,
                      "end_date": start + pd.to_timedelta(rng.integers(300, 3000, len(li)), unit="D"),
                      "annual_rent": rng.uniform(100, 1500, len(li)).round(1), "currency": "EUR", "status": "active"})
    extra = c.sample(frac=0.1, random_state=seed).assign(  # renewals and disputes
        contract_id=lambda d: d["contract_id"] + "b", start_date=lambda d: d["end_date"] + pd.Timedelta(days=1),
        end_date=lambda d: d["end_date"] + pd.Timedelta(days=1500))
    contracts = pd.concat([c, extra], ignore_index=True)
    farmers = np.unique(farmer)
    debt = pd.DataFrame({"farmer_id": farmers[::2], "outstanding": rng.uniform(0, 3000, len(farmers[::2])).round(0)})
    monthly = tables.read_weather_monthly(ROOT / "sample_tiles" / "registry" / "weather_monthly.csv")
    return Evidence(series=series, plots=plots, crops=CROPS, policy=POLICY, stage="harvest", as_of=S1,
                    season_start=S0, season_end=S1, contracts=contracts, weather=weather_io.monthly_cells(monthly),
                    debt=debt, previous=None)


def timed(f, *a, **k) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = f(*a, **k)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plots", type=int, nargs="+", default=[3000])
    ap.add_argument("--oracle-max", type=int, default=10_000)
    args = ap.parse_args()
    print("| plots | stage | columnar s | ms/plot | per-plot oracle s | ms/plot | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for n in args.plots:
        ev = build(n)
        t_decide, d = timed(decide, ev)
        prev = d.limits.assign(valid_until=pd.Timestamp("2022-01-31"))  # a previous run with reasons
        windows = _crop_windows(ev.plots, CROPS, S0, S1)
        points, obs = ev.weather
        c = ev.plots.to_crs(plotmod.utm_crs(ev.plots)).centroid.to_crs(4326)
        match = weather.nearest_points(pd.DataFrame({"plot_id": ev.plots["plot_id"], "lon": c.x, "lat": c.y}), points)
        rent = land.rent_obligations(ev.contracts, set(ev.plots["farmer_id"]), S0, S1)
        cases = [
            ("leases", land.check_leases, oracle_land.check_leases, (ev.plots, ev.contracts, S0, S1, windows), {}),
            ("weather", weather.season_features, oracle_weather.season_features,
             (match, ev.plots, obs, CROPS, POLICY.weather, S0, S1, S1), {"points": points}),
            ("farmer limits", credit.farmer_limits, oracle_credit.farmer_limits, (d.results, POLICY, S1),
             {"rent": rent, "debt": ev.debt, "previous": prev}),
        ]
        for name, new, old, a, k in cases:
            t_new, _ = timed(new, *a, **k)
            t_old = timed(old, *a, **k)[0] if n <= args.oracle_max else float("nan")
            print(f"| {n:,} | {name} | {t_new:.2f} | {t_new / n * 1e3:.3f} | {t_old:.2f} | {t_old / n * 1e3:.3f} | "
                  f"{t_old / t_new:.0f}x |")
        print(f"| {n:,} | decide (growth .. limits) | {t_decide:.2f} | {t_decide / n * 1e3:.3f} | | | |")


if __name__ == "__main__":
    main()
