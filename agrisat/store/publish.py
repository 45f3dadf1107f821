"""Publish a finished run: its limits become current in ONE transaction.

Readers run on snapshots (db.py), so until the commit every reader sees the previous run's limits
and from the commit on the new ones, never a mix. A farmer missing from the new run keeps the
limit of the run that last covered it (runs may cover one region); its ``valid_until`` says how
long that limit holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from agrisat.errors import InputDataError, RunStoreError
from agrisat.io.runstore import find_run
from agrisat.store import records
from agrisat.store.db import utcnow, write_tx
from agrisat.store.schema import current_limits, limits, runs


@dataclass(frozen=True)
class Published:
    run_id: str
    pub_seq: int
    n_limits: int


def publish_run(engine: Engine, output_dir: Path, run_id: str) -> Published:
    path = find_run(output_dir, run_id)
    frame, manifest = _read_run(path, run_id)
    docs = records.limit_records(frame)
    now = utcnow()
    try:
        with write_tx(engine) as conn:
            if conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first():
                raise RunStoreError(f"run {run_id}: already published")
            seq = (conn.execute(select(func.max(runs.c.pub_seq))).scalar() or 0) + 1
            conn.execute(insert(runs).values(
                run_id=run_id, pub_seq=seq, published_at=now, created_utc=str(manifest.get("created_utc", "")),
                n_limits=len(docs), policy_version=manifest.get("policy_version"),
                model_version=manifest.get("model_version"), manifest=json.dumps(manifest, sort_keys=True)))
            if docs:
                conn.execute(insert(limits), [
                    {"run_id": run_id, "farmer_id": d["farmer_id"], "status": d["status"], "published_at": now,
                     "doc": records.dumps(d)} for d in docs])
            new = select(limits.c.farmer_id).where(limits.c.run_id == run_id)
            conn.execute(delete(current_limits).where(current_limits.c.farmer_id.in_(new)))
            conn.execute(insert(current_limits).from_select(
                ["farmer_id", "limit_id", "run_id"],
                select(limits.c.farmer_id, limits.c.id, limits.c.run_id).where(limits.c.run_id == run_id)))
    except SQLAlchemyError as e:  # IntegrityError: most likely a concurrent publish of the same run
        raise RunStoreError(f"run {run_id}: publish failed, nothing changed: {e.__class__.__name__}: {e}") from e
    return Published(run_id, seq, len(docs))


def _read_run(path: Path, run_id: str) -> tuple[pd.DataFrame, dict]:
    src = path / "limits.parquet"
    try:
        frame = pd.read_parquet(src)
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise RunStoreError(f"{path}: cannot read run: {e}") from e
    missing = [c for c in records.REQUIRED if c not in frame.columns]
    if missing:
        raise InputDataError(f"{src}: missing column(s) {', '.join(missing)}")
    other = sorted(set(frame["run_id"].astype(str)) - {run_id})
    if other:
        raise InputDataError(f"{src}: rows belong to run(s) {', '.join(other)}, not {run_id}")
    for col in records.REQUIRED:
        empty = frame[col].isna()
        if empty.any():  # row numbers as in the README's convention: header = row 1
            raise InputDataError(f"{src}: row {int(empty.to_numpy().argmax()) + 2}: {col} is empty")
    dup = frame["farmer_id"][frame["farmer_id"].duplicated()]
    if len(dup):
        raise InputDataError(f"{src}: farmer {dup.iloc[0]} appears more than once")
    return frame, manifest
