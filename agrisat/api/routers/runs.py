"""Published runs and their manifests (lineage: input hashes, versions, counts)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from agrisat.api.deps import EngineDep, require
from agrisat.api.models import RunDetail, RunList
from agrisat.api.responses import AUTH_RESPONSES, etag_json
from agrisat.api.routers._params import RunIdPath
from agrisat.store import queries
from agrisat.store.db import read_tx

router = APIRouter(prefix="/runs", tags=["runs"], dependencies=[Depends(require("limits:read"))],
                   responses=AUTH_RESPONSES)


@router.get("", response_model=RunList)
def list_runs(request: Request, engine: EngineDep) -> Response:
    """Published runs, last published first."""
    with read_tx(engine) as conn:
        return etag_json(request, RunList.model_validate({"items": queries.list_runs(conn)}))


@router.get("/{run_id}", response_model=RunDetail, responses={404: {"description": "Run not published."}})
def run_detail(run_id: RunIdPath, request: Request, engine: EngineDep) -> Response:
    """One published run with its manifest."""
    with read_tx(engine) as conn:
        rec = queries.get_run(conn, run_id)
    if rec is None:
        raise HTTPException(404, "run not published")
    return etag_json(request, RunDetail.model_validate(rec))
