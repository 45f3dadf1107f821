"""Growth on the Mol sample (per-acquisition scenes with SCL): masking checked against the SCL tiles
read independently, and the data-sufficiency flag with its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from rasterio.features import geometry_mask

from agrisat.config import load_policy
from conftest import ROOT
from pipelines.seasonal import run_seasonal

SAMPLE = ROOT / "sample_tiles"
CONFIG = ROOT / "configs" / "sample_mol.yaml"
NOT_CLEAR_SCL = (0, 1, 3, 8, 9, 10, 11)  # the config's default exclude_classes
MIN_CLEAR = load_policy(ROOT / "configs" / "policy.yaml").for_stage("mid_season").min_clear_observations


def _run(tmp: Path, run_id: str, **season) -> Path:
    cfg = yaml.safe_load(CONFIG.read_text())
    for key, value in cfg["inputs"].items():
        if isinstance(value, str) and value.startswith(".."):
            cfg["inputs"][key] = str((CONFIG.parent / value).resolve())
    cfg["crops"], cfg["policy"] = str(CONFIG.parent / cfg["crops"]), str(CONFIG.parent / cfg["policy"])
    cfg["run"]["output_dir"] = str(tmp / "runs")
    cfg["season"] |= season
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return run_seasonal(tmp / "cfg.yaml", run_id=run_id).path


@pytest.fixture(scope="module")
def mol(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("mol"), "mol")


def test_cloudy_dates_are_masked_pixel_by_pixel_as_the_scl_says(mol):
    ts = pd.read_parquet(mol / "plot_timeseries.parquet")
    registry = gpd.read_file(SAMPLE / "registry" / "plots_mol.geojson").to_crs("EPSG:32631")
    index = pd.read_csv(SAMPLE / "index.csv")
    mol_rows = index[index["area"] == "mol"]
    for date, rows in mol_rows.groupby("date"):
        rows = rows.set_index("band")
        with rasterio.open(SAMPLE / rows.loc["SCL", "path"]) as f:
            scl, transform = f.read(1), f.transform
        with rasterio.open(SAMPLE / rows.loc["B04", "path"]) as r, rasterio.open(SAMPLE / rows.loc["B08", "path"]) as n:
            red, nir = r.read(1), n.read(1)
        usable = ~np.isin(scl, NOT_CLEAR_SCL) & (red != 65535) & (nir != 65535) & (red.astype(int) + nir > 0)
        for pid, geom in zip(registry["plot_id"], registry.geometry):
            inside = geometry_mask([geom], out_shape=scl.shape, transform=transform, invert=True)
            got = ts[(ts["plot_id"] == pid) & (ts["date"] == pd.Timestamp(date))].iloc[0]
            assert got["n_pixels"] == inside.sum() and got["count"] == (inside & usable).sum(), (pid, date)
            assert got["valid_fraction"] == pytest.approx((inside & usable).sum() / inside.sum())
    clear = set(ts.loc[ts["valid_fraction"] >= 0.5, "date"].dt.strftime("%Y-%m-%d"))
    assert clear == {"2023-04-05", "2023-04-15"}  # the two mostly clear dates the data README names


def test_two_clear_dates_are_not_enough_for_the_season_and_the_flag_says_so(tmp_path):
    # The whole 2022/23 season requested at the end of April: only April has imagery.
    run = _run(tmp_path, "mol_season", start="2022-11-01", end="2023-10-31")
    plots = gpd.read_parquet(run / "plots.parquet").set_index("plot_id")
    assert (plots["n_clear_obs"] == 2).all()
    for pid, details in plots["flag_details"].items():
        assert "NOT_ENOUGH_CLEAR_OBSERVATIONS" in plots.loc[pid, "flags"]
        assert json.loads(details)["NOT_ENOUGH_CLEAR_OBSERVATIONS"].startswith("2 clear dates (valid fraction >= 0.5")
        assert f"< {MIN_CLEAR} required" in json.loads(details)["NOT_ENOUGH_CLEAR_OBSERVATIONS"]


def test_the_shipped_mol_config_flags_on_the_two_clear_dates(mol):
    plots = gpd.read_parquet(mol / "plots.parquet").set_index("plot_id")
    assert (plots["n_clear_obs"] == 2).all()
