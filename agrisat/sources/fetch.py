"""Remote imagery (Sentinel Hub, STAC) -> local COGs + index, which the run then reads as local tiles.

Why a run materialises what it fetched instead of reducing the remote cube straight away: every
input of a run is then a file with a SHA-256 in the manifest (lineage), a rerun with the same inputs
and config gives the same limits bit for bit even if the provider reprocesses its archive, resumed
and incremental runs work unchanged, and the analyst tools can open the very pixels behind a limit.

Files go to ``<folder>/<key>/`` where ``key`` hashes the request (source settings, bbox, CRS,
dates, bands); a folder that is complete (its ``index.csv`` written last) is reused without asking
the provider again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from agrisat.sources import ImagerySource, SceneReport


def request_key(settings: dict, bbox: tuple[float, float, float, float], crs: str, start: pd.Timestamp,
                end: pd.Timestamp, bands: list[str]) -> str:
    req = {"settings": settings, "bbox": [round(v, 3) for v in bbox], "crs": crs, "bands": list(bands),
           "start": f"{pd.Timestamp(start):%Y-%m-%d}", "end": f"{pd.Timestamp(end):%Y-%m-%d}"}
    return hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()[:16]


def fetch_to_folder(source: ImagerySource, key: str, folder: Path, bbox: tuple[float, float, float, float], crs: str,
                    start: pd.Timestamp, end: pd.Timestamp, bands: list[str], area: str = "fetched") -> tuple[Path, SceneReport]:
    """Write the source's cube as one float32 COG per date and band (NaN = no data) and an index;
    returns the index path and the scene report (kept beside the index for reuse)."""
    out = Path(folder) / key
    index_path, report_path = out / "index.csv", out / "scenes.json"
    if index_path.exists() and report_path.exists():
        saved = json.loads(report_path.read_text())
        return index_path, SceneReport(used=saved["used"], skipped=saved["skipped"])
    cube, report = source.cube(bbox, crs, start, end, bands)
    tmp = out.with_name(f".tmp-{key}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    transform = Affine(*cube.attrs["transform"])
    rows = []
    for i, date in enumerate(pd.DatetimeIndex(cube["time"].values)):
        plane = np.asarray(cube.isel(time=i).compute().values, dtype=np.float32)  # (band, y, x)
        for j, band in enumerate(str(b) for b in cube["band"].values):
            rel = f"{area}/{date:%Y-%m-%d}/{band}.tif"
            _write_cog(tmp / rel, plane[j], crs, transform)
            rows.append({"area": area, "date": f"{date:%Y-%m-%d}", "band": band, "path": rel, "crs": crs,
                         "width": plane.shape[2], "height": plane.shape[1], "nodata": "nan", "scale": 1.0,
                         "offset": 0.0, "dtype": "float32"})
    (tmp / "scenes.json").write_text(json.dumps({"used": report.used, "skipped": report.skipped}, indent=1))
    pd.DataFrame(rows).to_csv(tmp / "index.csv", index=False)
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)  # whole folder or nothing
    return index_path, report


def _write_cog(path: Path, arr: np.ndarray, crs: str, transform: Affine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": arr.shape[1], "height": arr.shape[0], "count": 1, "dtype": "float32",
               "crs": crs, "transform": transform, "nodata": float("nan")}
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(arr, 1)
        with mem.open() as ds:
            rasterio.shutil.copy(ds, path, driver="COG", compress="DEFLATE", predictor=3, blocksize=256)
