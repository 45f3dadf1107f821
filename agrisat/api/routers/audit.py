"""The audit log of limit reads, for admins."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from agrisat.api.deps import EngineDep, require
from agrisat.api.models import AuditList
from agrisat.api.responses import AUTH_RESPONSES, etag_json
from agrisat.api.routers._params import utc
from agrisat.store import audit

router = APIRouter(tags=["audit"], dependencies=[Depends(require("admin"))], responses=AUTH_RESPONSES)


@router.get("/audit", response_model=AuditList)
def audit_log(request: Request, engine: EngineDep,
              since: Annotated[dt.datetime | None, Query(description="Only reads after this time (UTC if no offset).")] = None,
              ) -> Response:
    """The last 1000 limit reads (optionally after `since`), newest first."""
    return etag_json(request, AuditList.model_validate({"items": audit.recent(engine, utc(since))}))
