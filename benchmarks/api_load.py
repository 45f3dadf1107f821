"""Bounded load test of the lending-system API on 127.0.0.1.

Builds a run of N farmers, publishes it to a fresh SQLite store, starts `agrisat serve` (one
uvicorn worker) on a free port, and sends REQUESTS requests per scenario from THREADS client
threads (httpx, keep-alive). Every limit read is audited (one SQLite write per request), as in
production. Prints p50/p90/p99 latency and requests/s per scenario, and machine facts.

    .venv/bin/python benchmarks/api_load.py [--farmers 2000] [--requests 3000] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agrisat.store import init_schema, make_engine, publish_run  # noqa: E402
from agrisat.store.keys import create_key  # noqa: E402
from tests.api.fakes import write_run  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario(url: str, key: str, paths: list[str], threads: int, etag_for: dict[str, str] | None = None
             ) -> dict[str, float]:
    local: dict[int, httpx.Client] = {}  # one keep-alive client per thread

    def one(path: str) -> float:
        tid = threading.get_ident()
        if tid not in local:
            local[tid] = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        c = local[tid]
        headers = {"If-None-Match": etag_for[path]} if etag_for else {}
        t0 = time.perf_counter()
        r = c.get(path, headers=headers)
        dt = time.perf_counter() - t0
        if r.status_code not in (200, 304):
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
        return dt

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        lat = sorted(pool.map(one, paths))
    wall = time.perf_counter() - t0
    for c in local.values():
        c.close()
    q = statistics.quantiles(lat, n=100)
    return {"n": len(lat), "p50_ms": q[49] * 1e3, "p90_ms": q[89] * 1e3, "p99_ms": q[98] * 1e3,
            "rps": len(lat) / wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--farmers", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        runs.mkdir()
        farmers = [f"F{i:05d}" for i in range(args.farmers)]
        write_run(runs, "bench", farmers)
        db = f"sqlite:///{runs / 'agrisat.db'}"
        engine = make_engine(db)
        init_schema(engine)
        publish_run(engine, runs, "bench")
        key = create_key(engine, "bench", ["limits:read"], rate_per_s=1e6, burst=10**6)[1]
        engine.dispose()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "AGRISAT_OUTPUT_DIR": str(runs), "AGRISAT_DB_URL": db}
        server = subprocess.Popen([sys.executable, "-m", "agrisat.cli", "-q", "serve", "--port", str(port)],
                                  env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            limit_paths = [f"/v1/farmers/{rng.choice(farmers)}/limit" for _ in range(args.requests)]
            scenario(url, key, limit_paths[:200], args.threads)  # warm-up
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
                etags = {p: c.get(p).headers["etag"] for p in set(limit_paths)}
            page_paths = [f"/v1/limits?page_size=100&run_id=bench&status={rng.choice(['approved', 'review'])}"
                          for _ in range(args.requests // 3)]
            results = {
                "GET /v1/farmers/{id}/limit (200)": scenario(url, key, limit_paths, args.threads),
                "same, If-None-Match (304)": scenario(url, key, limit_paths, args.threads, etags),
                "GET /v1/limits page of 100": scenario(url, key, page_paths, args.threads),
            }
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    print(f"server: agrisat serve (1 uvicorn worker), SQLite WAL store, audit row per read; client: "
          f"{args.threads} httpx threads on the same machine; {args.farmers} farmers published")
    print("| scenario | requests | p50 ms | p90 ms | p99 ms | requests/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['n']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.0f} |")


if __name__ == "__main__":
    main()
