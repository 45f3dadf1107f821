"""Fixtures for the API: run folders, a store on SQLite or PostgreSQL, keys, and live servers.

PostgreSQL variants run when AGRISAT_TEST_PG_URL is set (.ci/run sets it) and skip otherwise.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from agrisat.api import Settings, create_app
from agrisat.store import init_schema, make_engine
from agrisat.store.keys import create_key
from agrisat.store.schema import metadata

from .fakes import write_run

PG_URL = os.environ.get("AGRISAT_TEST_PG_URL")
FARMERS = [f"F{i:03d}" for i in range(1, 251)]  # > 2 pages of 100
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'agrisat.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL store tests: set AGRISAT_TEST_PG_URL=postgresql://... (.ci/run does)")
    engine = make_engine(PG_URL)
    metadata.drop_all(engine)  # each test starts from an empty store
    engine.dispose()
    yield PG_URL


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    write_run(d, "run-a", FARMERS, base=1000.0)
    write_run(d, "run-b", FARMERS, base=5000.0)
    return d


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    init_schema(e)
    yield e
    e.dispose()


@pytest.fixture
def settings(runs_dir: Path, db_url: str) -> Settings:
    return Settings(output_dir=runs_dir, db_url=db_url, rate_per_s=1000.0, burst=1000)


def make_keys(engine: Engine) -> dict[str, str]:
    """One key per scope, plus 'slow' (1 request/s, burst 2) and 'revoked'."""
    keys = {s: create_key(engine, s, [s])[1] for s in ("limits:read", "plots:read", "admin")}
    keys["slow"] = create_key(engine, "slow", ["limits:read"], rate_per_s=1.0, burst=2)[1]
    from agrisat.store.keys import revoke_key

    rid, keys["revoked"] = create_key(engine, "revoked", ["admin"])
    revoke_key(engine, rid)
    return keys


@pytest.fixture
def client(settings: Settings, engine: Engine):
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as c:
        c.keys = make_keys(engine)  # type: ignore[attr-defined]
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`agrisat serve` in a subprocess on 127.0.0.1 (the real CLI, uvicorn and sockets)."""

    def __init__(self, runs_dir: Path, db_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "AGRISAT_OUTPUT_DIR": str(runs_dir), "AGRISAT_DB_URL": db_url,
               "AGRISAT_API_RATE": "1000", "AGRISAT_API_BURST": "1000", **(extra_env or {})}
        self.log = open(runs_dir / f"server-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "agrisat.cli", "serve", "--port", str(self.port)],
                                     env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start: {(runs_dir / f'server-{self.port}.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Engine, dict[str, str], Path]]:
    """A server over SQLite with run-a published; yields (server, engine, keys, runs dir)."""
    from agrisat.store import publish_run

    runs = tmp_path_factory.mktemp("live") / "runs"
    runs.mkdir()
    write_run(runs, "run-a", FARMERS, base=1000.0)
    write_run(runs, "run-b", FARMERS, base=5000.0)
    url = f"sqlite:///{runs / 'agrisat.db'}"
    engine = make_engine(url)
    init_schema(engine)
    keys = make_keys(engine)
    publish_run(engine, runs, "run-a")
    server = LiveServer(runs, url)
    try:
        yield server, engine, keys, runs
    finally:
        server.stop()
        engine.dispose()
