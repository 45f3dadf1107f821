"""Limits: a farmer's current limit and history; lists by run, by change time, or the current set."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from agrisat.api.deps import EngineDep, require
from agrisat.api.models import Limit, LimitHistory, LimitPage
from agrisat.api.responses import AUTH_RESPONSES, etag_json
from agrisat.api.routers._params import ChangedSince, FarmerId, RunIdQuery, StatusQuery, utc
from agrisat.store import queries
from agrisat.store.db import read_tx

router = APIRouter(tags=["limits"], dependencies=[Depends(require("limits:read"))], responses=AUTH_RESPONSES)


@router.get("/farmers/{farmer_id}/limit", response_model=Limit,
            responses={404: {"description": "No published limit for this farmer."}})
def current_limit(farmer_id: FarmerId, request: Request, engine: EngineDep) -> Response:
    """The farmer's current limit: from the last published run that covered the farmer."""
    with read_tx(engine) as conn:
        rec = queries.current_limit(conn, farmer_id)
    if rec is None:
        raise HTTPException(404, "no published limit for this farmer")
    return etag_json(request, Limit.model_validate(rec))


@router.get("/farmers/{farmer_id}/limits", response_model=LimitHistory)
def limit_history(farmer_id: FarmerId, request: Request, engine: EngineDep) -> Response:
    """Every published limit of the farmer, newest first (empty if none)."""
    with read_tx(engine) as conn:
        recs = queries.limit_history(conn, farmer_id)
    return etag_json(request, LimitHistory(farmer_id=farmer_id, items=[Limit.model_validate(r) for r in recs]))


@router.get("/limits", response_model=LimitPage,
            responses={400: {"description": "Malformed cursor."},
                       409: {"description": "Limits were published since the first page; start again."}})
def list_limits(request: Request, engine: EngineDep, run_id: RunIdQuery = None, status: StatusQuery = None,
                changed_since: ChangedSince = None,
                cursor: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_-]+$",
                                                             description="`next_cursor` of the previous page.")] = None,
                page_size: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """Limits in publication order, one page at a time.

    With `run_id` and/or `changed_since`: every published limit that matches (stable under new
    publishes). With neither: the current limits; if a run is published while you page through them
    the next page answers 409 and you start again, so the pages you keep are one consistent set.
    """
    f = queries.LimitFilter(run_id=run_id, changed_since=utc(changed_since), status=status)
    after, pub_at_start = _decode(cursor)
    with read_tx(engine) as conn:
        pub = queries.publication(conn)
        if f.current and cursor is not None and pub_at_start != pub:
            raise HTTPException(409, "limits were published since this pagination began; start again without cursor")
        recs, last = queries.limits_page(conn, f, after, page_size)
    page = LimitPage(items=[Limit.model_validate(r) for r in recs], publication=pub,
                     next_cursor=_encode(last, pub) if last is not None else None)
    return etag_json(request, page)


def _encode(after: int, pub: int) -> str:
    return base64.urlsafe_b64encode(f"{after}.{pub}".encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[int, int]:
    if cursor is None:
        return 0, 0
    try:
        after, pub = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(".")
        values = int(after), int(pub)
        if min(values) < 0 or max(values) > 2**62:
            raise ValueError
        return values
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(400, "malformed cursor") from None
