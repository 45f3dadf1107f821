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


def _numbers(df: pd.DataFrame, col: str, path: Path, *, min_value: float | None = None,
             max_value: float | None = None) -> pd.Series:
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
    if max_value is not None:
        high = np.flatnonzero((vals > max_value).to_numpy())
        if len(high):
            i = int(high[0])
            raise InputDataError(f"{path}: row {_row(i)}: {col} {vals.iloc[i]} is above {max_value}")
    return vals.astype(float)


class RowProblems:
    """Bad rows of one table: raise naming the first in file order (``on_bad_row="error"``), or set
    them aside.

    Quarantined rows go to ``df.attrs["rejects"]`` (the original values, the file row and the
    reason) so the run can write them out and count them; the rest of the table goes on.
    """

    def __init__(self, df: pd.DataFrame, path: Path, on_bad_row: str) -> None:
        self.df, self.path, self.mode = df, path, on_bad_row
        self.raw = df.copy()
        self.reasons: dict[int, str] = {}

    def add(self, mask: np.ndarray | pd.Series, message) -> None:
        """Mark rows where ``mask`` holds (and that are not bad already); ``message(i)`` says why."""
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            i = int(i)
            if i not in self.reasons:
                self.reasons[i] = message(i)

    def ok(self) -> np.ndarray:
        keep = np.ones(len(self.df), dtype=bool)
        keep[list(self.reasons)] = False
        return keep

    def finish(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.reasons and self.mode == "error":
            i = min(self.reasons)
            more = f" (and {len(self.reasons) - 1} more bad row(s))" if len(self.reasons) > 1 else ""
            raise InputDataError(f"{self.path}: row {_row(i)}: {self.reasons[i]}{more}")
        keep = self.ok()
        out = df[keep].reset_index(drop=True)
        rej = self.raw[~keep].copy()
        rej.insert(0, "reason", [self.reasons[i] for i in np.flatnonzero(~keep)])
        rej.insert(0, "row", [_row(int(i)) for i in np.flatnonzero(~keep)])
        out.attrs["source"] = str(self.path)
        out.attrs["rejects"] = rej.reset_index(drop=True)
        return out


def _parse_dates(df: pd.DataFrame, col: str, bad: RowProblems) -> pd.Series:
    parsed = pd.to_datetime(df[col], errors="coerce", format="%Y-%m-%d")
    bad.add(parsed.isna(), lambda i: f"{col} {df[col].iloc[i]!r} is not a date (YYYY-MM-DD)")
    return parsed


def _parse_numbers(df: pd.DataFrame, col: str, bad: RowProblems, *, min_value: float | None = None) -> pd.Series:
    vals = pd.to_numeric(df[col], errors="coerce")
    bad.add(vals.isna(), lambda i: f"{col} {df[col].iloc[i]!r} is not a number")
    if min_value is not None:
        bad.add(vals < min_value, lambda i: f"{col} {vals.iloc[i]:g} is below {min_value:g}")
    return vals.astype(float)


def read_contracts(path: str | Path, *, known_plots: set[str] | None = None, known_farmers: set[str] | None = None,
                   on_bad_row: str = "error") -> pd.DataFrame:
    """Land-transfer contracts (data contract in DESIGN.md). Rows naming a plot or a lessee the
    registry does not know are bad rows when the known ids are given."""
    path = Path(path)
    df = _read_table(path, CONTRACT_COLUMNS, "contracts")
    bad = RowProblems(df, path, on_bad_row)
    df["start_date"] = _parse_dates(df, "start_date", bad)
    df["end_date"] = _parse_dates(df, "end_date", bad)
    bad.add(df["end_date"] < df["start_date"], lambda i: f"contract {df['contract_id'].iloc[i]} ends before it starts")
    df["annual_rent"] = _parse_numbers(df, "annual_rent", bad, min_value=0.0)
    bad.add(df["contract_id"].duplicated(), lambda i: f"duplicate contract_id {df['contract_id'].iloc[i]!r}")
    if known_plots is not None:
        bad.add(~df["plot_id"].isin(known_plots),
                lambda i: f"contract {df['contract_id'].iloc[i]} names unknown plot {df['plot_id'].iloc[i]!r}")
    if known_farmers is not None:
        bad.add(~df["lessee_id"].isin(known_farmers),
                lambda i: f"contract {df['contract_id'].iloc[i]} names unknown lessee {df['lessee_id'].iloc[i]!r}")
    return bad.finish(df)


def read_weather_monthly(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    df = _read_table(path, WEATHER_MONTHLY_COLUMNS, "weather")
    df["month"] = _dates(df, "month", path)
    for col in ("lon", "lat", "tmean_c"):
        df[col] = _numbers(df, col, path)
    df["precip_mm"] = _numbers(df, "precip_mm", path, min_value=0.0)
    return df


def read_debt(path: str | Path, *, known_farmers: set[str] | None = None, on_bad_row: str = "error") -> pd.DataFrame:
    """Existing debt per farmer. A quarantined row leaves that farmer's debt unknown: the credit
    stage holds such farmers (``DEBT_RECORD_REJECTED``) instead of lending as if they owed nothing."""
    path = Path(path)
    df = _read_table(path, DEBT_COLUMNS, "debt")
    bad = RowProblems(df, path, on_bad_row)
    df["outstanding"] = _parse_numbers(df, "outstanding", bad, min_value=0.0)
    bad.add(df["farmer_id"].duplicated(), lambda i: f"farmer {df['farmer_id'].iloc[i]!r} listed twice")
    if known_farmers is not None:
        bad.add(~df["farmer_id"].isin(known_farmers), lambda i: f"debt of unknown farmer {df['farmer_id'].iloc[i]!r}")
    return bad.finish(df)


def read_previous_limits(path: str | Path) -> pd.DataFrame:
    """A previous run's ``limits.parquet`` (or a CSV with at least ``farmer_id, limit``)."""
    path = Path(path)
    df = _read_table(path, ("farmer_id", "limit"), "previous limits")
    df["limit"] = _numbers(df, "limit", path, min_value=0.0)
    for col in ("existing_debt", "rent_due"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if "valid_until" in df.columns:  # unparseable: unknown, and an unknown validity allows no damping
        df["valid_until"] = pd.to_datetime(df["valid_until"], errors="coerce")
    dup = df["farmer_id"][df["farmer_id"].duplicated()]
    if len(dup):
        raise InputDataError(f"{path}: row {_row(int(dup.index[0]))}: farmer {dup.iloc[0]!r} listed twice")
    return df


def read_growth_history(path: str | Path) -> pd.DataFrame:
    """Earlier seasons' peak NDVI per plot (``plot_id, season, peak_ndvi``), e.g. the rows of earlier
    runs' ``plots.parquet``; used for each plot's z-score against its own past."""
    path = Path(path)
    df = _read_table(path, ("plot_id", "season", "peak_ndvi"), "growth history")
    df["peak_ndvi"] = pd.to_numeric(df["peak_ndvi"], errors="coerce")
    dup = df.duplicated(["plot_id", "season"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputDataError(f"{path}: row {_row(i)}: plot {df['plot_id'].iloc[i]!r} season {df['season'].iloc[i]!r} listed twice")
    return df
