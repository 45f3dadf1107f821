"""The app factory: ``uvicorn --factory agrisat.api.app:create_app`` or ``agrisat serve``.

Routes only read the store; publishing and pushing are CLI jobs (agrisat publish / push).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

import agrisat
from agrisat.api.audit import AuditMiddleware
from agrisat.api.routers import audit, exports, health, limits, plots, runs
from agrisat.api.security import KeyCache, TokenBuckets
from agrisat.api.settings import Settings
from agrisat.store import init_schema, make_engine

DESCRIPTION = """Current and past credit limits per farmer, with reasons and lineage, for the bank's
lending system. Every route under /v1 except the OpenAPI document needs an API key
(`Authorization: Bearer agr_...`, created with `agrisat keys create`) with the route's scope:
`limits:read`, `plots:read` or `admin` (all scopes). Reads answer with an ETag; send it back in
If-None-Match to get 304 when nothing changed."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    engine = make_engine(settings.db_url)
    init_schema(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="agrisat lending API", version=agrisat.__version__, description=DESCRIPTION,
                  openapi_url="/v1/openapi.json", docs_url="/v1/docs", redoc_url=None, lifespan=lifespan)
    app.state.settings, app.state.engine = settings, engine
    app.state.key_cache, app.state.buckets = KeyCache(), TokenBuckets()
    for r in (limits.router, plots.router, runs.router, exports.router, audit.router):
        app.include_router(r, prefix="/v1")
    app.include_router(health.router)
    app.add_middleware(AuditMiddleware, engine=engine)

    @app.exception_handler(SQLAlchemyError)
    async def store_unavailable(_request: Request, _exc: SQLAlchemyError) -> JSONResponse:
        # Details go to the server log, not to the client (they may name hosts and tables).
        import logging

        logging.getLogger("agrisat.api").exception("store error")
        return JSONResponse({"detail": "store unavailable"}, status_code=503, headers={"Retry-After": "5"})

    return app
