"""The audit log: one row per limit read, written before the response leaves the server."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, insert, select

from agrisat.store.db import read_tx, utcnow, write_tx
from agrisat.store.schema import audit_log


def record_read(engine: Engine, *, key_id: str | None, method: str, path: str, farmer_id: str | None,
                query: str | None, status: int) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(audit_log).values(at=utcnow(), key_id=key_id, method=method, path=path[:500],
                                              farmer_id=farmer_id[:200] if farmer_id else None,
                                              query=query[:1000] if query else None, status=status))


def recent(engine: Engine, since: dt.datetime | None = None, max_rows: int = 1000) -> list[dict[str, Any]]:
    q = select(audit_log).order_by(audit_log.c.id.desc()).limit(max_rows)
    if since is not None:
        q = q.where(audit_log.c.at > since)
    with read_tx(engine) as conn:
        return [{"id": r.id, "at": r.at.isoformat(timespec="microseconds") + "Z", "key_id": r.key_id,
                 "method": r.method, "path": r.path, "farmer_id": r.farmer_id, "query": r.query,
                 "status": r.status} for r in conn.execute(q)]
