"""The run store: one folder per run, written to a temporary sibling and renamed into place.

    <output_dir>/<run_id>/
        plots.parquet             GeoParquet, one row per plot (metrics, flags, yield, revenue)
        plot_timeseries.parquet   one row per plot and date (NDVI statistics, valid fraction)
        limits.parquet            one row per farmer (the guide's data contract + breakdown)
        manifest.json             inputs with hashes, config, versions, counts, timings, warnings

The rename is atomic on one filesystem, so a reader sees a whole run or none; a crash leaves only a
``.tmp-*`` folder that the next run ignores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from agrisat.errors import RunStoreError

RUN_FILES = ("plots.parquet", "plot_timeseries.parquet", "limits.parquet", "manifest.json")


def sha256_file(path: str | Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def sha256_files(paths: list[str], cache_path: Path | None = None) -> dict[str, str]:
    """SHA-256 of each file; with ``cache_path`` (JSON: path -> size, mtime_ns, sha256) a file
    whose size and mtime match its entry keeps the cached hash. The cache is rewritten atomically."""
    cache: dict[str, dict] = {}
    if cache_path is not None and cache_path.exists():
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}  # an unreadable cache only costs a rehash
    out, changed = {}, False
    for p in paths:
        st = os.stat(p)
        hit = cache.get(p)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            out[p] = hit["sha256"]
            continue
        out[p] = sha256_file(p)
        cache[p] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": out[p]}
        changed = True
    if cache_path is not None and changed:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(cache, sort_keys=True))
        os.replace(tmp, cache_path)
    return out


def write_run(
    output_dir: Path,
    run_id: str,
    plots: gpd.GeoDataFrame,
    timeseries: pd.DataFrame,
    limits: pd.DataFrame,
    manifest: dict[str, Any],
    extras: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write the run's files to a temporary sibling folder and rename it into place.

    ``extras`` are further tables for analysts (e.g. ``plot_weather``), written as ``<name>.parquet``.
    """
    final = output_dir / run_id
    if final.exists():
        raise RunStoreError(f"{final}: run folder already exists; choose another --run-id")
    tmp = output_dir / f".tmp-{run_id}-{os.getpid()}"
    try:
        tmp.mkdir(parents=True, exist_ok=False)
        plots.to_parquet(tmp / "plots.parquet", index=False)
        timeseries.to_parquet(tmp / "plot_timeseries.parquet", index=False)
        limits.to_parquet(tmp / "limits.parquet", index=False)
        for name, frame in sorted((extras or {}).items()):
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
        manifest = {**manifest, "outputs": {name: sha256_file(tmp / name) for name in RUN_FILES[:3]}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        os.rename(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunStoreError(f"{final}: cannot write run: {e}") from e
    return final


def find_run(output_dir: Path, run_id: str) -> Path:
    path = output_dir / run_id
    if not (path / "manifest.json").exists():
        raise RunStoreError(f"{path}: no such run")
    return path
