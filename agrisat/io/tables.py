"""Readers for the tabular inputs: land-transfer contracts, weather, existing debt.

Every problem names the file and the row as a spreadsheet user counts it (header = row 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agrisat.errors import InputDataError

CONTRACT_COLUMNS = ("contract_id", "plot_id", "lessor_id", "lessee_id", "start_date", "end_date",
                    "annual_rent", "currency", "status")
WEATHER_MONTHLY_COLUMNS = ("cell_id", "lon", "lat", "month", "precip_mm", "tmean_c")
DEBT_COLUMNS = ("farmer_id", "outstanding", "currency")


def _read_table(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    if not path.exists():
        raise InputDataError(f"{path}: {what} file not found")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    except Exception as e:
        raise InputDataError(f"{path}: cannot read {what} file: {e}") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputDataError(f"{path}: {what} file lacks column(s) {', '.join(missing)}")
    df.attrs["source"] = str(path)
    return df


def _row(i: int) -> int:
    return i + 2  # 0-based data index -> 1-based file row with header


def _dates(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    parsed = pd.to_datetime(df[col], errors="coerce", format="%Y-%m-%d")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputDataError(f"{path}: row {_row(i)}: {col} {df[col].iloc[i]!r} is not a date (YYYY-MM-DD)")
    return parsed


def _numbers(df: pd.DataFrame, col: str, path: Path, *, min_value: float | None = None) -> pd.Series:
    vals = pd.to_numeric(df[col], errors="coerce")
    bad = np.flatnonzero(vals.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputDataError(f"{path}: row {_row(i)}: {col} {df[col].iloc[i]!r} is not a number")
    if min_value is not None:
        low = np.flatnonzero((vals < min_value).to_numpy())
        if len(low):
            i = int(low[0])
            raise InputDataError(f"{path}: row {_row(i)}: {col} {vals.iloc[i]} is below {min_value}")
    return vals.astype(float)


def read_contracts(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    df = _read_table(path, CONTRACT_COLUMNS, "contracts")
    df["start_date"] = _dates(df, "start_date", path)
    df["end_date"] = _dates(df, "end_date", path)
    back = np.flatnonzero((df["end_date"] < df["start_date"]).to_numpy())
    if len(back):
        i = int(back[0])
        raise InputDataError(
            f"{path}: row {_row(i)}: contract {df['contract_id'].iloc[i]} ends before it starts"
        )
    df["annual_rent"] = _numbers(df, "annual_rent", path, min_value=0.0)
    dup = df["contract_id"][df["contract_id"].duplicated()]
    if len(dup):
        raise InputDataError(f"{path}: row {_row(int(dup.index[0]))}: duplicate contract_id {dup.iloc[0]!r}")
    return df


def read_weather_monthly(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    df = _read_table(path, WEATHER_MONTHLY_COLUMNS, "weather")
    df["month"] = _dates(df, "month", path)
    for col in ("lon", "lat", "tmean_c"):
        df[col] = _numbers(df, col, path)
    df["precip_mm"] = _numbers(df, "precip_mm", path, min_value=0.0)
    return df


def read_debt(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    df = _read_table(path, DEBT_COLUMNS, "debt")
    df["outstanding"] = _numbers(df, "outstanding", path, min_value=0.0)
    dup = df["farmer_id"][df["farmer_id"].duplicated()]
    if len(dup):
        raise InputDataError(f"{path}: row {_row(int(dup.index[0]))}: farmer {dup.iloc[0]!r} listed twice")
    return df


def read_previous_limits(path: str | Path) -> pd.DataFrame:
    """A previous run's ``limits.parquet`` (or a CSV with at least ``farmer_id, limit``)."""
    path = Path(path)
    df = _read_table(path, ("farmer_id", "limit"), "previous limits")
    df["limit"] = _numbers(df, "limit", path, min_value=0.0)
    for col in ("existing_debt", "rent_due"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    dup = df["farmer_id"][df["farmer_id"].duplicated()]
    if len(dup):
        raise InputDataError(f"{path}: row {_row(int(dup.index[0]))}: farmer {dup.iloc[0]!r} listed twice")
    return df
