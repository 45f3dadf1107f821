"""Human-readable explanation of one farmer's limit from a run folder (for loan officers)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from agrisat.errors import InputDataError


def explain_farmer(run_dir: Path, farmer_id: str) -> str:
    limits = pd.read_parquet(run_dir / "limits.parquet")
    row = limits[limits["farmer_id"] == farmer_id]
    if row.empty:
        raise InputDataError(f"{run_dir}: farmer {farmer_id!r} has no limit in this run")
    r = row.iloc[0]
    plots = gpd.read_parquet(run_dir / "plots.parquet")
    mine = plots[plots["farmer_id"] == farmer_id]
    prev = "none" if pd.isna(r["previous_limit"]) else f"{r['previous_limit']:,.0f}"
    lines = [
        f"farmer {farmer_id}   limit {r['limit']:,.0f} {r['currency']}   status {r['status']} ({r['decided_by']})",
        f"valid {r['valid_from']:%Y-%m-%d} .. {r['valid_until']:%Y-%m-%d}   previous {prev} ({r['change_reason']})",
        f"run {r['run_id']}   policy {r['policy_version']}   model {r['model_version']}",
        f"expected revenue (P50) {r['expected_revenue']:,.0f}   pledgeable {r['pledgeable_revenue']:,.0f}   "
        f"rent due {r['rent_due']:,.0f}   debt {r['existing_debt']:,.0f}   risk score {r['risk_score']:.2f}",
        "",
        "reasons (largest effect first):",
    ]
    for reason in r["reasons"]:
        where = f" [{reason['plot_id']}]" if reason.get("plot_id") else ""
        detail = f"  ({reason['detail']})" if reason.get("detail") else ""
        lines.append(f"  {reason['amount']:>+12,.0f}  {reason['code']}{where}: {reason['text_en']} / {reason['text_zh']}{detail}")
    lines += ["", "plots:"]
    cols = ["plot_id", "declared_crop", "area_used_ha", "peak_ndvi", "yield_p10", "yield_p50", "eligible", "advance", "flags"]
    table = mine[[c for c in cols if c in mine.columns]].copy()
    table["flags"] = table["flags"].map(lambda f: ",".join(f) if len(f) else "-")
    lines.append(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return "\n".join(lines)
