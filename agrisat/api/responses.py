"""JSON responses with a strong ETag (SHA-256 of the body) and 304 on a matching If-None-Match.

The body is canonical JSON of the payload, so the ETag changes exactly when the data does (a new
publish, a new page); a lending system polling the current limit pays one small 304 otherwise.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from agrisat.api.models import Problem

CACHE_HEADERS = {"Cache-Control": "private, no-cache", "Vary": "Authorization"}

# Documented on every authenticated route (OpenAPI).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
    401: {"model": Problem, "description": "Missing, invalid or revoked API key."},
    403: {"model": Problem, "description": "The key lacks the scope this route needs."},
    429: {"model": Problem, "description": "Rate limit exceeded; see Retry-After."},
}


def etag_json(request: Request, payload: BaseModel) -> Response:
    body = payload.model_dump_json().encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
    headers = {"ETag": etag, **CACHE_HEADERS}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}  # weak comparison (RFC 9110 13.1.2)
    return "*" in tags or etag in tags
