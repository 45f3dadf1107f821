"""Read endpoints in process (TestClient), on SQLite and PostgreSQL: pages, ETags, exports, plots."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from agrisat.store import publish_run

from .conftest import FARMERS, auth


@pytest.fixture
def published(client, engine, runs_dir):
    publish_run(engine, runs_dir, "run-a")
    return client, auth(client.keys["limits:read"])


def test_pages_cover_every_current_limit_once(published):
    c, h = published
    seen, cursor, pages = [], None, 0
    while True:
        r = c.get("/v1/limits", params={"page_size": 100, **({"cursor": cursor} if cursor else {})}, headers=h)
        assert r.status_code == 200
        body = r.json()
        seen += [x["farmer_id"] for x in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == FARMERS


def test_filters_by_run_and_status(published, engine, runs_dir):
    c, h = published
    publish_run(engine, runs_dir, "run-b")
    r = c.get("/v1/limits", params={"run_id": "run-a", "status": "declined", "page_size": 1000}, headers=h)
    items = r.json()["items"]
    assert {x["run_id"] for x in items} == {"run-a"} and {x["status"] for x in items} == {"declined"}
    assert len(items) == len(FARMERS[2::3])
    cur = c.get("/v1/limits", params={"page_size": 1000}, headers=h).json()
    assert {x["run_id"] for x in cur["items"]} == {"run-b"} and cur["publication"] == 2
    since = items[0]["published_at"]
    changed = c.get("/v1/limits", params={"changed_since": since, "page_size": 1000}, headers=h).json()
    assert {x["run_id"] for x in changed["items"]} == {"run-b"}


def test_publish_between_pages_of_current_limits_is_409(published, engine, runs_dir):
    c, h = published
    first = c.get("/v1/limits", params={"page_size": 100}, headers=h).json()
    publish_run(engine, runs_dir, "run-b")
    r = c.get("/v1/limits", params={"page_size": 100, "cursor": first["next_cursor"]}, headers=h)
    assert r.status_code == 409
    # A run's own pages are not affected by later publishes.
    first = c.get("/v1/limits", params={"run_id": "run-a"}, headers=h).json()
    assert c.get("/v1/limits", params={"run_id": "run-a", "cursor": first["next_cursor"]},
                 headers=h).json()["items"][0]["farmer_id"] == "F101"


@pytest.mark.parametrize("cursor", ["x", "!!!", "MTIz", "LTEuMA"])  # 422: not base64url
def test_malformed_cursor_is_400(published, cursor):
    c, h = published
    assert c.get("/v1/limits", params={"cursor": cursor}, headers=h).status_code in (400, 422)


def test_etag_and_if_none_match(published, engine, runs_dir):
    c, h = published
    r = c.get("/v1/farmers/F001/limit", headers=h)
    etag = r.headers["etag"]
    assert r.status_code == 200 and etag.startswith('"') and r.headers["cache-control"] == "private, no-cache"
    again = c.get("/v1/farmers/F001/limit", headers={**h, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert c.get("/v1/farmers/F001/limit", headers={**h, "If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert c.get("/v1/farmers/F001/limit", headers={**h, "If-None-Match": '"other"'}).status_code == 200
    publish_run(engine, runs_dir, "run-b")
    new = c.get("/v1/farmers/F001/limit", headers={**h, "If-None-Match": etag})
    assert new.status_code == 200 and new.headers["etag"] != etag and new.json()["limit"] == 5000.0
    page = c.get("/v1/limits", headers=h)
    assert c.get("/v1/limits", headers={**h, "If-None-Match": page.headers["etag"]}).status_code == 304


def test_history_newest_first(published, engine, runs_dir):
    c, h = published
    publish_run(engine, runs_dir, "run-b")
    hist = c.get("/v1/farmers/F003/limits", headers=h).json()
    assert [x["limit"] for x in hist["items"]] == [5002.0, 1002.0]
    assert c.get("/v1/farmers/NOBODY/limits", headers=h).json() == {"farmer_id": "NOBODY", "items": []}


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_exports_stream_every_limit(published, fmt):
    c, h = published
    r = c.get("/v1/exports/limits", params={"format": fmt}, headers=h)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    if fmt == "ndjson":
        rows = [json.loads(line) for line in r.text.splitlines()]
        assert [x["farmer_id"] for x in rows] == FARMERS and rows[0]["reasons"][1]["code"] == "ROUNDING"
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [x["farmer_id"] for x in rows] == FARMERS
        assert json.loads(rows[0]["reason_codes"]) == ["ADVANCE_ON_REVENUE", "ROUNDING"]
    else:
        df = pd.read_parquet(io.BytesIO(r.content))
        assert list(df["farmer_id"]) == FARMERS and df["limit"].iloc[0] == 1000.0
        assert list(df["reasons"].iloc[0][0].keys())[:2] == ["code", "amount"]


def test_export_filter_by_status(published):
    c, h = published
    r = c.get("/v1/exports/limits", params={"format": "ndjson", "status": "approved", "run_id": "run-a"}, headers=h)
    assert len(r.text.splitlines()) == len(FARMERS[0::3])


def test_plots_as_wgs84_geojson(published):
    c, _ = published
    h = auth(c.keys["plots:read"])
    fc = c.get("/v1/farmers/F002/plots", headers=h).json()
    assert fc["type"] == "FeatureCollection" and fc["run_id"] == "run-a"
    assert [f["id"] for f in fc["features"]] == ["F002-P0", "F002-P1"]
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert 4 < lon < 6 and 50 < lat < 52  # UTM 31N near Hesbaye, in degrees
    props = fc["features"][0]["properties"]
    assert props["yield_p10"] is None and props["flags"] == [] and props["flag_details"] == {}
    assert c.get("/v1/farmers/F002/plots", params={"run_id": "run-b"}, headers=h).status_code == 404


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok", "publication": None, "detail": None}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
