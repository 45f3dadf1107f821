"""Write SYNTHETIC yield history derived from the real sample NDVI curves (see agrisat/yieldgen.py).

    .venv/bin/python scripts/make_yield_history.py --out sample_tiles/registry/yield_history_SYNTHETIC.csv

Runs the Hesbaye sample season once (in a temporary folder), then generates 10 seasons x 3 regions
of plot yields through the relation stated in agrisat/yieldgen.py. The file name says SYNTHETIC on
purpose: its yields are not observations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd

from agrisat.config import load_crops, load_policy
from agrisat.yieldgen import generate
from pipelines.seasonal import run_seasonal

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "sample_tiles/registry/yield_history_SYNTHETIC.csv")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AGRISAT_OUTPUT_DIR"] = tmp
        run = run_seasonal(ROOT / "configs/sample_hesbaye.yaml", run_id="history-source")
        series = pd.read_parquet(run.path / "plot_timeseries.parquet")
        plots = gpd.read_parquet(run.path / "plots.parquet")
    crops = load_crops(ROOT / "configs/crops.yaml")
    policy = load_policy(ROOT / "configs/policy.yaml").for_stage("harvest")
    hist = generate(series, plots, crops, policy, dt.date(2021, 10, 31))
    hist.round(6).to_csv(args.out, index=False)
    print(f"{len(hist)} synthetic plot-seasons written to {args.out}")


if __name__ == "__main__":
    main()
