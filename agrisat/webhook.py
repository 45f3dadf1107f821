"""Push published limits to the lending system: signed, idempotent, retried, dead-lettered.

Each limit is POSTed as JSON ``{"idempotency_key": "<run_id>:<farmer_id>", "limit": {...}}`` with

    X-Agrisat-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with AGRISAT_WEBHOOK_SECRET>
    Idempotency-Key:     <run_id>:<farmer_id>

The receiver verifies the signature over the exact bytes it received and ignores a key it has
already processed (a retry after a lost 200 sends the same bytes again). 5xx, 408, 429, timeouts and
connection errors are retried with exponential backoff (bounded attempts); any other 4xx is final.
After the last failure the delivery is recorded as ``dead`` in the ``deliveries`` table with its
payload, and ``agrisat push RUN_ID --retry-dead`` sends it again. Delivered keys are never re-sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine, delete, insert, select

from agrisat.errors import ConfigError
from agrisat.store import queries
from agrisat.store.db import read_tx, utcnow, write_tx
from agrisat.store.schema import deliveries

log = logging.getLogger("agrisat.push")
SIGNATURE_HEADER = "X-Agrisat-Signature"
RETRYABLE = {408, 425, 429}
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """For receivers (and our tests): constant-time check of the signature header."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True)
class Attempt:
    ok: bool
    attempts: int
    error: str | None = None


class LimitExporter(Protocol):
    def send(self, idempotency_key: str, body: bytes) -> Attempt: ...


class WebhookExporter:
    def __init__(self, url: str, secret: str | None, *, timeout_s: float = 10.0, max_attempts: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"AGRISAT_WEBHOOK_URL: not an http(s) URL: {url!r}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK:  # limits never travel in clear text
            raise ConfigError(f"AGRISAT_WEBHOOK_URL: {url!r}: use https (http only to a loopback address)")
        if not secret or len(secret) < 16:
            raise ConfigError("AGRISAT_WEBHOOK_SECRET: missing or shorter than 16 characters "
                              "(set it in the environment; it is never read from files)")
        if max_attempts < 1:
            raise ConfigError("webhook: max_attempts must be >= 1")
        self.url, self._secret = url, secret
        self.max_attempts, self.backoff_s, self.max_backoff_s = max_attempts, backoff_s, max_backoff_s
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._sleep = sleep

    def send(self, idempotency_key: str, body: bytes) -> Attempt:
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body),
                   "Idempotency-Key": idempotency_key, "User-Agent": "agrisat-push"}
        error = None
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                r = self._client.post(self.url, content=body, headers=headers)
                if 200 <= r.status_code < 300:
                    return Attempt(True, attempt)
                error = f"HTTP {r.status_code}"
                if r.status_code < 500 and r.status_code not in RETRYABLE:
                    return Attempt(False, attempt, error)  # the receiver refused this body: final
                retry_after = _retry_after(r.headers.get("Retry-After"))
            except httpx.TransportError as e:  # timeouts, refused connections, resets
                error = f"{e.__class__.__name__}: {e}"
            if attempt < self.max_attempts:
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                self._sleep(min(self.max_backoff_s, max(delay, retry_after or 0.0)))
        return Attempt(False, self.max_attempts, error)

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class PushResult:
    delivered: int
    skipped: int
    dead: int


def push_run(engine: Engine, exporter: LimitExporter, run_id: str, *, url: str, retry_dead: bool = False
             ) -> PushResult:
    """Send every limit of a published run that was not delivered yet (and not dead, unless
    ``retry_dead``); record each outcome."""
    with read_tx(engine) as conn:
        done = {r.idempotency_key: r.status for r in conn.execute(
            select(deliveries.c.idempotency_key, deliveries.c.status).where(deliveries.c.run_id == run_id))}
    delivered = skipped = dead = 0
    for rec in queries.iter_limits(engine, queries.LimitFilter(run_id=run_id)):
        key = f"{run_id}:{rec['farmer_id']}"
        if done.get(key) == "delivered" or (done.get(key) == "dead" and not retry_dead):
            skipped += 1
            continue
        body = json.dumps({"idempotency_key": key, "limit": rec}, ensure_ascii=False, sort_keys=True).encode()
        result = exporter.send(key, body)
        _record(engine, key, run_id, rec["farmer_id"], url, result, body)
        if result.ok:
            delivered += 1
        else:
            dead += 1
            log.warning("push %s: dead letter after %d attempt(s): %s", key, result.attempts, result.error)
    return PushResult(delivered, skipped, dead)


def dead_letters(engine: Engine, run_id: str | None = None) -> list[dict[str, Any]]:
    q = select(deliveries).where(deliveries.c.status == "dead").order_by(deliveries.c.updated_at)
    if run_id:
        q = q.where(deliveries.c.run_id == run_id)
    with read_tx(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def _record(engine: Engine, key: str, run_id: str, farmer_id: str, url: str, result: Attempt, body: bytes) -> None:
    with write_tx(engine) as conn:
        conn.execute(delete(deliveries).where(deliveries.c.idempotency_key == key))
        conn.execute(insert(deliveries).values(
            idempotency_key=key, run_id=run_id, farmer_id=farmer_id, url=url,
            status="delivered" if result.ok else "dead", attempts=result.attempts,
            last_error=(result.error or "")[:1000] or None, payload=body.decode(), updated_at=utcnow()))


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
