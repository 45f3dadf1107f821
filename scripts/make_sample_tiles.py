"""Build sample_tiles/ from the real reference data in ../shared/data (run once; outputs are committed).

    .venv/bin/python scripts/make_sample_tiles.py --shared ../shared/data --out sample_tiles

What it writes:
- hesbaye/<date>/<band>.tif: Cloud-Optimized GeoTIFFs of the WorldCereal Hesbaye monthly composites
  (Nov 2020 - Oct 2021; B02 B03 B04 B08 B11 B12), uint16, nodata 65535, scale 1e-4.
- mol/<date>/<band>.tif: the openEO GFMap per-acquisition scenes near Mol, April 2023 (B04 B08 B11
  uint16 with scale 1e-4, and the SCL scene classification as uint8, nodata 0).
- index.csv: one row per file (area, date, band, path, crs, width, height, nodata, scale, offset, dtype).
- registry/: plots drawn on real fields found in the Hesbaye imagery (k-means of per-pixel NDVI
  profiles + connected components, eroded inward), sample farmers, leases, AgERA5 monthly weather,
  debts; three plots in the Mol scene; plots_overview.png to check the plots against the imagery.

Deterministic: fixed seeds, sorted outputs; rerunning gives the same tables and pixel values.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import rasterio
import shapely
import xarray as xr
from rasterio.features import shapes
from rasterio.plot import plotting_extent
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import box, shape
from sklearn.cluster import KMeans

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CRS = "EPSG:32631"
HESBAYE_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
MOL_BANDS = ("B04", "B08", "B11", "SCL")


def open_nc(path: Path) -> tuple[xr.Dataset, rasterio.Affine]:
    ds = xr.open_dataset(path, mask_and_scale=False)
    x, y = ds["x"].values, ds["y"].values
    res = float(x[1] - x[0])
    assert np.allclose(np.diff(x), res) and np.allclose(np.diff(y), -res), "expected a regular north-up grid"
    # Coordinates are pixel centres: the top-left corner is half a pixel up and left.
    return ds, from_origin(float(x[0]) - res / 2, float(y[0]) + res / 2, res, res)


def band(ds: xr.Dataset, name: str) -> np.ndarray:
    """The NetCDF stores uint16 as int16 with _Unsigned=true: reinterpret the bits, do not convert."""
    return ds[f"S2-L2A-{name}"].values.view(np.uint16)


def write_cog(path: Path, arr: np.ndarray, transform, nodata: int, scale: float | None, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="COG", width=arr.shape[1], height=arr.shape[0], count=1, dtype=arr.dtype.name,
                   crs=CRS, transform=transform, nodata=nodata, compress="DEFLATE", predictor=2, blocksize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, 1)
        dst.set_band_description(1, name)
        if scale is not None:
            dst.scales, dst.offsets = (scale,), (0.0,)


def export_area(ds: xr.Dataset, transform, area: str, bands: tuple[str, ...], out: Path) -> list[dict]:
    rows = []
    for i, t in enumerate(ds["t"].values):
        date = str(t)[:10]
        for b in bands:
            raw = band(ds, b)[i]
            if b == "SCL":
                arr, nodata, scale, dtype = raw.astype(np.uint8), 0, 1.0, "uint8"
            else:
                arr, nodata, scale, dtype = raw, 65535, 1e-4, "uint16"
            rel = f"{area}/{date}/{b}.tif"
            write_cog(out / rel, arr, transform, nodata, None if b == "SCL" else scale, b)
            rows.append({"area": area, "date": date, "band": b, "path": rel, "crs": CRS, "width": arr.shape[1],
                         "height": arr.shape[0], "nodata": nodata, "scale": scale, "offset": 0.0, "dtype": dtype})
    return rows


def ndvi_stack(ds: xr.Dataset, dates: list[int]) -> np.ndarray:
    red = band(ds, "B04")[dates].astype(float)
    nir = band(ds, "B08")[dates].astype(float)
    return (nir - red) / (nir + red)


def field_polygons(ds: xr.Dataset, transform, clear: list[int], k: int, min_px: int) -> list[tuple[int, np.ndarray, shapely.Polygon]]:
    """Homogeneous fields: k-means on per-pixel NDVI profiles, connected components, eroded inward."""
    nd = ndvi_stack(ds, clear)
    km = KMeans(k, random_state=0, n_init=10).fit(nd.reshape(len(clear), -1).T)
    labels = km.labels_.reshape(nd.shape[1:])
    found = []
    for c in range(k):
        comps, n = ndimage.label(ndimage.binary_opening(labels == c, iterations=1))
        for i in range(1, n + 1):
            mask = comps == i
            if mask.sum() < min_px:
                continue
            inner = ndimage.binary_erosion(mask, iterations=1)  # keep one pixel off the field edge
            polys = [shape(g) for g, v in shapes(inner.astype(np.uint8), mask=inner, transform=transform) if v == 1]
            poly = max(polys, key=lambda p: p.area)
            poly = shapely.Polygon(poly.exterior).simplify(5.0).buffer(-2.0, join_style="mitre")
            found.append((c, mask, poly))
    found.sort(key=lambda f: -f[2].area)
    return found


def split_in_two(poly: shapely.Polygon) -> list[shapely.Polygon]:
    """Two parcels in one field (registers often split a field block): cut across its long side."""
    x0, y0, x1, y1 = poly.bounds
    cx, cy = poly.centroid.x, poly.centroid.y
    halves = ([box(x0, y0, cx - 5, y1), box(cx + 5, y0, x1, y1)] if x1 - x0 >= y1 - y0
              else [box(x0, y0, x1, cy - 5), box(x0, cy + 5, x1, y1)])
    return [poly.intersection(h) for h in halves]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("sample_tiles"))
    args = ap.parse_args()
    out: Path = args.out
    for sub in ("hesbaye", "mol", "registry", "licenses"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    hes, hes_t = open_nc(args.shared / "imagery/worldcereal_hesbaye_BE/worldcereal_preprocessed_inputs.nc")
    mol, mol_t = open_nc(args.shared / "imagery/gfmap_mol_BE/cdse_sentinel2_l2a.nc")
    rows = export_area(hes, hes_t, "hesbaye", HESBAYE_BANDS, out) + export_area(mol, mol_t, "mol", MOL_BANDS, out)
    pd.DataFrame(rows).sort_values(["area", "date", "band"]).to_csv(out / "index.csv", index=False)
    for lic in ("worldcereal-classification_LICENSE", "openeo-gfmap_LICENSE"):
        (out / "licenses").mkdir(exist_ok=True)
        shutil.copy(args.shared / "licenses" / lic, out / "licenses" / lic)

    reg = out / "registry"
    reg.mkdir(exist_ok=True)
    plots = hesbaye_plots(hes, hes_t)
    plots.to_file(reg / "plots.geojson", driver="GeoJSON")
    mol_plots(mol, mol_t).to_file(reg / "plots_mol.geojson", driver="GeoJSON")
    contracts(plots).to_csv(reg / "contracts.csv", index=False)
    weather(hes, hes_t).to_csv(reg / "weather_monthly.csv", index=False)
    pd.DataFrame({"farmer_id": ["F01", "F03", "F04", "F06"], "outstanding": [1200.0, 900.0, 60000.0, 400.0],
                  "currency": "EUR"}).to_csv(reg / "debt.csv", index=False)
    overview(hes, hes_t, plots, reg / "plots_overview.png")
    print(plots.drop(columns="geometry").to_string(index=False))


# Crop by NDVI profile (calendar month -> mean NDVI over clear months), checked by eye on
# plots_overview.png. A crop field has a bare period (min < 0.35) and a closed canopy (max >= 0.7);
# fields green all year (grassland, orchards) or bare all year (yards, roads) are not registered.
#   green in Feb-Mar, peak Apr-Jun, harvested by July  -> winter cereal (barley if it drops first)
#   bare until April, peak May-Jun, harvested by July  -> spring barley
#   bare until May, peak Jun-Jul, gone in August       -> potato
#   bare until June, peak Jul-Aug, green in September  -> maize
def classify(p: dict[int, float]) -> str | None:
    season = {m: v for m, v in p.items() if 2 <= m <= 9}  # Nov/Oct show the previous/next crop
    if min(season.values()) >= 0.35 or max(season.values()) < 0.7:
        return None
    peak = max(season, key=season.get)
    if peak in (4, 5, 6) and p[7] < 0.5:
        if (p[2] + p[3]) / 2 >= 0.33:
            return "winter_barley" if p[4] >= 0.85 else "winter_wheat"
        return "spring_barley"
    if peak in (6, 7) and p[8] < 0.5:
        return "potato"
    if peak in (7, 8, 9) and p[9] >= 0.4:
        return "maize"
    return None


def plot_profile(ds: xr.Dataset, transform, poly) -> dict[int, float]:
    from rasterio.features import geometry_mask

    inside = geometry_mask([poly], out_shape=(ds.sizes["y"], ds.sizes["x"]), transform=transform, invert=True)
    out = {}
    for i, t in enumerate(ds["t"].values):
        nd = ndvi_stack(ds, [i])[0]
        if np.isfinite(nd[inside]).any() and band(ds, "B04")[i][inside].max() != 65535:
            out[pd.Timestamp(t).month] = float(np.nanmean(nd[inside]))
    return out


def hesbaye_plots(ds: xr.Dataset, transform) -> gpd.GeoDataFrame:
    clear = [i for i in range(ds.sizes["t"]) if (band(ds, "B04")[i] != 65535).all()]
    fields = field_polygons(ds, transform, clear, k=10, min_px=60)
    geoms, kinds = [], []
    for _, _, poly in fields:
        prof = plot_profile(ds, transform, poly)
        kind = classify(prof)
        print(f"{poly.area / 1e4:5.2f} ha {str(kind):13s}", " ".join(f"{m}:{v:.2f}" for m, v in prof.items()))
        if kind is None:
            continue
        parts = split_in_two(poly) if poly.area > 50_000 else [poly]
        geoms += parts
        kinds += [kind] * len(parts)
    # Plot ids from north-west to south-east, so the table reads like the map.
    order = sorted(range(len(geoms)), key=lambda i: (-round(geoms[i].centroid.y, -2), geoms[i].centroid.x))
    geoms, kinds = [geoms[i] for i in order], [kinds[i] for i in order]
    n = len(geoms)
    farmers = ["F01", "F01", "F02", "F03", "F02", "F04", "F05", "F03", "F06", "F05", "F01", "F06", "F04", "F02"][:n]
    tenure = ["owned", "leased", "owned", "leased", "leased", "owned", "leased", "owned", "leased", "owned",
              "owned", "leased", "owned", "owned"][:n]
    declared_crop = list(kinds)
    declared_crop[kinds.index("spring_barley")] = "maize"  # deliberately mis-declared: peaks in June, not Jul-Sep
    gdf = gpd.GeoDataFrame({"plot_id": [f"P{i + 1:03d}" for i in range(n)], "farmer_id": farmers,
                            "declared_crop": declared_crop, "season": "2021", "tenure": tenure,
                            "region": "hesbaye"}, geometry=geoms, crs=CRS)
    print("plots by observed profile:", dict(zip(gdf["plot_id"], kinds)))
    rng = np.random.default_rng(2021)
    area = gdf.geometry.area.to_numpy() / 10_000
    declared = np.round(area * (1 + rng.uniform(-0.02, 0.02, n)), 2)
    declared[n - 1] = np.round(area[n - 1] * 1.25, 2)  # one farmer declares a quarter more than the polygon
    gdf["declared_area_ha"] = declared
    return gdf.to_crs(4326)


def mol_plots(ds: xr.Dataset, transform) -> gpd.GeoDataFrame:
    clear = [1, 5]  # 2023-04-05 and 2023-04-15, the mostly clear dates
    fields = field_polygons(ds, transform, clear, k=5, min_px=80)[:3]
    gdf = gpd.GeoDataFrame({"plot_id": ["M001", "M002", "M003"], "farmer_id": ["M01", "M01", "M02"],
                            "declared_crop": "winter_wheat", "season": "2023", "tenure": "owned", "region": "mol"},
                           geometry=[f[2] for f in fields], crs=CRS)
    gdf["declared_area_ha"] = np.round(gdf.geometry.area.to_numpy() / 10_000, 2)
    return gdf.to_crs(4326)


def contracts(plots: gpd.GeoDataFrame) -> pd.DataFrame:
    leased = plots[plots["tenure"] == "leased"].reset_index(drop=True)
    rows = []
    for i, r in leased.iterrows():
        area = round(float(r["declared_area_ha"]), 2)
        rows.append({"contract_id": f"C{i + 1:03d}", "plot_id": r["plot_id"], "lessor_id": f"L{i % 3 + 1:02d}",
                     "lessee_id": r["farmer_id"], "start_date": "2019-10-01", "end_date": "2028-09-30",
                     "annual_rent": round(area * (350 + 20 * i), 2), "currency": "EUR", "status": "active"})
    rows[1].update(start_date="2014-10-01", end_date="2020-09-30", status="expired")  # not renewed
    rows[3]["lessee_id"] = "F03"  # leased to another registered farmer than the one who declared it
    # A second active lease on P012 from another lessor to F05: two contracts claim the same plot.
    rows.append({"contract_id": f"C{len(rows) + 1:03d}", "plot_id": rows[5]["plot_id"], "lessor_id": "L04",
                 "lessee_id": "F05", "start_date": "2020-10-01", "end_date": "2025-09-30", "annual_rent": 900.0,
                 "currency": "EUR", "status": "active"})
    return pd.DataFrame(rows)


def weather(ds: xr.Dataset, transform) -> pd.DataFrame:
    centre = gpd.GeoSeries([box(*rasterio.transform.array_bounds(ds.sizes["y"], ds.sizes["x"], transform)).centroid],
                           crs=CRS).to_crs(4326).iloc[0]
    precip = ds["AGERA5-PRECIP"].values.view(np.uint16).astype(float) / 100.0
    tmean = ds["AGERA5-TMEAN"].values.view(np.uint16).astype(float) / 100.0 - 273.15
    return pd.DataFrame({"cell_id": "hesbaye_agera5", "lon": round(centre.x, 5), "lat": round(centre.y, 5),
                         "month": [str(t)[:10] for t in ds["t"].values],
                         "precip_mm": precip.mean(axis=(1, 2)).round(2), "tmean_c": tmean.mean(axis=(1, 2)).round(2)})


def overview(ds: xr.Dataset, transform, plots: gpd.GeoDataFrame, path: Path) -> None:
    g = plots.to_crs(CRS)
    extent = plotting_extent(band(ds, "B04")[0], transform)
    fig, axes = plt.subplots(1, 3, figsize=(18, 6.4))
    t_jun, t_apr, t_jul = 7, 5, 8
    rgb = np.dstack([band(ds, b)[t_jun].astype(float) for b in ("B04", "B03", "B02")]) / 1500
    axes[0].imshow(np.clip(rgb, 0, 1), extent=extent)
    axes[0].set_title("RGB June 2021")
    for ax, t, name in ((axes[1], t_apr, "April"), (axes[2], t_jul, "July")):
        ax.imshow(ndvi_stack(ds, [t])[0], cmap="RdYlGn", vmin=0, vmax=0.9, extent=extent)
        ax.set_title(f"NDVI {name} 2021")
    for ax in axes:
        g.boundary.plot(ax=ax, color="blue", linewidth=1.2)
        for _, r in g.iterrows():
            c = r.geometry.representative_point()
            ax.annotate(f"{r['plot_id']}\n{r['declared_crop']}", (c.x, c.y), fontsize=7, ha="center", color="black",
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", alpha=0.7, lw=0))
    fig.suptitle("Sample plots over the Hesbaye imagery (contains modified Copernicus Sentinel data 2020-2021)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
