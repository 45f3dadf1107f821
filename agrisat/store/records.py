"""limits.parquet rows <-> JSON records, and the export schema.

A record is what the API returns for one limit: every column of limits.parquet with JSON types
(NaN -> null, timestamps -> ISO dates, numpy arrays -> lists), plus ``published_at``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

REQUIRED = ("farmer_id", "limit", "currency", "status", "run_id")

_REASON = pa.struct([("code", pa.string()), ("amount", pa.float64()), ("plot_id", pa.string()),
                     ("detail", pa.string()), ("text_en", pa.string()), ("text_zh", pa.string())])

# Column order and types of the bulk export (Parquet; CSV and NDJSON follow the same order).
EXPORT_SCHEMA = pa.schema([
    ("farmer_id", pa.string()), ("limit", pa.float64()), ("currency", pa.string()), ("status", pa.string()),
    ("decided_by", pa.string()), ("reason_codes", pa.list_(pa.string())), ("reasons", pa.list_(_REASON)),
    ("previous_limit", pa.float64()), ("change_reason", pa.string()), ("expected_revenue", pa.float64()),
    ("pledgeable_revenue", pa.float64()), ("rent_due", pa.float64()), ("existing_debt", pa.float64()),
    ("risk_score", pa.float64()), ("n_plots", pa.int64()), ("n_plots_eligible", pa.int64()),
    ("valid_from", pa.string()), ("valid_until", pa.string()), ("run_id", pa.string()),
    ("policy_version", pa.string()), ("model_version", pa.string()), ("imagery_dates", pa.list_(pa.string())),
    ("published_at", pa.string()),
])


def to_json_value(v: Any) -> Any:
    """One cell of a pandas frame as a plain JSON value."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [to_json_value(x) for x in v]
    if isinstance(v, (pd.Timestamp, dt.datetime)):
        ts = pd.Timestamp(v)
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) or math.isinf(v) else float(v)
    if v is pd.NA:
        return None
    return v


def limit_records(limits: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(limits.columns)
    return [{c: to_json_value(v) for c, v in zip(cols, row)} for row in limits.itertuples(index=False)]


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


def with_published_at(doc: str, published_at: dt.datetime) -> dict[str, Any]:
    rec = json.loads(doc)
    rec["published_at"] = published_at.isoformat(timespec="microseconds") + "Z"
    return rec
