"""A whole season end to end through the real CLI: seconds per stage, plots/s and peak RSS.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_season.py --plots 1000,5000 --workers 1
    PYTHONPATH=. .venv/bin/python benchmarks/bench_season.py --plots 16000 --workers 1,2 --cluster

Builds (once, cached in --data) a synthetic season on one tile of --size px at 10 m: --dates dates of
B04/B08/SCL as tiled DEFLATE COGs with an index.csv, and a layout of square-ish fields (one per
--field-px cell, corners jittered), each growing a crop of configs/crops.yaml on that crop's own
calendar (emergence -> peak months -> harvest, with per-field timing and amplitude) under cloud
blobs in SCL. For each --plots N it registers N of those fields (3 plots per farmer, a `region`
column of --regions regions drawn per farmer so they interleave everywhere on the tile, ~2% declared
as the wrong crop, ~1% fallow), a third of them leased (contracts CSV with an expired lease, lessee
mismatches and missing contracts), a debt CSV for half the farmers, monthly weather cells shaped
like sample_tiles/registry/weather_monthly.csv over the tile, and writes a run config.

Each case then runs `agrisat run CONFIG` as a subprocess (imports, config, writing the run folder all
included), reads `timings_s` from the run's manifest.json, and samples the RSS of the whole process
tree (the CLI and its children; with --cluster also the scheduler and workers) every 50 ms. Cases:
every --workers value (dask `threads` with num_workers), and with --cluster a `dask scheduler` and
2 `dask worker` processes (1 thread each) on 127.0.0.1 started and stopped by this script.
Prints one JSON line per case (stderr) and a markdown table (stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CRS = "EPSG:32631"
ORIGIN = (600000.0, 5700000.0)  # top-left corner in UTM 31N: Belgium, like the sample
SEASON = ("2020-11-01", "2021-10-31")  # the sample's season; as_of at its end (stage harvest)
CROP_SHARES = {"winter_wheat": 0.30, "maize": 0.20, "sugar_beet": 0.15, "potato": 0.15,
               "spring_barley": 0.10, "winter_barley": 0.10}
STAGES = ("plots", "extract", "growth", "land_weather", "credit")


# --- building the season ----------------------------------------------------------------------

def _calendar(crop: dict) -> tuple[float, float, float, float]:
    """Emergence, peak start, peak end and harvest of ``crop`` in the season, as days since 2020-01-01."""
    import pandas as pd

    hm, hd = (int(v) for v in crop["harvest"].split("-"))
    sm, sd = (int(v) for v in crop["sowing"].split("-"))
    harvest = pd.Timestamp(2021, hm, hd)
    sowing = pd.Timestamp(2020 if (sm, sd) > (hm, hd) else 2021, sm, sd)
    first, last = crop["peak_months"][0], crop["peak_months"][-1]
    peak_start = pd.Timestamp(2021 - (first > hm), first, 1)
    peak_end = min(pd.Timestamp(2021 - (last > hm), last, 1) + pd.offsets.MonthEnd(0), harvest)
    day0 = pd.Timestamp(2020, 1, 1)
    emergence = sowing + pd.Timedelta(days=crop["emergence_days"])
    return tuple(float((t - day0).days) for t in (emergence, max(peak_start, emergence), peak_end, harvest))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def build_imagery(out: Path, size: int, n_dates: int, field_px: int, seed: int) -> dict:
    """The tile: fields with their true crop (fields.parquet), and B04/B08/SCL per date + index.csv."""
    import geopandas as gpd
    import pandas as pd
    import rasterio
    import shapely
    import yaml
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    transform = from_origin(*ORIGIN, 10.0, 10.0)
    # One field per cell, corners pulled in by 1-3.5 px (off the half-pixel lattice, so no pixel centre
    # sits on an edge): quadrilaterals of ~1-2 ha at 16 px cells with a strip of grass between them.
    n = size // field_px
    j, i = np.meshgrid(np.arange(n), np.arange(n))
    i, j = i.ravel(), j.ravel()
    inset = rng.uniform(1.0, 3.5, size=(len(i), 4, 2))
    # Corners top-left, top-right, bottom-right, bottom-left (pixel columns and rows), each pulled inwards.
    cols = np.stack([j, j + 1, j + 1, j], axis=1) * field_px + np.array([1, -1, -1, 1]) * inset[:, :, 0]
    rows = np.stack([i, i, i + 1, i + 1], axis=1) * field_px + np.array([1, 1, -1, -1]) * inset[:, :, 1]
    x = ORIGIN[0] + 10.0 * cols
    y = ORIGIN[1] - 10.0 * rows
    polys = shapely.polygons(np.stack([x, y], axis=-1))
    crop_names = list(CROP_SHARES)
    crop = rng.choice(crop_names, size=len(polys), p=list(CROP_SHARES.values()))
    fallow = rng.random(len(polys)) < 0.01  # no crop at all: NO_CROP_SIGNAL
    fields = gpd.GeoDataFrame({"field": np.arange(len(polys)), "crop": crop, "fallow": fallow},
                              geometry=polys, crs=CRS)
    fields.to_parquet(out / "fields.parquet")

    crops = yaml.safe_load((ROOT / "configs" / "crops.yaml").read_text())["crops"]
    knots = np.array([_calendar(crops[c]) for c in crop_names])[[crop_names.index(c) for c in crop]]
    # The canopy peaks inside the crop's peak months (the calendar's plateau pulled in by 12 days each
    # side, so few peaks fall outside them), and each field is sown earlier or later by about 5 days.
    knots[:, 1] = np.minimum(knots[:, 1] + 12, (knots[:, 1] + knots[:, 2]) / 2)
    knots[:, 2] = np.maximum(knots[:, 2] - 12, knots[:, 1])
    knots = knots + rng.normal(0, 5, size=(len(polys), 1))
    amp = rng.uniform(0.5, 0.7, len(polys))
    amp[fallow] = 0.0
    labels = rasterize(((g, k + 1) for k, g in enumerate(fields.geometry)), out_shape=(size, size),
                       transform=transform, dtype="int32")
    start = pd.Timestamp(SEASON[0]) + pd.Timedelta(days=5)
    step = (pd.Timestamp(SEASON[1]) - start).days // n_dates
    dates = pd.date_range(start, periods=n_dates, freq=f"{step}D")
    index = []
    for date in dates:
        t = float((date - pd.Timestamp(2020, 1, 1)).days)
        e, ps, pe, h = knots.T
        up = _smoothstep((t - e) / np.maximum(ps - e, 1))
        down = 1 - _smoothstep((t - pe) / np.maximum(h - pe, 1))
        green = np.where(t < pe, up, down) * (t >= e) * (t <= h)
        nd_field = np.concatenate([[0.55], 0.18 + amp * green])  # label 0: grass between the fields
        nd = np.clip(nd_field[labels] + rng.normal(0, 0.03, (size, size)), -0.2, 0.95)
        red = np.clip(0.06 + 0.04 * (1 - nd) + rng.normal(0, 0.005, (size, size)), 0.005, 0.5)
        nir = np.clip(red * (1 + nd) / (1 - nd), 0.01, 0.9)
        blobs = ndimage.gaussian_filter(rng.random((size // 16 + 1, size // 16 + 1)), 2)
        cloud = np.kron(blobs > rng.uniform(0.52, 0.62), np.ones((16, 16), bool))[:size, :size]
        scl = np.where(cloud, 9, 4).astype("uint8")
        for band, arr, nodata, dtype in (("B04", red * 1e4, 65535, "uint16"), ("B08", nir * 1e4, 65535, "uint16"),
                                         ("SCL", scl, 0, "uint8")):
            rel = f"{date:%Y-%m-%d}/{band}.tif"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(out / rel, "w", driver="COG", width=size, height=size, count=1, dtype=dtype, crs=CRS,
                               transform=transform, nodata=nodata, compress="DEFLATE", predictor=2,
                               blocksize=512) as dst:
                dst.write(arr.astype(dtype), 1)
            index.append({"area": "bench", "date": f"{date:%Y-%m-%d}", "band": band, "path": rel, "crs": CRS,
                          "nodata": nodata, "scale": 1e-4 if band != "SCL" else 1.0, "offset": 0.0})
    pd.DataFrame(index).to_csv(out / "index.csv", index=False)
    return {"fields": int(len(fields))}


def build_registry(imagery: Path, out: Path, n_plots: int, n_regions: int, seed: int) -> dict:
    """Plots, contracts, debt and weather for ``n_plots`` of the tile's fields."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    rng = np.random.default_rng(seed + n_plots)
    fields = gpd.read_parquet(imagery / "fields.parquet")
    if n_plots > len(fields):
        raise SystemExit(f"--plots {n_plots}: the tile has only {len(fields)} fields (lower --field-px)")
    out.mkdir(parents=True, exist_ok=True)
    # Registered fields in row-major order, so a farmer's three plots are neighbours.
    chosen = fields.iloc[np.sort(rng.choice(len(fields), n_plots, replace=False))].reset_index(drop=True)
    n = len(chosen)
    farmer = np.arange(n) // 3
    n_farmers = int(farmer.max()) + 1
    # Regions per farmer, drawn at random: every region is everywhere on the tile (a branch, a
    # cooperative), which is what the extraction's partitioning must not split by.
    region = rng.integers(0, n_regions, n_farmers)[farmer]
    declared = chosen["crop"].to_numpy().copy()
    wrong = rng.random(n) < 0.02
    names = list(CROP_SHARES)
    declared[wrong] = [names[(names.index(c) + 1) % len(names)] for c in declared[wrong]]
    area = shapely.area(chosen.geometry.values) / 1e4
    declared_area = np.round(area * rng.uniform(0.97, 1.03, n), 2)
    off = rng.random(n) < 0.01
    declared_area[off] = np.round(area[off] * 1.3, 2)  # AREA_MISMATCH
    leased = rng.random(n) < 1 / 3
    plots = gpd.GeoDataFrame({
        "plot_id": [f"P{f:06d}" for f in chosen["field"]],
        "farmer_id": [f"F{k:05d}" for k in farmer],
        "declared_crop": declared,
        "season": "2021",
        "tenure": np.where(leased, "leased", "owned"),
        "region": [f"R{r + 1}" for r in region],
        "declared_area_ha": declared_area,
    }, geometry=chosen.geometry.values, crs=CRS).to_crs(4326)  # a registry in WGS84, like the sample
    plots.to_parquet(out / "plots.parquet")

    # Contracts for the leased plots; some with problems (each at least once).
    idx = np.flatnonzero(leased)
    problem = rng.choice(["ok", "expired", "mismatch", "missing"], size=len(idx), p=[0.955, 0.015, 0.015, 0.015])
    problem[:3] = ["expired", "mismatch", "missing"][: len(problem[:3])]
    contracts = []
    for k, (p, why) in enumerate(zip(idx, problem)):
        if why == "missing":
            continue  # LEASE_MISSING
        lessee = plots["farmer_id"].iloc[p]
        if why == "mismatch":  # leased to a neighbour: LEASE_LESSEE_MISMATCH, and the neighbour owes the rent
            lessee = f"F{(farmer[p] + 1) % n_farmers:05d}"
        end, status = ("2020-09-30", "expired") if why == "expired" else ("2028-09-30", "active")
        contracts.append({"contract_id": f"C{k + 1:06d}", "plot_id": plots["plot_id"].iloc[p],
                          "lessor_id": f"L{rng.integers(1, 400):04d}", "lessee_id": lessee,
                          "start_date": "2014-10-01" if why == "expired" else "2019-10-01", "end_date": end,
                          "annual_rent": round(float(area[p] * rng.uniform(250, 450)), 2), "currency": "EUR",
                          "status": status})
    pd.DataFrame(contracts).to_csv(out / "contracts.csv", index=False)

    owing = np.sort(rng.choice(n_farmers, n_farmers // 2, replace=False))
    pd.DataFrame({"farmer_id": [f"F{k:05d}" for k in owing],
                  "outstanding": np.round(rng.lognormal(np.log(2000), 1.0, len(owing)), 2),
                  "currency": "EUR"}).to_csv(out / "debt.csv", index=False)

    # The sample's AgERA5 cell (12 months of this season) copied onto a 3 x 3 grid of cells over the
    # tile, a little wetter or drier and warmer or cooler each: every plot finds a cell within ~5 km.
    sample = pd.read_csv(ROOT / "sample_tiles" / "registry" / "weather_monthly.csv")
    x0, y0, x1, y1 = plots.to_crs(CRS).total_bounds
    cells = []
    for a in range(3):
        for b in range(3):
            pt = gpd.GeoSeries(shapely.points([x0 + (b + 0.5) * (x1 - x0) / 3], [y1 - (a + 0.5) * (y1 - y0) / 3]),
                               crs=CRS).to_crs(4326).iloc[0]
            c = sample.copy()
            c["cell_id"], c["lon"], c["lat"] = f"bench_{a}{b}", round(pt.x, 5), round(pt.y, 5)
            c["precip_mm"] = (c["precip_mm"] * rng.uniform(0.9, 1.1)).round(2)
            c["tmean_c"] = (c["tmean_c"] + rng.normal(0, 0.3)).round(2)
            cells.append(c)
    pd.concat(cells).to_csv(out / "weather_monthly.csv", index=False)
    return {"plots": n, "farmers": n_farmers, "contracts": len(contracts), "debtors": len(owing)}


def write_config(folder: Path, imagery: Path, workers: int, partition_px: int | None) -> Path:
    import yaml

    cfg = {
        "run": {"name": "bench", "output_dir": "runs", "as_of": SEASON[1], "stage": "harvest"},
        "season": {"start": SEASON[0], "end": SEASON[1]},
        "inputs": {"plots": "plots.parquet", "imagery_index": str(imagery / "index.csv"), "imagery_area": "bench",
                   "contracts": "contracts.csv", "weather": "weather_monthly.csv", "debt": "debt.csv"},
        "crops": str(ROOT / "configs" / "crops.yaml"),
        "policy": str(ROOT / "configs" / "policy.yaml"),
        "imagery": {"red": "B04", "nir": "B08", "quality": "SCL"} | ({"partition_px": partition_px} if partition_px else {}),
        "dask": {"scheduler": "threads", "num_workers": workers},
    }
    path = folder / f"run-w{workers}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --- measuring ---------------------------------------------------------------------------------

def _tree(roots: list[int]) -> list[int]:
    """``roots`` and all their descendants, from /proc (psutil when installed)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        pids = []
        for root in roots:
            try:
                pids += [root] + [c.pid for c in psutil.Process(root).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return pids
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:  # the field after "(comm)" is the state, then the parent's pid
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    pids, todo = [], [r for r in roots if r in parent]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += [c for c, pp in parent.items() if pp == pid]
    return pids


def _tree_rss(roots: list[int], hwm: dict[int, int]) -> int:
    """RSS in bytes of ``roots`` and all their descendants now; keeps each process's VmHWM in ``hwm``."""
    total = 0
    for pid in _tree(roots):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        kb = int(line.split()[1]) * 1024
                        if line.startswith("VmRSS:"):
                            total += kb
                        else:
                            hwm[pid] = max(hwm.get(pid, 0), kb)
        except (FileNotFoundError, ProcessLookupError):
            pass  # exited between the listing and the read
    return total


def _warm(folder: Path) -> None:
    """Read every tile into the page cache before each case. This VM drops the pages of files left
    idle for a few minutes: a cold read of the 72 files of the 2048 px season took 18 s instead of
    0.3 s in the extraction's hashing, more than the extraction itself."""
    for f in sorted(folder.rglob("*.tif")):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):  # 16 MB pieces: this process stays small
                pass


def run_case(cfg: Path, run_id: str, scheduler: str | None, watch: list[int], env: dict) -> dict:
    """``agrisat run`` in a subprocess; wall time, the manifest's stage timings, peak RSS of the tree."""
    import pandas as pd

    agrisat = Path(sys.executable).with_name("agrisat")
    cmd = [str(agrisat)] if agrisat.exists() else [sys.executable, "-m", "agrisat.cli"]
    cmd += ["run", str(cfg), "--run-id", run_id] + (["--scheduler", scheduler] if scheduler else [])
    log = cfg.parent / f"{run_id}.log"
    hwm: dict[int, int] = {}
    peak = 0
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cfg.parent)
        while proc.poll() is None:
            peak = max(peak, _tree_rss([proc.pid, *watch], hwm))
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"agrisat run failed (exit {proc.returncode}); log in {log}")
    run_dir = cfg.parent / "runs" / run_id
    manifest = json.loads((run_dir / "manifest.json").read_text())
    t = manifest["timings_s"]
    limits = pd.read_parquet(run_dir / "limits.parquet", columns=["n_plots", "n_plots_eligible"])
    n_plots = manifest["counts"]["plots"]
    return {"plots": n_plots, "farmers": manifest["counts"]["farmers"], "scheduler": manifest["scheduler"],
            "partitions": len(manifest["partitions"]["all"]),
            **{f"{s}_s": round(t.get(s, float("nan")), 2) for s in STAGES},
            "other_s": round(wall - sum(t.values()), 2), "total_s": round(wall, 2),
            "plots_per_s": round(n_plots / wall, 1), "peak_rss_mb": round(peak / 2**20),
            "cli_hwm_mb": round(hwm.get(proc.pid, 0) / 2**20),
            "eligible": f"{int(limits['n_plots_eligible'].sum())}/{int(limits['n_plots'].sum())}",
            "statuses": manifest["counts"]["limits_by_status"], "run_dir": str(run_dir)}


