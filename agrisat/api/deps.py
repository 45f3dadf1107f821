"""Dependencies injected into the routes: the store engine, the settings and the key checks.

Order of checks: a valid key (401) -> its rate (429) -> its scope (403). Routes depend on
``require(scope)``, which runs before any lookup, so a caller without the scope gets the same 403
whether or not the farmer exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from agrisat.api.settings import Settings
from agrisat.store.db import read_tx
from agrisat.store.keys import ApiKey, verify_key

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                    description="An API key from `agrisat keys create`: `Authorization: Bearer agr_...`")


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def authenticate(request: Request, engine: EngineDep, settings: SettingsDep,
                 creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiKey:
    if creds is None or not creds.credentials:
        raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
    cache = request.app.state.key_cache
    key = cache.get(creds.credentials)
    if key is None:
        with read_tx(engine) as conn:
            key = verify_key(conn, creds.credentials)
        if key is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        cache.put(creds.credentials, key)
    request.state.key_id = key.key_id  # for the audit log
    wait = request.app.state.buckets.take(key.key_id, key.rate_per_s or settings.rate_per_s,
                                         key.burst or settings.burst)
    if wait > 0:
        raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return key


def require(scope: str) -> Callable[..., ApiKey]:
    def check(key: Annotated[ApiKey, Depends(authenticate)]) -> ApiKey:
        if not key.allows(scope):
            raise HTTPException(403, f"this API key lacks the scope {scope}")
        return key

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check
