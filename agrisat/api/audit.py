"""ASGI middleware that writes one audit row per limit read, including refused ones (401/403/429).

The row is written when the status is known and *before* the response starts, so a read that
could not be audited is never answered (the client gets a 500 instead).
"""

from __future__ import annotations

import re
from typing import Any

import anyio
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agrisat.store.audit import record_read

# Routes that read limits; group 1 is the farmer id when the path names one.
AUDITED = re.compile(r"^/v1/(?:farmers/([^/]+)/limits?|limits|exports/limits)/?$")


class AuditMiddleware:
    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app, self.engine = app, engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = AUDITED.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        written = False

        async def audit(status: int) -> None:
            nonlocal written
            written = True
            state: dict[str, Any] = scope.get("state") or {}
            query = scope.get("query_string", b"").decode("latin-1") or None
            await anyio.to_thread.run_sync(lambda: record_read(
                self.engine, key_id=state.get("key_id"), method=scope["method"], path=scope["path"],
                farmer_id=match.group(1), query=query, status=status))

        async def send_audited(message: Message) -> None:
            if message["type"] == "http.response.start" and not written:
                await audit(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception:
            if not written:
                await audit(500)
            raise
