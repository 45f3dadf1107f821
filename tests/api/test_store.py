"""The store on SQLite and (when AGRISAT_TEST_PG_URL is set) PostgreSQL: publish, reads, keys."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest

from agrisat.errors import InputDataError, RunStoreError
from agrisat.store import publish_run, queries, read_tx
from agrisat.store.keys import create_key, revoke_key, verify_key

from .conftest import FARMERS
from .fakes import write_run


def test_publish_makes_run_current_and_keeps_history(engine, runs_dir):
    with read_tx(engine) as conn:
        assert queries.current_limit(conn, "F001") is None and queries.publication(conn) == 0
    a = publish_run(engine, runs_dir, "run-a")
    assert (a.pub_seq, a.n_limits) == (1, len(FARMERS))
    with read_tx(engine) as conn:
        rec = queries.current_limit(conn, "F001")
    assert rec["run_id"] == "run-a" and rec["limit"] == 1000.0
    assert rec["reason_codes"] == ["ADVANCE_ON_REVENUE", "ROUNDING"]
    assert rec["reasons"][0]["text_zh"] == "按预期作物收入授信"
    assert rec["valid_from"] == "2021-10-31" and rec["previous_limit"] is None
    publish_run(engine, runs_dir, "run-b")
    with read_tx(engine) as conn:
        assert queries.current_limit(conn, "F001")["run_id"] == "run-b"
        assert [r["run_id"] for r in queries.limit_history(conn, "F001")] == ["run-b", "run-a"]
        assert queries.publication(conn) == 2
        assert [r["run_id"] for r in queries.list_runs(conn)] == ["run-b", "run-a"]
        assert queries.get_run(conn, "run-a")["manifest"]["counts"] == {"farmers": len(FARMERS)}


def test_partial_run_leaves_other_farmers_current(engine, runs_dir):
    write_run(runs_dir, "run-north", ["F001", "NEW"], base=9000.0)
    publish_run(engine, runs_dir, "run-a")
    publish_run(engine, runs_dir, "run-north")
    with read_tx(engine) as conn:
        assert queries.current_limit(conn, "F001")["run_id"] == "run-north"
        assert queries.current_limit(conn, "F002")["run_id"] == "run-a"
        assert queries.current_limit(conn, "NEW")["limit"] == 9001.0


def test_publish_twice_or_missing_run_is_refused(engine, runs_dir):
    publish_run(engine, runs_dir, "run-a")
    with pytest.raises(RunStoreError, match="run-a: already published"):
        publish_run(engine, runs_dir, "run-a")
    with pytest.raises(RunStoreError, match="no such run"):
        publish_run(engine, runs_dir, "nope")


def test_failed_publish_changes_nothing(engine, runs_dir):
    import pandas as pd

    publish_run(engine, runs_dir, "run-a")
    bad = runs_dir / "run-bad"
    write_run(runs_dir, "run-bad", ["F001", "F002"])
    frame = pd.read_parquet(bad / "limits.parquet")
    pd.concat([frame, frame.iloc[:1]]).to_parquet(bad / "limits.parquet")
    with pytest.raises(InputDataError, match="farmer F001 appears more than once"):
        publish_run(engine, runs_dir, "run-bad")
    frame.loc[1, "status"] = None
    frame.to_parquet(bad / "limits.parquet")
    with pytest.raises(InputDataError, match="row 3: status is empty"):
        publish_run(engine, runs_dir, "run-bad")
    # A failure inside the transaction (after the runs row is written) rolls everything back.
    frame.loc[1, "status"] = "review"
    frame.to_parquet(bad / "limits.parquet")
    with mock.patch("agrisat.store.publish.records.dumps", side_effect=["{}", RuntimeError("disk full")]), \
            pytest.raises(RuntimeError, match="disk full"):
        publish_run(engine, runs_dir, "run-bad")
    with read_tx(engine) as conn:
        assert queries.current_limit(conn, "F001")["run_id"] == "run-a"
        assert queries.publication(conn) == 1
        assert queries.limit_history(conn, "F002")[0]["run_id"] == "run-a"


def test_pages_filters_and_changed_since(engine, runs_dir):
    publish_run(engine, runs_dir, "run-a")
    cut = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    publish_run(engine, runs_dir, "run-b")
    with read_tx(engine) as conn:
        seen, after = [], 0
        while True:
            page, last = queries.limits_page(conn, queries.LimitFilter(), after, 100)
            seen += page
            if last is None:
                break
            after = last
        assert [r["farmer_id"] for r in seen] == FARMERS and {r["run_id"] for r in seen} == {"run-b"}
        review, _ = queries.limits_page(conn, queries.LimitFilter(run_id="run-a", status="review"), 0, 1000)
        assert len(review) == sum(1 for i in range(len(FARMERS)) if i % 3 == 1)
        changed, _ = queries.limits_page(conn, queries.LimitFilter(changed_since=cut), 0, 1000)
        assert {r["run_id"] for r in changed} == {"run-b"} and len(changed) == len(FARMERS)
    assert sum(1 for _ in queries.iter_limits(engine, queries.LimitFilter(run_id="run-a"), batch=7)) == len(FARMERS)


def test_keys_hashed_verified_revoked(engine):
    from sqlalchemy import select

    from agrisat.store.schema import api_keys

    key_id, key = create_key(engine, "bank", ["limits:read"])
    with read_tx(engine) as conn:
        stored = conn.execute(select(api_keys)).one()
        assert key.split("_", 2)[2] not in (stored.secret_sha256, stored.name)
        assert verify_key(conn, key).scopes == {"limits:read"}
        assert verify_key(conn, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert verify_key(conn, f"agr_{key_id}_") is None
    assert revoke_key(engine, key_id) and not revoke_key(engine, key_id)
    with read_tx(engine) as conn:
        assert verify_key(conn, key) is None
