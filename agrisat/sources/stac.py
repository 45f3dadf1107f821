"""STAC catalogs of COGs through pystac-client and odc-stac.

Items are found with the catalog's ``/search`` when it offers one (a STAC API) and by walking the
collection otherwise (a static catalog). Every asset is opened once up front (headers only), so a
corrupt or unreachable scene is skipped with its reason instead of failing the run mid-compute; the
rest is loaded lazily by odc-stac onto the requested grid (nearest resampling: no invented values),
then scaled to reflectance with each asset's ``raster:bands`` scale, offset and nodata.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.transform import from_origin

from agrisat.errors import ImageryError, MissingBandError
from agrisat.sources import SceneReport, snap_bbox


class StacSource:
    def __init__(self, catalog_url: str, collection: str, *, resolution: float = 10.0,
                 max_cloud_cover: float = 100.0, chunk_px: int = 1024) -> None:
        self.catalog_url = catalog_url
        self.collection = collection
        self.resolution = resolution
        self.max_cloud_cover = max_cloud_cover
        self.chunk_px = chunk_px

    def items(self, bbox_wgs84: tuple[float, float, float, float], start: pd.Timestamp, end: pd.Timestamp) -> list[pystac.Item]:
        import pystac_client
        from pystac_client.conformance import ConformanceClasses

        client = pystac_client.Client.open(self.catalog_url)
        window = f"{pd.Timestamp(start):%Y-%m-%d}/{pd.Timestamp(end):%Y-%m-%d}T23:59:59Z"
        if client.conforms_to(ConformanceClasses.ITEM_SEARCH):
            found = list(client.search(collections=[self.collection], bbox=bbox_wgs84, datetime=window).items())
        else:  # a static catalog: walk the collection and filter here
            coll = client.get_collection(self.collection)
            s, e = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
            found = [it for it in coll.get_items(recursive=True)
                     if s <= pd.Timestamp(it.datetime).tz_convert(None) < e and _intersects(it.bbox, bbox_wgs84)]
        return sorted(found, key=lambda it: (it.datetime, it.id))

    def cube(self, bbox: tuple[float, float, float, float], crs: str, start: pd.Timestamp, end: pd.Timestamp,
             bands: list[str]) -> tuple[xr.DataArray, SceneReport]:
        from odc.stac import load

        x0, y0, x1, y1 = snap_bbox(bbox, self.resolution)
        lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform([x0, x1, x0, x1], [y0, y0, y1, y1])
        items = self.items((min(lon), min(lat), max(lon), max(lat)), start, end)
        if not items:
            raise ImageryError(f"{self.catalog_url}: no item of {self.collection!r} over {bbox} ({crs}) between "
                               f"{pd.Timestamp(start):%Y-%m-%d} and {pd.Timestamp(end):%Y-%m-%d}")
        report, usable = SceneReport(), []
        for it in items:
            missing = [b for b in bands if b not in it.assets]
            if missing:
                raise MissingBandError(f"{self.catalog_url}: item {it.id} has no asset(s) {', '.join(missing)}; "
                                       f"it has {', '.join(sorted(it.assets))}")
            cc = it.properties.get("eo:cloud_cover")
            if cc is not None and cc > self.max_cloud_cover:
                report.skip(it.datetime, f"cloud cover {cc:g}% > {self.max_cloud_cover:g}%")
                continue
            problem = _probe(it, bands, crs)
            if problem:
                report.skip(it.datetime, f"item {it.id}: {problem}")
                continue
            usable.append(it)
            report.used.append({"date": f"{it.datetime:%Y-%m-%d}", "source": "stac", "detail": it.id})
        if not usable:
            raise ImageryError(f"{self.catalog_url}: every item was skipped: {report.skipped}")
        width, height = round((x1 - x0) / self.resolution), round((y1 - y0) / self.resolution)
        t = from_origin(x0, y1, self.resolution, self.resolution)
        geobox = GeoBox((height, width), t, crs)
        ds = load(usable, bands=bands, geobox=geobox, chunks={"x": self.chunk_px, "y": self.chunk_px},
                  groupby="solar_day", resampling="nearest")
        planes = []
        for b in bands:
            raw = ds[b]
            scale, offset, nodata = _raster_band(usable[0], b)
            out = raw.astype(np.float32)
            if scale != 1.0:
                out = out * np.float32(scale)
            if offset != 0.0:
                out = out + np.float32(offset)
            planes.append(out.where(raw != nodata) if nodata is not None else out)
        cube = xr.concat(planes, dim=pd.Index(bands, name="band")).transpose("time", "band", "y", "x")
        cube = cube.assign_coords(time=pd.DatetimeIndex(cube["time"].values).normalize()).drop_vars(
            [c for c in cube.coords if c not in ("time", "band", "y", "x")])
        cube.name = "reflectance"
        cube.attrs = {"crs": crs, "transform": tuple(t)[:6]}
        return cube, report


def write_catalog(index: pd.DataFrame, area: str, out_dir: Path, href_base: str, collection: str = "sentinel-2-l2a-sample") -> Path:
    """A static STAC catalog (one item per date, one asset per band, with ``proj`` and
    ``raster:bands``) of the COGs listed in an agrisat index; asset hrefs are ``href_base/<path>``."""
    rows = index[index["area"] == area]
    cat = pystac.Catalog(id="agrisat-sample", description="agrisat sample tiles (contains modified Copernicus Sentinel data)")
    items = []
    for date, grp in rows.groupby("date", sort=True):
        first = grp.iloc[0]
        with rasterio.open(first["abspath"] if "abspath" in grp else Path(index.attrs.get("root", ".")) / first["path"]) as ds:
            bounds, shape, transform, epsg = ds.bounds, ds.shape, ds.transform, ds.crs.to_epsg()
        lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(
            [bounds.left, bounds.right, bounds.left, bounds.right], [bounds.bottom, bounds.bottom, bounds.top, bounds.top])
        bbox = [min(lon), min(lat), max(lon), max(lat)]
        geom = {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]],
                                                     [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]}
        stamp = dt.datetime.combine(pd.Timestamp(date).date(), dt.time(10, 30), tzinfo=dt.UTC)
        item = pystac.Item(id=f"{area}-{pd.Timestamp(date):%Y-%m-%d}", geometry=geom, bbox=bbox, datetime=stamp,
                           properties={"proj:epsg": epsg, "proj:shape": list(shape), "proj:transform": list(transform)[:6]})
        for r in grp.itertuples():
            extra = {"raster:bands": [{"nodata": None if pd.isna(r.nodata) else float(r.nodata), "scale": float(r.scale),
                                       "offset": float(r.offset), "data_type": str(getattr(r, "dtype", "uint16"))}]}
            item.add_asset(r.band, pystac.Asset(href=f"{href_base.rstrip('/')}/{r.path}", media_type=pystac.MediaType.COG,
                                                roles=["data"], extra_fields=extra))
        items.append(item)
    extent = pystac.Extent(pystac.SpatialExtent([items[0].bbox]),
                           pystac.TemporalExtent([[items[0].datetime, items[-1].datetime]]))
    coll = pystac.Collection(id=collection, description=f"{area} sample scenes", extent=extent, license="proprietary")
    coll.add_items(items)
    cat.add_child(coll)
    cat.normalize_hrefs(str(out_dir))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return out_dir / "catalog.json"


def _raster_band(item: pystac.Item, band: str) -> tuple[float, float, float | None]:
    rb = (item.assets[band].extra_fields.get("raster:bands") or [{}])[0]
    return float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0)), rb.get("nodata")


def _probe(item: pystac.Item, bands: list[str], crs: str) -> str | None:
    """Why an item cannot be used (unreadable asset, other CRS than the grid's without a way to
    reproject it here), or None."""
    for b in bands:
        href = item.assets[b].href
        try:
            with rasterio.open(href) as ds:
                if ds.crs is None:
                    return f"asset {b} ({href}) has no CRS"
        except rasterio.errors.RasterioIOError as e:
            return f"asset {b} ({href}) cannot be read: {' '.join(str(e).split())[:200]}"
    return None


def _intersects(a, b) -> bool:
    return a is None or not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])
