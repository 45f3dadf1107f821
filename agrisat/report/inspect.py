"""`agrisat inspect plot`: one plot's metrics, flags and chart from a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd

from agrisat.errors import InputDataError
from agrisat.report.charts import plot_chart


def plot_summary(run_dir: Path, plot_id: str) -> tuple[str, bytes]:
    plots = gpd.read_parquet(run_dir / "plots.parquet")
    if plot_id not in set(plots["plot_id"]):
        raise InputDataError(f"{run_dir}: plot {plot_id!r} is not in this run")
    series = pd.read_parquet(run_dir / "plot_timeseries.parquet")
    smoothed_path = run_dir / "plot_smoothed.parquet"
    weather_path = run_dir / "plot_weather.parquet"
    smoothed = pd.read_parquet(smoothed_path) if smoothed_path.exists() else None
    weather = pd.read_parquet(weather_path) if weather_path.exists() else None
    if weather is not None and "plot_id" in weather.columns:
        weather = weather[weather["plot_id"] == plot_id]
    min_valid = float(json.loads((run_dir / "manifest.json").read_text()).get("min_valid_fraction", 0.5))
    row = plots[plots["plot_id"] == plot_id].iloc[0].drop(labels=["geometry"])
    lines = [f"plot {plot_id}"]
    for key, value in row.items():
        if isinstance(value, float):
            value = f"{value:,.3f}"
        elif hasattr(value, "__len__") and not isinstance(value, str):
            value = ", ".join(map(str, value)) or "-"
        lines.append(f"  {key:<24} {value}")
    mine = series[series["plot_id"] == plot_id][["date", "n_pixels", "count", "valid_fraction", "mean", "std", "p10", "p90"]]
    lines += ["", mine.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    return "\n".join(lines), plot_chart(series, plots, plot_id, min_valid=min_valid, smoothed=smoothed, weather=weather)
