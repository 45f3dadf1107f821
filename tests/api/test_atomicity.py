"""Publish atomicity against a live server: readers hammering current limits during publishes see
all of one run or all of the next, never a mix and never a gap (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time

import httpx
from sqlalchemy import event

from agrisat.store import init_schema, make_engine, publish_run

from .conftest import LiveServer, auth, make_keys
from .fakes import write_run

N = 1000
RUNS = ["r1", "r2", "r3", "r4"]


def test_readers_never_see_a_mix(tmp_path, db_url):
    runs = tmp_path / "runs"
    runs.mkdir()
    farmers = [f"A{i:04d}" for i in range(N)]
    for k, run in enumerate(RUNS):
        write_run(runs, run, farmers, base=1000.0 * (k + 1))
    engine = make_engine(db_url)
    init_schema(engine)
    key = make_keys(engine)["limits:read"]
    publish_run(engine, runs, "r1")

    @event.listens_for(engine, "before_cursor_execute")
    def widen_window(conn, cursor, statement, *args):  # noqa: ANN001 - SQLAlchemy event signature
        if statement.lstrip().upper().startswith("INSERT INTO CURRENT_LIMITS"):
            time.sleep(0.3)  # old rows deleted, new ones not yet inserted: a reader must not see this

    server = LiveServer(runs, db_url)
    seen: list[tuple[str, ...]] = []
    errors: list[str] = []
    stop = threading.Event()

    def reader(path: str) -> None:
        with httpx.Client(base_url=server.url, headers=auth(key), timeout=10) as c:
            while not stop.is_set():
                r = c.get(path)
                if r.status_code != 200:
                    errors.append(f"{path}: {r.status_code} {r.text[:200]}")
                    continue
                body = r.json()
                items = body["items"] if "items" in body else [body]
                if "items" in body and len(items) != N:
                    errors.append(f"{path}: {len(items)} limits, expected {N}")
                seen.append(tuple(sorted({x["run_id"] for x in items})))

    threads = [threading.Thread(target=reader, args=(p,)) for p in
               ("/v1/limits?page_size=1000", "/v1/limits?page_size=1000", "/v1/farmers/A0500/limit")]
    try:
        for t in threads:
            t.start()
        for run in RUNS[1:]:
            time.sleep(0.2)
            publish_run(engine, runs, run)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
        engine.dispose()
    assert not errors, errors[:5]
    assert all(len(s) == 1 for s in seen), [s for s in seen if len(s) != 1][:5]
    assert {s[0] for s in seen} >= {"r1", "r4"} and len(seen) > 20
