"""API keys: ``agr_<key_id>_<secret>``; only SHA-256(secret) is stored.

The key id is public (it appears in the audit log and in ``keys list``); the secret has 256 bits of
entropy, so one unsalted SHA-256 is enough (no password stretching needed) and the comparison is
constant-time. The full key is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from agrisat.errors import ConfigError
from agrisat.store.db import read_tx, utcnow, write_tx
from agrisat.store.schema import api_keys

SCOPES = ("limits:read", "plots:read", "admin")  # admin implies the others
PREFIX = "agr"
_DUMMY = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]
    rate_per_s: float | None
    burst: int | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(engine: Engine, name: str, scopes: list[str], rate_per_s: float | None = None,
               burst: int | None = None) -> tuple[str, str]:
    """Returns (key_id, full key). The full key cannot be recovered later."""
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise ConfigError(f"key {name!r}: unknown or missing scope(s) {bad}; choose from {', '.join(SCOPES)}")
    if rate_per_s is not None and rate_per_s <= 0 or burst is not None and burst < 1:
        raise ConfigError(f"key {name!r}: rate must be > 0 and burst >= 1")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with write_tx(engine) as conn:
        conn.execute(insert(api_keys).values(key_id=key_id, name=name, secret_sha256=_hash(secret),
                                             scopes=" ".join(sorted(set(scopes))), rate_per_s=rate_per_s,
                                             burst=burst, created_at=utcnow()))
    return key_id, f"{PREFIX}_{key_id}_{secret}"


def verify_key(conn: Connection, presented: str) -> ApiKey | None:
    """The key's record if ``presented`` is a valid, unrevoked key; None otherwise."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12 or len(presented) > 200:
        return None
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == parts[1])).first()
    ok = hmac.compare_digest(_hash(parts[2]), row.secret_sha256 if row else _DUMMY)
    if not ok or row is None or row.revoked_at is not None:
        return None
    return ApiKey(row.key_id, row.name, frozenset(row.scopes.split()), row.rate_per_s, row.burst)


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    with read_tx(engine) as conn:
        rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
    return [{"key_id": r.key_id, "name": r.name, "scopes": r.scopes, "rate_per_s": r.rate_per_s,
             "burst": r.burst, "created_at": r.created_at, "revoked_at": r.revoked_at} for r in rows]


def revoke_key(engine: Engine, key_id: str) -> bool:
    with write_tx(engine) as conn:
        n = conn.execute(update(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=utcnow())).rowcount
    return n == 1
