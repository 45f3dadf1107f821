"""Read queries. Each API request runs them inside one read snapshot (db.read_tx)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select

from agrisat.store.db import read_tx
from agrisat.store.records import with_published_at
from agrisat.store.schema import current_limits, limits, runs


@dataclass(frozen=True)
class LimitFilter:
    """``run_id`` and/or ``changed_since`` select from every published limit; with neither, the
    current limits. ``status`` narrows either."""

    run_id: str | None = None
    changed_since: dt.datetime | None = None
    status: str | None = None

    @property
    def current(self) -> bool:
        return self.run_id is None and self.changed_since is None


def publication(conn: Connection) -> int:
    """Sequence number of the last publish (0 before the first): changes exactly when current limits may."""
    return int(conn.execute(select(func.max(runs.c.pub_seq))).scalar() or 0)


def current_limit(conn: Connection, farmer_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(limits.c.doc, limits.c.published_at)
        .join(current_limits, current_limits.c.limit_id == limits.c.id)
        .where(current_limits.c.farmer_id == farmer_id)).first()
    return with_published_at(row.doc, row.published_at) if row else None


def limit_history(conn: Connection, farmer_id: str, max_rows: int = 1000) -> list[dict[str, Any]]:
    rows = conn.execute(select(limits.c.doc, limits.c.published_at).where(limits.c.farmer_id == farmer_id)
                        .order_by(limits.c.id.desc()).limit(max_rows))
    return [with_published_at(r.doc, r.published_at) for r in rows]


def _limits_query(f: LimitFilter) -> Select:
    q = select(limits.c.id, limits.c.doc, limits.c.published_at)
    if f.current:
        q = q.join(current_limits, current_limits.c.limit_id == limits.c.id)
    if f.run_id is not None:
        q = q.where(limits.c.run_id == f.run_id)
    if f.changed_since is not None:
        q = q.where(limits.c.published_at > f.changed_since)
    if f.status is not None:
        q = q.where(limits.c.status == f.status)
    return q.order_by(limits.c.id)


def limits_page(conn: Connection, f: LimitFilter, after_id: int, page_size: int
                ) -> tuple[list[dict[str, Any]], int | None]:
    """One page in publication order (keyset on limits.id); returns the records and the last id if
    there may be more."""
    rows = conn.execute(_limits_query(f).where(limits.c.id > after_id).limit(page_size + 1)).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    return [with_published_at(r.doc, r.published_at) for r in rows], (rows[-1].id if more else None)


def iter_limits(engine: Engine, f: LimitFilter, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every matching record from ONE snapshot, fetched in keyset batches (bounded memory)."""
    with read_tx(engine) as conn:
        after = 0
        while True:
            page, last = limits_page(conn, f, after, batch)
            yield from page
            if last is None:
                return
            after = last


def list_runs(conn: Connection, max_rows: int = 1000) -> list[dict[str, Any]]:
    rows = conn.execute(select(runs).order_by(runs.c.pub_seq.desc()).limit(max_rows))
    return [_run_summary(r) for r in rows]


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    r = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
    if r is None:
        return None
    return {**_run_summary(r), "manifest": json.loads(r.manifest)}


def current_run_of(conn: Connection, farmer_id: str) -> str | None:
    return conn.execute(select(current_limits.c.run_id).where(current_limits.c.farmer_id == farmer_id)).scalar()


def farmer_in_run(conn: Connection, farmer_id: str, run_id: str) -> bool:
    return conn.execute(select(limits.c.id).where(limits.c.farmer_id == farmer_id,
                                                  limits.c.run_id == run_id)).first() is not None


def _run_summary(r: Any) -> dict[str, Any]:
    return {"run_id": r.run_id, "publication": r.pub_seq,
            "published_at": r.published_at.isoformat(timespec="microseconds") + "Z",
            "created_utc": r.created_utc or None, "n_limits": r.n_limits,
            "policy_version": r.policy_version, "model_version": r.model_version}
