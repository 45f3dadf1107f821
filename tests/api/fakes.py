"""Small run folders written in code, in the run store's layout (agrisat/io/runstore.py)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

from agrisat.io.runstore import sha256_file


def limits_frame(run_id: str, farmers: list[str], base: float = 1000.0) -> pd.DataFrame:
    n = len(farmers)
    statuses = ["approved", "review", "declined"]
    return pd.DataFrame({
        "farmer_id": farmers,
        "limit": [base + i for i in range(n)],
        "currency": ["EUR"] * n,
        "status": [statuses[i % 3] for i in range(n)],
        "decided_by": ["ADVANCE_ON_REVENUE"] * n,
        "reason_codes": [np.array(["ADVANCE_ON_REVENUE", "ROUNDING"], dtype=object) for _ in range(n)],
        "reasons": [np.array([{"code": "ADVANCE_ON_REVENUE", "amount": base + i + 0.4, "plot_id": None,
                               "detail": "50% of revenue", "text_en": "Advance", "text_zh": "按预期作物收入授信"},
                              {"code": "ROUNDING", "amount": -0.4, "plot_id": None, "detail": "",
                               "text_en": "Rounded down", "text_zh": "向下取整"}], dtype=object) for i in range(n)],
        "previous_limit": [np.nan] * n,
        "change_reason": ["NO_PREVIOUS_LIMIT"] * n,
        "expected_revenue": [2.5 * (base + i) for i in range(n)],
        "pledgeable_revenue": [2.0 * (base + i) for i in range(n)],
        "rent_due": [0.0] * n,
        "existing_debt": [0.0] * n,
        "risk_score": [0.25] * n,
        "n_plots": [2] * n,
        "n_plots_eligible": [2] * n,
        "valid_from": pd.to_datetime(["2021-10-31"] * n).astype("datetime64[ms]"),
        "valid_until": pd.to_datetime(["2022-01-29"] * n),
        "run_id": [run_id] * n,
        "policy_version": ["policy-test"] * n,
        "model_version": ["model-test"] * n,
        "imagery_dates": [np.array(["2021-05-01", "2021-06-01"], dtype=object) for _ in range(n)],
    })


def plots_frame(farmers: list[str]) -> gpd.GeoDataFrame:
    rows, geoms = [], []
    for i, f in enumerate(farmers):
        for j in range(2):
            x0 = 600000.0 + 200 * i
            y0 = 5610000.0 + 200 * j
            geoms.append(box(x0, y0, x0 + 100, y0 + 100))
            rows.append({"plot_id": f"{f}-P{j}", "farmer_id": f, "declared_crop": "winter_wheat",
                         "area_ha": 1.0, "flags": np.array([], dtype=object), "flag_details": "{}",
                         "peak_date": pd.Timestamp("2021-05-01"), "yield_p10": 7.5 if j else np.nan,
                         "eligible": bool(j)})
    # Written in WGS84 like the pipeline does (from a UTM grid, as the pipeline computes areas).
    return gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:32631").to_crs(4326)


def write_run(output_dir: Path, run_id: str, farmers: list[str], base: float = 1000.0) -> Path:
    path = output_dir / run_id
    path.mkdir(parents=True)
    plots_frame(farmers).to_parquet(path / "plots.parquet", index=False)
    pd.DataFrame({"plot_id": [f"{f}-P0" for f in farmers], "date": pd.Timestamp("2021-05-01"),
                  "mean": 0.8}).to_parquet(path / "plot_timeseries.parquet", index=False)
    limits_frame(run_id, farmers, base).to_parquet(path / "limits.parquet", index=False)
    outputs = {n: sha256_file(path / n) for n in ("plots.parquet", "plot_timeseries.parquet", "limits.parquet")}
    manifest = {"run_id": run_id, "created_utc": "2026-11-22T12:00:00+00:00", "policy_version": "policy-test",
                "model_version": "model-test", "counts": {"farmers": len(farmers)}, "outputs": outputs}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path
