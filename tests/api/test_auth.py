"""The auth matrix against a live server: no key, bad keys, each scope x each endpoint; rate limits;
the 403 that does not tell whether a farmer exists; the audit log of limit reads."""

from __future__ import annotations

import time

import httpx
import pytest

from agrisat.store import audit

from .conftest import auth

ENDPOINTS = [  # (path, scope needed)
    ("/v1/farmers/F001/limit", "limits:read"),
    ("/v1/farmers/F001/limits", "limits:read"),
    ("/v1/limits", "limits:read"),
    ("/v1/exports/limits?format=csv", "limits:read"),
    ("/v1/runs", "limits:read"),
    ("/v1/runs/run-a", "limits:read"),
    ("/v1/farmers/F001/plots", "plots:read"),
    ("/v1/audit", "admin"),
]
BAD_KEYS = {
    "none": None,
    "garbage": "not-a-key",
    "unknown-id": "agr_000000000000_" + "x" * 43,
    "revoked": "revoked",
}


@pytest.fixture(scope="module")
def http(live):
    server, _engine, keys, _runs = live
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c, keys


@pytest.mark.parametrize("path,_scope", ENDPOINTS)
@pytest.mark.parametrize("bad", list(BAD_KEYS))
def test_missing_or_invalid_key_is_401(http, path, _scope, bad):
    c, keys = http
    key = keys["revoked"] if bad == "revoked" else BAD_KEYS[bad]
    r = c.get(path, headers=auth(key) if key else {})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path,needed", ENDPOINTS)
@pytest.mark.parametrize("scope", ["limits:read", "plots:read", "admin"])
def test_scope_matrix(http, path, needed, scope):
    c, keys = http
    r = c.get(path, headers=auth(keys[scope]))
    allowed = scope == needed or scope == "admin"
    assert r.status_code == (200 if allowed else 403), r.text
    if not allowed:
        assert r.json() == {"detail": f"this API key lacks the scope {needed}"}


@pytest.mark.parametrize("suffix", ["limit", "limits", "plots"])
def test_403_does_not_reveal_whether_a_farmer_exists(http, suffix):
    c, keys = http
    other = "plots:read" if suffix != "plots" else "limits:read"
    known = c.get(f"/v1/farmers/F001/{suffix}", headers=auth(keys[other]))
    unknown = c.get(f"/v1/farmers/NOBODY/{suffix}", headers=auth(keys[other]))
    assert known.status_code == unknown.status_code == 403
    assert known.content == unknown.content
    drop = {"date", "content-length"}
    assert {k: v for k, v in known.headers.items() if k not in drop} == \
           {k: v for k, v in unknown.headers.items() if k not in drop}


def test_unknown_farmer_is_404_with_scope(http):
    c, keys = http
    assert c.get("/v1/farmers/NOBODY/limit", headers=auth(keys["limits:read"])).status_code == 404
    assert c.get("/v1/farmers/NOBODY/plots", headers=auth(keys["plots:read"])).status_code == 404


def test_rate_limit_429_with_retry_after(http):
    c, keys = http
    codes = [c.get("/v1/farmers/F001/limit", headers=auth(keys["slow"])) for _ in range(4)]
    assert [r.status_code for r in codes[:2]] == [200, 200]  # the burst
    limited = [r for r in codes[2:] if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1
    time.sleep(1.1)  # 1 token/s
    assert c.get("/v1/farmers/F001/limit", headers=auth(keys["slow"])).status_code == 200


def test_every_limit_read_is_audited(live, http):
    _server, engine, keys, _runs = live
    c, _ = http
    c.get("/v1/farmers/F002/limit", headers=auth(keys["limits:read"]))
    c.get("/v1/farmers/F002/limit", headers=auth(keys["plots:read"]))
    c.get("/v1/farmers/F002/limit")
    c.get("/v1/limits?status=review&page_size=5", headers=auth(keys["limits:read"]))
    c.get("/v1/farmers/F002/plots", headers=auth(keys["plots:read"]))  # not a limit read
    rows = audit.recent(engine)
    f2 = [r for r in rows if r["farmer_id"] == "F002"]
    key_ids = {k: v.split("_")[1] for k, v in keys.items()}
    assert [(r["key_id"], r["status"]) for r in f2[:3]] == [
        (None, 401), (key_ids["plots:read"], 403), (key_ids["limits:read"], 200)]
    assert all(r["path"] != "/v1/farmers/F002/plots" for r in rows)
    assert any(r["query"] == "status=review&page_size=5" and r["status"] == 200 for r in rows)
