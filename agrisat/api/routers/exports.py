"""Bulk export of limits, streamed as NDJSON, CSV or Parquet from one snapshot (bounded memory)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from agrisat.api.deps import EngineDep, require
from agrisat.api.responses import AUTH_RESPONSES
from agrisat.api.routers._params import ChangedSince, RunIdQuery, StatusQuery, utc
from agrisat.store import queries
from agrisat.store.records import EXPORT_SCHEMA

router = APIRouter(prefix="/exports", tags=["exports"], dependencies=[Depends(require("limits:read"))],
                   responses={k: v for k, v in AUTH_RESPONSES.items() if k != 304})

MEDIA = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
         "parquet": "application/vnd.apache.parquet"}
BATCH = 2000


@router.get("/limits", response_class=StreamingResponse,
            responses={200: {"content": {m: {} for m in MEDIA.values()},
                             "description": "The limits, one row per limit, in publication order."}})
def export_limits(engine: EngineDep, format: Literal["ndjson", "csv", "parquet"] = "ndjson",
                  run_id: RunIdQuery = None, status: StatusQuery = None,
                  changed_since: ChangedSince = None) -> StreamingResponse:
    """Every matching limit (default: the current limits) in one file. Columns follow limits.parquet
    plus `published_at`; in CSV, list columns are JSON text."""
    f = queries.LimitFilter(run_id=run_id, changed_since=utc(changed_since), status=status)
    rows = queries.iter_limits(engine, f, batch=BATCH)
    body = {"ndjson": _ndjson, "csv": _csv, "parquet": _parquet}[format](rows)
    name = f"limits-{run_id or ('changed' if changed_since else 'current')}.{format}"
    return StreamingResponse(body, media_type=MEDIA[format],
                             headers={"Content-Disposition": f'attachment; filename="{_safe(name)}"',
                                      "Cache-Control": "private, no-store"})


def _ndjson(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for batch in _batches(rows):
        yield "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch).encode()


def _csv(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    cols = EXPORT_SCHEMA.names
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for batch in _batches(rows):
        for r in batch:
            writer.writerow([_cell(r.get(c)) for c in cols])
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


def _cell(v: Any) -> Any:
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else ("" if v is None else v)


class _Chunks(io.RawIOBase):
    """A write-only file that hands back what was written since the last drain."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def _parquet(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    sink = _Chunks()
    with pq.ParquetWriter(sink, EXPORT_SCHEMA) as writer:  # one row group per batch
        for batch in _batches(rows):
            writer.write_table(pa.Table.from_pylist(batch, schema=EXPORT_SCHEMA))
            yield sink.drain()
    yield sink.drain()  # the footer


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, BATCH)):
        yield batch


def _safe(name: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in name)[:150]  # header-safe
