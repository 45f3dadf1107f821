"""Weather readers: daily station tables and gridded NetCDF/Zarr, into one shape.

Every reader returns ``(points, obs)``:

- ``points``: one row per station or grid cell, ``point_id, name, lon, lat`` (WGS84);
- ``obs``: one row per point and time step, ``point_id, date`` and any of ``tmin_c, tmax_c,
  tmean_c, precip_mm, et0_mm``, with ``obs.attrs["freq"]`` = ``"D"`` (daily) or ``"MS"`` (monthly).

Missing values stay NaN; whether a gap may be filled is the season-feature stage's decision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer

from agrisat.errors import InputDataError
from agrisat.io.tables import _dates, _numbers, _read_table, _row

STATION_COLUMNS = ("station_id", "lon", "lat")
DAILY_COLUMNS = ("station_id", "date")
VARIABLES = ("tmin_c", "tmax_c", "tmean_c", "precip_mm", "et0_mm")
# AquaCrop climate files (the format of the FAO crop model's weather input, and of the real
# station examples we test on): whitespace-separated, one header line.
AQUACROP_COLUMNS = {"Day": "day", "Month": "month", "Year": "year", "Tmin(C)": "tmin_c",
                    "Tmax(C)": "tmax_c", "Prcp(mm)": "precip_mm", "Et0(mm)": "et0_mm"}


def read_stations(stations_path: str | Path, daily_path: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stations table (``station_id, lon, lat`` [, ``name``, ``path``]) and their daily series.

    The series come from ``daily_path`` (a long CSV/Parquet table ``station_id, date, ...``) or, per
    station, from the file in the ``path`` column (CSV/Parquet with ``date, ...``, or an AquaCrop
    ``.txt`` climate file), relative to the stations table.
    """
    stations_path = Path(stations_path)
    st = _read_table(stations_path, STATION_COLUMNS, "weather stations")
    st["lon"] = _numbers(st, "lon", stations_path)
    st["lat"] = _numbers(st, "lat", stations_path)
    _check_lonlat(st, stations_path)
    dup = st["station_id"][st["station_id"].duplicated()]
    if len(dup):
        raise InputDataError(f"{stations_path}: row {_row(int(dup.index[0]))}: station {dup.iloc[0]!r} listed twice")
    frames = []
    if daily_path is not None:
        frames.append(_read_daily_long(Path(daily_path)))
    elif "path" in st.columns:
        for i, (sid, rel) in enumerate(zip(st["station_id"], st["path"])):
            if pd.isna(rel) or not str(rel).strip():
                raise InputDataError(f"{stations_path}: row {_row(i)}: station {sid} has no series path")
            frames.append(read_station_file(stations_path.parent / str(rel)).assign(station_id=sid))
    else:
        raise InputDataError(f"{stations_path}: no daily table given and no 'path' column to find each station's series")
    obs = pd.concat(frames, ignore_index=True)
    unknown = sorted(set(obs["station_id"]) - set(st["station_id"]))
    if unknown:
        raise InputDataError(f"{daily_path or stations_path}: series for station(s) not in {stations_path.name}: {', '.join(map(str, unknown[:5]))}")
    points = pd.DataFrame({"point_id": st["station_id"].astype(str), "lon": st["lon"], "lat": st["lat"],
                           "name": st["name"] if "name" in st.columns else st["station_id"]})
    obs = obs.rename(columns={"station_id": "point_id"})
    obs["point_id"] = obs["point_id"].astype(str)
    return points, _finish(obs, "D")