class Cluster:
    """`dask scheduler` + 2 `dask worker` (1 thread each) on 127.0.0.1, as tests/conftest.py starts them."""

    def __init__(self, env: dict, n_workers: int = 2) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        self.procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                        "--port", str(port), "--no-dashboard"], **quiet)]
        for _ in range(n_workers):
            self.procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                                                "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"], **quiet))
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(self.address, timeout="30s") as client:
            while len(client.scheduler_info()["workers"]) < n_workers:
                if time.monotonic() > deadline:
                    self.close()
                    raise SystemExit("dask workers did not register within 60 s")
                time.sleep(0.2)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def table(results: list[dict], meta: dict) -> str:
    lines = [f"Synthetic season: {meta['size']} x {meta['size']} px at 10 m, {meta['dates']} dates of B04/B08/SCL, "
             f"{meta['regions']} interleaved regions; {platform.machine()}, {os.cpu_count()} cores", "",
             "| plots | farmers | scheduler | partitions | " + " | ".join(f"{s} s" for s in STAGES)
             + " | other s | total s | plots/s | peak RSS MB | eligible plots |",
             "|" + "---|" * (9 + len(STAGES))]
    for r in results:
        lines.append(f"| {r['plots']:,} | {r['farmers']:,} | {r['scheduler']} | {r['partitions']} | "
                     + " | ".join(str(r[f"{s}_s"]) for s in STAGES)
                     + f" | {r['other_s']} | {r['total_s']} | {r['plots_per_s']:,} | {r['peak_rss_mb']:,} | {r['eligible']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048, help="tile side in pixels (a Sentinel-2 tile is 10980)")
    ap.add_argument("--dates", type=int, default=24)
    ap.add_argument("--plots", default="1000", help="comma-separated plot counts, one case each")
    ap.add_argument("--field-px", type=int, default=16, help="one field per cell of this many px: (size/field-px)^2 fields")
    ap.add_argument("--regions", type=int, default=7)
    ap.add_argument("--workers", default="1", help="comma-separated num_workers of the threaded scheduler")
    ap.add_argument("--cluster", action="store_true", help="also run on a 2-worker dask scheduler/worker cluster")
    ap.add_argument("--partition-px", type=int, default=None, help="imagery.partition_px (default: the config's)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case")
    ap.add_argument("--data", type=Path, default=HERE / "out" / "season2048")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-runs", action="store_true", help="keep the run folders (default: deleted once read)")
    args = ap.parse_args()

    meta = {"size": args.size, "dates": args.dates, "field_px": args.field_px, "seed": args.seed}
    imagery = args.data / "imagery"
    meta_path = imagery / "meta.json"
    if not meta_path.exists() or {k: v for k, v in json.loads(meta_path.read_text()).items() if k in meta} != meta:
        shutil.rmtree(imagery, ignore_errors=True)
        t0 = time.perf_counter()
        built = build_imagery(imagery, args.size, args.dates, args.field_px, args.seed)
        meta_path.write_text(json.dumps(meta | built | {"build_s": round(time.perf_counter() - t0, 1)}))
        print(f"imagery built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's agrisat, in the CLI and the workers
    env.pop("AGRISAT_OUTPUT_DIR", None)  # runs go to each case's folder
    cluster = Cluster(env) if args.cluster else None
    results = []
    try:
        for n in (int(v) for v in args.plots.split(",")):
            folder = args.data / f"plots-{n}-r{args.regions}"
            reg_meta = folder / "meta.json"
            want = meta | {"plots": n, "regions": args.regions}
            if not reg_meta.exists() or {k: v for k, v in json.loads(reg_meta.read_text()).items() if k in want} != want:
                shutil.rmtree(folder, ignore_errors=True)
                reg_meta.parent.mkdir(parents=True)
                reg_meta.write_text(json.dumps(want | build_registry(imagery, folder, n, args.regions, args.seed)))
            cases = [(int(w), None) for w in args.workers.split(",")] + ([(1, cluster.address)] if cluster else [])
            for workers, address in cases:
                cfg = write_config(folder, imagery, workers, args.partition_px)
                for k in range(args.repeat):
                    _warm(imagery)
                    run_id = f"bench-{'cluster' if address else f'w{workers}'}-{time.strftime('%Y%m%dT%H%M%S')}-{k}"
                    r = run_case(cfg, run_id, address, cluster.pids if address and cluster else [], env)
                    if not address:
                        r["scheduler"] = f"threads ({workers} worker{'s' * (workers > 1)})"
                    print(json.dumps(r), file=sys.stderr, flush=True)
                    results.append(r)
                    if not args.keep_runs:
                        shutil.rmtree(r["run_dir"], ignore_errors=True)
    finally:
        if cluster:
            cluster.close()
    print(table(results, meta | {"regions": args.regions}))


if __name__ == "__main__":
    main()
