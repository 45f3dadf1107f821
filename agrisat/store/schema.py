"""Tables of the publish store (SQLAlchemy Core; the same DDL on SQLite and PostgreSQL).

    runs            one row per *published* run: manifest, publication sequence number
    limits          one row per (run, farmer), append-only: filter columns + the full record as JSON
    current_limits  farmer -> the limits row that is current; replaced in the publish transaction
    api_keys        key id, SHA-256 of the secret, scopes, per-key rate, revocation time
    audit_log       every limit read: key, path, farmer or query, status, time
    deliveries      webhook push state per idempotency key (delivered | dead), with the payload

Limits keep their record as JSON text rather than one column per field: the API returns the record
as it was published, new fields in limits.parquet need no migration, and the few columns the API
filters on (farmer, run, status, publication time) are real indexed columns.
Times are naive UTC (`timestamp without time zone` on PostgreSQL) so both backends compare alike.
"""

from __future__ import annotations

from sqlalchemy import (Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("run_id", String(200), primary_key=True),
    Column("pub_seq", Integer, nullable=False, unique=True),  # publication order; 1, 2, 3...
    Column("published_at", DateTime, nullable=False),
    Column("created_utc", String(40)),
    Column("n_limits", Integer, nullable=False),
    Column("policy_version", String(100)),
    Column("model_version", String(200)),
    Column("manifest", Text, nullable=False),
)

limits = Table(
    "limits", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the pagination cursor
    Column("run_id", String(200), ForeignKey("runs.run_id"), nullable=False),
    Column("farmer_id", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("published_at", DateTime, nullable=False),
    Column("doc", Text, nullable=False),
    UniqueConstraint("run_id", "farmer_id", name="uq_limits_run_farmer"),
    Index("ix_limits_farmer", "farmer_id", "id"),
    Index("ix_limits_published", "published_at", "id"),
)

current_limits = Table(
    "current_limits", metadata,
    Column("farmer_id", String(200), primary_key=True),
    Column("limit_id", Integer, ForeignKey("limits.id"), nullable=False, unique=True),
    Column("run_id", String(200), nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("scopes", String(200), nullable=False),  # space-separated
    Column("rate_per_s", Float),  # NULL: the server default
    Column("burst", Integer),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("key_id", String(32)),  # NULL when no valid key was given
    Column("method", String(10), nullable=False),
    Column("path", String(500), nullable=False),
    Column("farmer_id", String(200)),
    Column("query", String(1000)),
    Column("status", Integer, nullable=False),
    Index("ix_audit_at", "at"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("idempotency_key", String(420), primary_key=True),  # run_id:farmer_id
    Column("run_id", String(200), nullable=False),
    Column("farmer_id", String(200), nullable=False),
    Column("url", String(1000), nullable=False),
    Column("status", String(20), nullable=False),  # delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(1000)),
    Column("payload", Text, nullable=False),  # kept so a dead letter can be replayed as sent
    Column("updated_at", DateTime, nullable=False),
)
