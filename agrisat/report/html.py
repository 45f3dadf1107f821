"""A self-contained HTML report of a run: summary, distributions, maps, one section per plot.

Everything is inline (PNG as data URIs, maps as SVG), so the file works offline, from an e-mail
attachment or a shared drive, with no CDN and no JavaScript.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd

from agrisat.report.charts import histogram, plot_chart

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:1em}
.plot{page-break-before:always;margin-top:2em}.flags{color:#b2182b}.map{border:1px solid #ccc}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _colour(values: pd.Series, cmap: str, vmin: float, vmax: float) -> list[str]:
    cm = matplotlib.colormaps[cmap]
    out = []
    for v in values:
        if pd.isna(v):
            out.append("#bbbbbb")
        else:
            x = 0.5 if vmax == vmin else (float(v) - vmin) / (vmax - vmin)
            out.append(matplotlib.colors.to_hex(cm(min(max(x, 0.0), 1.0))))
    return out


def svg_map(plots: gpd.GeoDataFrame, values: pd.Series, title: str, cmap: str, *, diverging: bool = False,
            width: int = 520, height: int = 380) -> str:
    """Plots drawn in a local UTM projection, filled by ``values``; each links to its plot section."""
    g = plots.to_crs(plots.estimate_utm_crs())
    x0, y0, x1, y1 = g.total_bounds
    scale = min((width - 20) / max(x1 - x0, 1), (height - 40) / max(y1 - y0, 1))
    finite = values[np.isfinite(values.astype(float))]
    if diverging:
        m = float(np.nanmax(np.abs(finite))) if len(finite) else 1.0
        vmin, vmax = -m, m
    else:
        vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    fills = _colour(values, cmap, vmin, vmax)
    parts = [f'<svg class="map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}"><text x="10" y="18" font-size="13">{html.escape(title)}</text>']
    for geom, pid, fill, v in zip(g.geometry, plots["plot_id"], fills, values):
        polys = getattr(geom, "geoms", [geom])
        d = ""
        for poly in polys:
            for ring in [poly.exterior, *poly.interiors]:
                pts = " L".join(f"{10 + (x - x0) * scale:.1f},{30 + (y1 - y) * scale:.1f}" for x, y in ring.coords)
                d += f"M{pts} Z "
        label = f"{pid}: {v:.2f}" if pd.notna(v) else f"{pid}: n/a"
        parts.append(f'<a href="#plot-{html.escape(str(pid))}"><path d="{d}" fill="{fill}" stroke="#333" '
                     f'stroke-width="0.6" fill-rule="evenodd" data-plot="{html.escape(str(pid))}"><title>{html.escape(label)}</title></path></a>')
    parts.append(f'<text x="10" y="{height - 6}" font-size="10">{vmin:,.2f} … {vmax:,.2f}</text></svg>')
    return "".join(parts)


def _table(df: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            text = f"{v:,.2f}" if isinstance(v, float | np.floating) else ", ".join(map(str, v)) if isinstance(v, list | np.ndarray) else str(v)
            cells.append(f'<td class="{"l" if c in left else ""}">{html.escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def build_report(run_dir: Path) -> str:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    plots = gpd.read_parquet(run_dir / "plots.parquet")
    series = pd.read_parquet(run_dir / "plot_timeseries.parquet")
    limits = pd.read_parquet(run_dir / "limits.parquet")
    smoothed = pd.read_parquet(run_dir / "plot_smoothed.parquet") if (run_dir / "plot_smoothed.parquet").exists() else None
    weather = pd.read_parquet(run_dir / "plot_weather.parquet") if (run_dir / "plot_weather.parquet").exists() else None
    min_valid = float(manifest.get("min_valid_fraction", 0.5))

    limit_of = dict(zip(limits["farmer_id"], limits["limit"]))
    anomaly_col = "anomaly_z" if "anomaly_z" in plots.columns else "peak_ndvi"
    maps = [
        svg_map(plots, plots[anomaly_col].astype(float),
                "growth anomaly (z vs cohort)" if anomaly_col == "anomaly_z" else "peak NDVI", "RdYlGn",
                diverging=anomaly_col == "anomaly_z"),
        svg_map(plots, plots["farmer_id"].map(limit_of).astype(float), f"farmer limit ({limits['currency'].iloc[0]})", "YlGn"),
    ]
    counts = manifest.get("counts", {})
    summary = pd.DataFrame({
        "item": ["run", "policy", "model", "plots", "farmers", "scenes", "limits by status", "total limit"],
        "value": [manifest["run_id"], manifest.get("policy_version"), manifest.get("model_version"), counts.get("plots"),
                  counts.get("farmers"), counts.get("scenes"), json.dumps(counts.get("limits_by_status", {})),
                  f"{limits['limit'].sum():,.0f} {limits['currency'].iloc[0]}"],
    })
    dists = [histogram(limits["limit"].to_numpy(), "limit per farmer", limits["currency"].iloc[0]),
             histogram(plots["peak_ndvi"].to_numpy(), "peak NDVI per plot", "NDVI"),
             histogram(plots["yield_p50"].to_numpy(), "yield P50 per plot", "t/ha")]
    lim_cols = ["farmer_id", "limit", "status", "decided_by", "n_plots_eligible", "n_plots", "reason_codes"]
    body = [
        f"<h1>agrisat run {html.escape(manifest['run_id'])}</h1>",
        "<h2>Summary</h2>", _table(summary, left=("item", "value")),
        "<h2>Limits</h2>", _table(limits[lim_cols], left=("farmer_id", "status", "decided_by", "reason_codes")),
        "<h2>Distributions</h2>", '<div class="grid">' + "".join(_img(p, "distribution") for p in dists) + "</div>",
        '<h2 id="maps">Maps</h2>', '<div class="grid">' + "".join(maps) + "</div>",
    ]
    if manifest.get("warnings"):
        body += ["<h2>Warnings</h2><ul>"] + [f"<li>{html.escape(w)}</li>" for w in manifest["warnings"]] + ["</ul>"]
    metric_cols = [c for c in ("declared_crop", "area_ha", "n_clear_obs", "peak_ndvi", "peak_date", "season_integral",
                               "yield_p10", "yield_p50", "yield_p90", "expected_revenue", "eligible", "advance") if c in plots.columns]
    for _, p in plots.sort_values("plot_id").iterrows():
        pid = str(p["plot_id"])
        wx = None
        if weather is not None and "plot_id" in weather.columns:
            wx = weather[weather["plot_id"] == pid]
        chart = plot_chart(series, plots, pid, min_valid=min_valid, smoothed=smoothed, weather=wx)
        flags = ", ".join(p["flags"]) if len(p["flags"]) else "none"
        body += [f'<section class="plot" id="plot-{html.escape(pid)}"><h2>Plot {html.escape(pid)} — farmer {html.escape(str(p["farmer_id"]))}</h2>',
                 _img(chart, f"NDVI chart of plot {pid}"),
                 f'<p class="flags">flags: {html.escape(flags)}</p>',
                 _table(pd.DataFrame([p[metric_cols]]), left=("declared_crop",)), "</section>"]
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>agrisat run {html.escape(manifest['run_id'])}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}"
            f"<footer><p>Contains modified Copernicus Sentinel data where the run used Sentinel-2 imagery.</p></footer></body></html>")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    out = out or run_dir / "report.html"
    out.write_text(build_report(run_dir), encoding="utf-8")
    return out
