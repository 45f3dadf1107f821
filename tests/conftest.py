"""Shared fixtures: tiny seeded rasters and plot files built in code (rasterio-style fixtures)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin
from shapely.geometry import box

ROOT = Path(__file__).resolve().parents[1]
# The shared reference data beside the project, or the copy of what the tests need (tests/data/README.md).
SHARED = ROOT.parent / "shared" / "data" if (ROOT.parent / "shared" / "data").exists() else ROOT / "tests" / "data"
CRS = "EPSG:32631"
ORIGIN = (600000.0, 5600000.0)  # top-left corner, 10 m pixels
TRANSFORM = from_origin(*ORIGIN, 10.0, 10.0)


def write_band(path: Path, arr: np.ndarray, nodata: float | None, dtype: str = "uint16",
               transform=TRANSFORM, crs: str = CRS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=dtype, crs=crs, transform=transform, nodata=nodata, tiled=True,
                       blockxsize=16, blockysize=16) as ds:
        ds.write(arr.astype(dtype), 1)


def pixel_box(col0: int, row0: int, col1: int, row1: int):
    """Polygon covering pixel columns [col0, col1) and rows [row0, row1) of the test grid."""
    x0, y0 = ORIGIN
    return box(x0 + col0 * 10, y0 - row1 * 10, x0 + col1 * 10, y0 - row0 * 10)


@pytest.fixture
def tiny_tiles(tmp_path: Path) -> dict:
    """A 48 x 48 px area with 3 dates of B04, B08, SCL and an index.csv.

    Reflectance is seeded random; date 2 has a cloud (SCL 9) over the top-left quarter and one
    nodata pixel. Returns paths and the raw arrays for independent checks.
    """
    rng = np.random.default_rng(42)
    h = w = 48
    dates = ["2021-04-01", "2021-05-01", "2021-06-01"]
    raw: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    for k, d in enumerate(dates):
        red = rng.integers(300, 1500, size=(h, w)).astype("uint16")
        nir = rng.integers(2000, 5000, size=(h, w)).astype("uint16")
        scl = np.full((h, w), 4, dtype="uint8")
        if k == 1:
            scl[:24, :24] = 9
            red[40, 40] = 65535
        for band, arr, nodata, scale in (("B04", red, 65535, 1e-4), ("B08", nir, 65535, 1e-4), ("SCL", scl, 0, 1.0)):
            rel = f"tiny/{d}/{band}.tif"
            write_band(tmp_path / rel, arr, nodata, dtype=str(arr.dtype))
            raw[(d, band)] = arr
            rows.append({"area": "tiny", "date": d, "band": band, "path": rel, "crs": CRS, "width": w,
                         "height": h, "nodata": nodata, "scale": scale, "offset": 0.0, "dtype": str(arr.dtype)})
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    return {"dir": tmp_path, "index": tmp_path / "index.csv", "raw": raw, "dates": dates}


@pytest.fixture
def tiny_plots() -> gpd.GeoDataFrame:
    geoms = [pixel_box(2, 2, 20, 20), pixel_box(10, 26, 30, 46), pixel_box(30, 5, 46, 40)]
    return gpd.GeoDataFrame(
        {"plot_id": ["A", "B", "C"], "farmer_id": ["F1", "F1", "F2"],
         "declared_crop": ["winter_wheat", "maize", "sugar_beet"], "season": ["2021"] * 3,
         "tenure": ["owned"] * 3},
        geometry=geoms, crs=CRS,
    )


@pytest.fixture
def tiny_config(tmp_path, tiny_tiles, tiny_plots) -> Path:
    """A run config over tiny_tiles with three plots in two regions and 16-px partitions."""
    plots = tiny_plots.copy()
    plots["region"] = ["north", "north", "south"]
    plots.to_file(tmp_path / "plots.geojson")
    cfg = {
        "run": {"name": "tiny", "output_dir": str(tmp_path / "runs"), "as_of": "2021-10-31", "stage": "mid_season"},
        "season": {"start": "2021-03-01", "end": "2021-10-31"},
        "inputs": {"plots": str(tmp_path / "plots.geojson"), "imagery_index": str(tiny_tiles["index"]),
                   "imagery_area": "tiny"},
        "crops": str(ROOT / "configs" / "crops.yaml"),
        "policy": str(ROOT / "configs" / "policy.yaml"),
        "imagery": {"quality": "SCL", "partition_px": 16, "chunk_px": 16},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def dask_cluster_address():
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1; yields the address."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker_cli = [sys.executable, "-m", "distributed.cli.dask_worker"]
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([*dask_cli, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([*worker_cli, address, "--nthreads", "1", "--no-dashboard",
                                           "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as client:
            while len(client.scheduler_info()["workers"]) < 2:
                if time.monotonic() > deadline:
                    pytest.fail("dask workers did not register within 60 s")
                time.sleep(0.2)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
