"""Path and query parameters shared by several routers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import HTTPException, Path, Query

from agrisat.api.models import Status
from agrisat.store.db import to_utc_naive

# Identifiers are free text in the registry; refuse only control characters and absurd lengths
# (PostgreSQL rejects NUL in text, and such ids never come from a run).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

FarmerId = Annotated[str, Path(min_length=1, max_length=200, pattern=ID_PATTERN, examples=["F01"])]
RunIdQuery = Annotated[str | None, Query(min_length=1, max_length=200, pattern=ID_PATTERN,
                                         description="Only limits of this run.")]
StatusQuery = Annotated[Status | None, Query(description="Only limits with this status.")]
ChangedSince = Annotated[dt.datetime | None, Query(
    description="Only limits published after this time (ISO 8601; UTC if no offset), in any run.")]


def utc(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    try:
        return to_utc_naive(t)
    except (OverflowError, ValueError) as e:
        raise HTTPException(400, f"changed_since: out of range: {e}") from e
RunIdPath = Annotated[str, Path(min_length=1, max_length=200, pattern=ID_PATTERN)]
