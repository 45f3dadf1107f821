"""Per-plot NDVI statistics at Sentinel-2 tile scale: agrisat vs plain reads, rasterstats, exactextract.

    .venv/bin/python benchmarks/bench_zonal.py --size 2048 --dates 24        # ~3.5% of a tile, a few minutes
    .venv/bin/python benchmarks/bench_zonal.py --size 10980 --dates 24 --plots 200000 --methods plain,agrisat
                                                      # a full tile: ~25 min to build, ~10 GB of disk

Builds a synthetic tile (fields = shrunk Voronoi cells of random sites, 0.1-5 ha; per-field NDVI
curves of a winter or summer crop; pixel noise; cloud blobs in SCL) as tiled DEFLATE COGs, one file
per band and date, then runs every method in its own subprocess (so peak RSS is per method) and prints
a markdown table. Each method works on the same plots and pixels:

  agrisat      the pipeline's path: tiles.NdviFiles (decode B04/B08/SCL, SCL mask + NDVI from the
               integers) -> plot_timeseries: one task per strip rasterizes its plots once, one task per
               date decodes its strips and reduces them: count, valid fraction, mean, std, median, p10,
               p90 per plot and date; threaded scheduler with 1 and 2 workers
  plain read   rasterio decode of B04, B08, SCL for every date + masked NDVI: the I/O floor, as whole
               files (plain) and in strips of --chunk-px rows into reused buffers (plain-strips)
  exactextract one call on a multi-band NDVI GeoTIFF (one band per date, written beforehand, not
               timed): mean and count with coverage weights -- the tool's fast path
  rasterstats  zonal_stats per date on single-band NDVI GeoTIFFs (written beforehand, not timed):
               count, mean, std, median, percentile_10/90; on a subsample of plots, per plot-date
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CRS = "EPSG:32631"
ORIGIN = (600000.0, 5700000.0)


def build(out: Path, size: int, n_dates: int, seed: int = 0, n_plots: int | None = None) -> dict:
    import geopandas as gpd
    import pandas as pd
    import rasterio
    import shapely
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    transform = from_origin(*ORIGIN, 10.0, 10.0)
    width = size * 10.0
    # Field sites: mean field ~1.6 ha; shrink cells by 6 m so neighbours never share pixels' centres.
    n_sites = int(size * size / 160)
    xy = rng.uniform(0, width, size=(n_sites, 2)) + [ORIGIN[0], ORIGIN[1] - width]
    cells = shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=shapely.box(ORIGIN[0], ORIGIN[1] - width, ORIGIN[0] + width, ORIGIN[1]))
    polys = shapely.intersection(np.asarray(cells.geoms), shapely.box(ORIGIN[0], ORIGIN[1] - width, ORIGIN[0] + width, ORIGIN[1]))
    polys = shapely.buffer(polys, -6.0)
    area = shapely.area(polys) / 1e4
    keep = (area >= 0.1) & (area <= 5.0)
    fields = gpd.GeoDataFrame({"plot_id": [f"p{i:07d}" for i in range(int(keep.sum()))]}, geometry=polys[keep], crs=CRS)
    # Registered plots: all fields, or a random subset of them (the others still grow crops in the pixels).
    pick = np.sort(rng.choice(len(fields), n_plots, replace=False)) if n_plots and n_plots < len(fields) else slice(None)
    plots = fields.iloc[pick].reset_index(drop=True)
    plots.to_parquet(out / "plots.parquet")

    labels = rasterize(((g, i + 1) for i, g in enumerate(fields.geometry)), out_shape=(size, size), transform=transform, dtype="int32")
    n = len(fields) + 1
    winter = rng.random(n) < 0.5
    peak_t = np.where(winter, 0.35, 0.65) * n_dates + rng.normal(0, 1, n)
    amp = rng.uniform(0.4, 0.7, n)
    dates = pd.date_range("2021-01-05", periods=n_dates, freq=f"{max(365 // n_dates, 1)}D")
    rows = []
    for t, date in enumerate(dates):
        nd_field = 0.15 + amp * np.exp(-0.5 * ((t - peak_t) / (0.12 * n_dates)) ** 2)
        nd = nd_field[labels] + rng.normal(0, 0.03, (size, size))
        red = np.clip(0.06 + 0.04 * (1 - nd) + rng.normal(0, 0.005, (size, size)), 0.005, 0.5)
        nir = np.clip(red * (1 + nd) / (1 - nd), 0.01, 0.9)
        cloud = ndimage.gaussian_filter(rng.random((size // 16, size // 16)), 2) > rng.uniform(0.52, 0.62)
        scl = np.where(np.kron(cloud, np.ones((16, 16), bool))[:size, :size], 9, 4).astype("uint8")
        for band, arr, nodata, dtype in (("B04", red * 1e4, 65535, "uint16"), ("B08", nir * 1e4, 65535, "uint16"), ("SCL", scl, 0, "uint8")):
            rel = f"{date:%Y-%m-%d}/{band}.tif"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(out / rel, "w", driver="COG", width=size, height=size, count=1, dtype=dtype, crs=CRS,
                               transform=transform, nodata=nodata, compress="DEFLATE", predictor=2, blocksize=512) as dst:
                dst.write(arr.astype(dtype), 1)
            rows.append({"area": "bench", "date": f"{date:%Y-%m-%d}", "band": band, "path": rel, "crs": CRS,
                         "nodata": nodata, "scale": 1e-4 if band != "SCL" else 1.0, "offset": 0.0})
    pd.DataFrame(rows).to_csv(out / "index.csv", index=False)
    return {"plots": int(len(plots)), "pixels": size * size, "dates": n_dates}


def ndvi_rasters(data: Path) -> None:
    """NDVI per date (single band) and all dates as bands of one GeoTIFF, for the third-party tools."""
    import pandas as pd
    import rasterio

    idx = pd.read_csv(data / "index.csv")
    dates = sorted(idx["date"].unique())
    with rasterio.open(data / idx["path"].iloc[0]) as ref:
        profile = dict(driver="GTiff", width=ref.width, height=ref.height, crs=ref.crs, transform=ref.transform,
                       dtype="float32", nodata=np.nan, tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE")
    with rasterio.open(data / "ndvi_stack.tif", "w", count=len(dates), **profile) as stack:
        for k, d in enumerate(dates, 1):
            nd = _plain_ndvi(data, d)
            stack.write(nd, k)
            with rasterio.open(data / f"ndvi_{d}.tif", "w", count=1, **profile) as one:
                one.write(nd, 1)


def _plain_ndvi(data: Path, date: str) -> np.ndarray:
    import rasterio

    with rasterio.open(data / date / "B04.tif") as r, rasterio.open(data / date / "B08.tif") as n, rasterio.open(data / date / "SCL.tif") as s:
        red, nir, scl = r.read(1).astype(np.float32) * 1e-4, n.read(1).astype(np.float32) * 1e-4, s.read(1)
    nd = (nir - red) / (nir + red)
    nd[(scl == 9) | (scl == 0)] = np.nan
    return nd


def _plain_strips(data: Path, date: str, rows: int) -> float:
    """``_plain_ndvi`` strip by strip (``rows`` rows, integer buffers reused, GDAL's block cache as small
    as agrisat's): the same decode and arithmetic with a cache-sized working set -- the stricter floor
    on large tiles."""
    import rasterio
    from rasterio.windows import Window

    total, count = 0.0, 0
    with rasterio.Env(GDAL_CACHEMAX=128), rasterio.open(data / date / "B04.tif") as r, \
            rasterio.open(data / date / "B08.tif") as n, rasterio.open(data / date / "SCL.tif") as s:
        bufs = [np.empty((rows, r.width), ds.dtypes[0]) for ds in (r, n, s)]
        for y0 in range(0, r.height, rows):
            h = min(rows, r.height - y0)
            w = Window(0, y0, r.width, h)
            red, nir, scl = (ds.read(1, window=w, out=b[:h]) for ds, b in zip((r, n, s), bufs))
            red, nir = red.astype(np.float32) * np.float32(1e-4), nir.astype(np.float32) * np.float32(1e-4)
            nd = (nir - red) / (nir + red)
            nd[(scl == 9) | (scl == 0)] = np.nan
            total += float(np.nansum(nd))
            count += int(np.count_nonzero(~np.isnan(nd)))
    return total / max(count, 1)


def _peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM). ru_maxrss is not usable here: Linux carries it over
    exec from the parent, so every child would report at least the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_method(method: str, data: Path, workers: int, sample: int, chunk_px: int = 1024, group_px: int = 512,
               use_plots: int = 0, use_dates: int = 0) -> dict:
    import geopandas as gpd
    import pandas as pd

    plots = gpd.read_parquet(data / "plots.parquet")
    dates = sorted(pd.read_csv(data / "index.csv")["date"].unique())
    # Subsets of the plots and dates (the first ones), to see how time and memory grow with each.
    plots = plots.iloc[:use_plots] if use_plots else plots
    dates = dates[:use_dates] if use_dates else dates
    # Imports happen before the clock starts, for every method: we time the work, not Python's imports.
    import rasterio
    if method == "agrisat":
        import dask
        import distributed  # noqa: F401 -- dask.compute imports it on first use to look for a client

        from agrisat import zonal
        from agrisat.io import tiles
    elif method == "exactextract":
        from exactextract import exact_extract
    elif method == "rasterstats":
        from rasterstats import zonal_stats
    t0 = time.perf_counter()
    extra: dict = {}
    if method == "agrisat":
        idx = tiles.read_index(data / "index.csv")
        chosen = tiles.select_scenes(idx, "bench", ["B04", "B08", "SCL"], pd.Timestamp(dates[0]), pd.Timestamp(dates[-1]))
        grid = tiles.common_grid(chosen)
        nd = tiles.NdviFiles(chosen, grid, tiles.window_for_bounds(grid, grid.bounds, pad=0), "B04", "B08", "SCL",
                             (0, 1, 3, 8, 9, 10, 11), strip_px=chunk_px)
        strips = -(-nd.height // chunk_px)
        # The graph plot_timeseries builds: a task per date, and per strip with plots (every strip here)
        # its index and its pixel counts.
        extra["tasks"] = len(nd.dates) + 2 * strips
        with dask.config.set(scheduler=os.environ.get("BENCH_SCHEDULER", "threads"), num_workers=workers):
            _ = zonal.plot_timeseries(nd, plots, group_px=group_px)
        n_plots = len(plots)
    elif method == "plain":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda d: float(np.nanmean(_plain_ndvi(data, d))), dates))
        n_plots = len(plots)
    elif method == "plain-strips":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda d: _plain_strips(data, d, chunk_px), dates))
        n_plots = len(plots)
    elif method == "exactextract":
        _ = exact_extract(str(data / "ndvi_stack.tif"), plots, ["mean", "count"], output="pandas")
        n_plots = len(plots)
    elif method == "rasterstats":
        sub = plots.iloc[np.linspace(0, len(plots) - 1, min(sample, len(plots))).astype(int)]
        for d in dates:
            zonal_stats(list(sub.geometry), str(data / f"ndvi_{d}.tif"), nodata=np.nan,
                        stats=["count", "mean", "std", "median", "percentile_10", "percentile_90"])
        n_plots = len(sub)
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - t0
    with rasterio.open(data / "index.csv".replace("index.csv", f"{dates[0]}/B04.tif")) as ds:
        mpx = ds.width * ds.height / 1e6
    return {"method": method, "workers": workers, "seconds": round(seconds, 2), "plots": n_plots, "dates": len(dates),
            "plot_dates_per_s": round(n_plots * len(dates) / seconds, 1),
            "mpx_per_s": round(mpx * len(dates) / seconds, 2) if method != "rasterstats" else None,
            "peak_rss_mb": _peak_rss_mb(), **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048, help="tile side in pixels (a Sentinel-2 tile is 10980)")
    ap.add_argument("--dates", type=int, default=24)
    ap.add_argument("--data", type=Path, default=HERE / "out" / "tile")
    ap.add_argument("--plots", type=int, default=None,
                    help="register a random subset of this many fields as plots (default: every field)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method (each in a fresh process); the table shows the median")
    ap.add_argument("--rasterstats-sample", type=int, default=1000)
    ap.add_argument("--methods", default="plain,plain-strips,agrisat,exactextract,rasterstats",
                    help="comma-separated subset of the methods to run")
    ap.add_argument("--chunk-px", type=int, default=1024, help="agrisat: rows per strip (imagery.chunk_px; the config default is 1024)")
    ap.add_argument("--group-px", type=int, default=512, help="agrisat: plot batch block (the config default is 512)")
    ap.add_argument("--use-plots", type=int, default=0, help="measure on the first N plots only (default: all)")
    ap.add_argument("--use-dates", type=int, default=0, help="measure on the first N dates only (default: all; exactextract always takes every band)")
    ap.add_argument("--method", default=None, help=argparse.SUPPRESS)  # child process mode
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.method:
        print(json.dumps(run_method(args.method, args.data, args.workers, args.rasterstats_sample, args.chunk_px,
                                    args.group_px, args.use_plots, args.use_dates)))
        return

    meta_path = args.data / "meta.json"
    wanted = args.methods.split(",")
    old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if old.get("size") != args.size or (args.plots and old.get("plots") != args.plots):
        t0 = time.perf_counter()
        meta = build(args.data, args.size, args.dates, n_plots=args.plots)
        if {"exactextract", "rasterstats"} & set(wanted):
            ndvi_rasters(args.data)  # float32 NDVI GeoTIFFs for the third-party tools
        meta.update(size=args.size, build_s=round(time.perf_counter() - t0, 1))
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    print(f"tile {args.size}x{args.size} px, {meta['dates']} dates, {meta['plots']} plots", file=sys.stderr)
    # Warm the page cache first so no method pays for the disk on behalf of the others.
    for f in sorted(args.data.rglob("*.tif")):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):  # in 16 MB pieces: the parent stays small
                pass
    if {"exactextract", "rasterstats"} & set(wanted) and not (args.data / "ndvi_stack.tif").exists():
        ndvi_rasters(args.data)
    runs = [(m, w) for m, w in (("plain", 1), ("plain", 2), ("plain-strips", 1), ("plain-strips", 2), ("agrisat", 1), ("agrisat", 2), ("exactextract", 1),
                                ("rasterstats", 1)) if m in wanted]
    def once(method: str, workers: int) -> dict:
        cmd = [sys.executable, __file__, "--method", method, "--workers", str(workers), "--data", str(args.data),
               "--rasterstats-sample", str(args.rasterstats_sample), "--chunk-px", str(args.chunk_px),
               "--group-px", str(args.group_px), "--use-plots", str(args.use_plots), "--use-dates", str(args.use_dates)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONPATH": str(HERE.parent)}).stdout)
        print(r, file=sys.stderr)
        return r

    # Our methods args.repeat times, interleaved (a fresh process each, warm page cache): on a shared VM
    # the machine's speed drifts by +-15% over minutes, so every method sees the same drift; the table
    # shows medians. The slow third-party tools run once, last.
    fast = [(m, w) for m, w in runs if m not in ("exactextract", "rasterstats")]
    tries: dict[tuple, list] = {k: [] for k in runs}
    for _ in range(max(args.repeat, 1)):
        for key in fast:
            tries[key].append(once(*key))
    for key in runs:
        if key not in fast:
            tries[key].append(once(*key))
    results = []
    for key in runs:
        ts = sorted(tries[key], key=lambda r: r["seconds"])
        median = dict(ts[len(ts) // 2])
        median["all_seconds"] = [r["seconds"] for r in ts]
        median["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ts)
        results.append(median)
    print(table(results, meta))


def table(results: list[dict], meta: dict) -> str:
    by = {(r["method"], r["workers"]): r for r in results}
    lines = [f"Synthetic tile {meta['size']} x {meta['size']} px ({meta['size'] ** 2 / 10980 ** 2:.1%} of a Sentinel-2 tile), "
             f"{meta['dates']} dates, {meta['plots']} plots; {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
             "", "| method | workers | plots | dates | seconds (median) | all runs s | plot-dates/s | Mpx/s | peak RSS MB | "
             "vs plain read (whole / strips) | agrisat speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ag = by.get(("agrisat", 1))
        floors = [by.get((m, r["workers"])) for m in ("plain", "plain-strips")]
        vs_plain = (" / ".join(f"{f['seconds'] / r['seconds']:.0%}" if f else "-" for f in floors)
                    if r["method"] == "agrisat" else "")
        speed = (f"{ag['plot_dates_per_s'] / r['plot_dates_per_s']:.1f}x"
                 if r["method"] in ("exactextract", "rasterstats") and ag else "")
        lines.append(f"| {r['method']} | {r['workers']} | {r['plots']:,} | {r['dates']} | {r['seconds']} | "
                     f"{' / '.join(str(x) for x in r['all_seconds'])} | {r['plot_dates_per_s']:,.0f} | "
                     f"{r['mpx_per_s'] or ''} | {r['peak_rss_mb']} | {vs_plain} | {speed} |")
    if ("agrisat", 1) in by:
        lines.append(f"\nagrisat graph: {by[('agrisat', 1)].get('tasks')} tasks.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
