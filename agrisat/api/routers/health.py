"""Liveness and readiness (no key needed; they reveal nothing about farmers)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.exc import SQLAlchemyError

from agrisat.api.deps import EngineDep, SettingsDep
from agrisat.api.models import Health
from agrisat.store import queries
from agrisat.store.db import read_tx, schema_ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(engine: EngineDep, settings: SettingsDep, response: Response) -> Health:
    """The store answers and has its tables, and the runs folder is there."""
    try:
        if not schema_ready(engine):
            raise SQLAlchemyError("store tables missing")
        with read_tx(engine) as conn:
            pub = queries.publication(conn)
    except SQLAlchemyError as e:
        response.status_code = 503
        return Health(status="unavailable", detail=f"store: {e.__class__.__name__}")
    if not settings.output_dir.is_dir():
        response.status_code = 503
        return Health(status="unavailable", detail="runs folder missing")
    return Health(status="ready", publication=pub)