def read_station_file(path: str | Path) -> pd.DataFrame:
    """One station's daily series: AquaCrop ``.txt``, or CSV/Parquet with ``date`` and variables."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        return read_aquacrop_climate(path)
    df = _read_table(path, ("date",), "daily weather")
    df["date"] = _dates(df, "date", path)
    for col in VARIABLES:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def read_aquacrop_climate(path: str | Path) -> pd.DataFrame:
    """An AquaCrop climate file: ``Day Month Year Tmin(C) Tmax(C) Prcp(mm) Et0(mm)``."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path}: daily weather file not found")
    raw = pd.read_csv(path, sep=r"\s+", dtype=str)
    missing = [c for c in AQUACROP_COLUMNS if c not in raw.columns]
    if missing:
        raise InputDataError(f"{path}: AquaCrop climate file lacks column(s) {', '.join(missing)}")
    df = raw.rename(columns=AQUACROP_COLUMNS)
    for col in ("tmin_c", "tmax_c", "precip_mm", "et0_mm"):
        df[col] = _numbers(df, col, path)
    df["date"] = pd.to_datetime(
        {"year": pd.to_numeric(df["year"], errors="coerce"), "month": pd.to_numeric(df["month"], errors="coerce"),
         "day": pd.to_numeric(df["day"], errors="coerce")}, errors="coerce")
    bad = np.flatnonzero(df["date"].isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputDataError(f"{path}: row {_row(i)}: {df['day'].iloc[i]}/{df['month'].iloc[i]}/{df['year'].iloc[i]} is not a date")
    return df[["date", "tmin_c", "tmax_c", "precip_mm", "et0_mm"]]


def read_grid(path: str | Path, variables: dict[str, dict], *, crs: str | None = None,
              time_dim: str = "time") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A gridded NetCDF or Zarr store (AgERA5-like) as points (cell centres) and observations.

    ``variables`` maps our names to the store's, with scale and offset, e.g.
    ``{"precip_mm": {"name": "AGERA5-PRECIP", "scale": 0.01}}``. The grid's CRS comes from ``crs``
    or the CF ``crs``/``spatial_ref`` variable; lon/lat grids need neither.
    """
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path}: weather grid not found")
    try:
        ds = xr.open_zarr(path) if path.suffix == ".zarr" or path.is_dir() else xr.open_dataset(path)
    except Exception as e:
        raise InputDataError(f"{path}: cannot open weather grid: {e}") from e
    with ds:
        for ours, spec in variables.items():
            if ours not in VARIABLES:
                raise InputDataError(f"{path}: unknown weather variable {ours!r}; known: {', '.join(VARIABLES)}")
            if spec["name"] not in ds.variables:
                raise InputDataError(f"{path}: variable {spec['name']!r} (for {ours}) not in the grid; has {', '.join(map(str, ds.data_vars))}")
        xdim, ydim = ("lon", "lat") if "lon" in ds.dims else ("x", "y")
        if time_dim not in ds.dims:
            raise InputDataError(f"{path}: no time dimension {time_dim!r}; dims are {', '.join(map(str, ds.dims))}")
        xs, ys = np.meshgrid(ds[xdim].to_numpy(), ds[ydim].to_numpy())
        if xdim == "x":
            src = crs or _grid_crs(ds, path)
            lon, lat = Transformer.from_crs(src, 4326, always_xy=True).transform(xs, ys)
        else:
            lon, lat = xs, ys
        iy, ix = np.indices(xs.shape)
        ids = np.char.add(np.char.add("cell_", iy.ravel().astype(str)), np.char.add("_", ix.ravel().astype(str)))
        points = pd.DataFrame({"point_id": ids, "lon": lon.ravel(), "lat": lat.ravel(), "name": ids})
        times = pd.DatetimeIndex(ds[time_dim].to_numpy())
        obs = pd.DataFrame({"point_id": np.repeat(ids[None, :], len(times), axis=0).ravel(),
                            "date": np.repeat(times.to_numpy(), len(ids))})
        for ours, spec in variables.items():
            da = ds[spec["name"]].transpose(time_dim, ydim, xdim)
            vals = da.to_numpy().astype("float64")
            fill = da.encoding.get("_FillValue", da.attrs.get("_FillValue"))
            if fill is not None:
                vals[vals == fill] = np.nan
            obs[ours] = vals.reshape(len(times), -1).ravel() * float(spec.get("scale", 1.0)) + float(spec.get("offset", 0.0))
    freq = "MS" if len(times) > 1 and (np.diff(times.to_numpy()).min() >= np.timedelta64(28, "D")) else "D"
    return points, _finish(obs, freq)


def monthly_cells(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The monthly cell table of ``tables.read_weather_monthly`` in the common shape."""
    points = df.groupby("cell_id", sort=True)[["lon", "lat"]].first().reset_index()
    points = points.rename(columns={"cell_id": "point_id"}).assign(name=lambda p: p["point_id"])
    obs = df.rename(columns={"cell_id": "point_id", "month": "date"})[["point_id", "date", "precip_mm", "tmean_c"]]
    return points, _finish(obs, "MS")


def _read_daily_long(path: Path) -> pd.DataFrame:
    df = _read_table(path, DAILY_COLUMNS, "daily weather")
    df["date"] = _dates(df, "date", path)
    for col in VARIABLES:
        if col in df.columns:
            vals = pd.to_numeric(df[col].where(df[col].astype("string").str.strip() != ""), errors="coerce")
            bad = np.flatnonzero((vals.isna() & df[col].notna() & (df[col].astype("string").str.strip() != "")).to_numpy())
            if len(bad):
                i = int(bad[0])
                raise InputDataError(f"{path}: row {_row(i)}: {col} {df[col].iloc[i]!r} is not a number")
            df[col] = vals
    if "precip_mm" in df.columns:
        neg = np.flatnonzero((df["precip_mm"] < 0).to_numpy())
        if len(neg):
            raise InputDataError(f"{path}: row {_row(int(neg[0]))}: precip_mm {df['precip_mm'].iloc[int(neg[0])]:g} is below 0")
    dup = df.duplicated(["station_id", "date"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputDataError(f"{path}: row {_row(i)}: station {df['station_id'].iloc[i]} has {df['date'].iloc[i]:%Y-%m-%d} twice")
    return df


def _finish(obs: pd.DataFrame, freq: str) -> pd.DataFrame:
    if "precip_mm" in obs.columns:
        neg = np.flatnonzero((obs["precip_mm"] < 0).to_numpy())
        if len(neg):
            r = obs.iloc[int(neg[0])]
            raise InputDataError(f"weather point {r['point_id']}: negative rain {r['precip_mm']} on {r['date']:%Y-%m-%d}")
    if "tmean_c" not in obs.columns and {"tmin_c", "tmax_c"} <= set(obs.columns):
        obs["tmean_c"] = (obs["tmin_c"] + obs["tmax_c"]) / 2.0
    cols = ["point_id", "date"] + [c for c in VARIABLES if c in obs.columns]
    out = obs[cols].sort_values(["point_id", "date"], kind="stable").reset_index(drop=True)
    out.attrs["freq"] = freq
    return out


def _grid_crs(ds, path: Path) -> str:
    for name in ("crs", "spatial_ref"):
        if name in ds.variables:
            attrs = ds[name].attrs
            for key in ("crs_wkt", "spatial_ref"):
                if key in attrs:
                    return attrs[key]
            if "epsg_code" in attrs:
                return str(attrs["epsg_code"])
    raise InputDataError(f"{path}: grid has x/y coordinates but no CRS; set weather.grid_crs in the run config")


def _check_lonlat(st: pd.DataFrame, path: Path) -> None:
    bad = np.flatnonzero(((st["lon"].abs() > 180) | (st["lat"].abs() > 90)).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputDataError(f"{path}: row {_row(i)}: station {st['station_id'].iloc[i]} lon/lat "
                             f"({st['lon'].iloc[i]}, {st['lat'].iloc[i]}) is not WGS84 degrees")
