"""Sentinel Hub / Copernicus Data Space Ecosystem through the real ``sentinelhub`` client.

- Catalog search lists the acquisitions (and their cloud cover) in the season; scenes above
  ``max_cloud_cover`` are skipped with that reason.
- One Process API request per acquisition day and tile: B04, B08 (any bands asked), SCL and
  ``dataMask`` as UINT16 digital numbers. Areas over 2,500 px a side are split into tiles.
- Responses are cached on disk (sentinelhub's ``data_folder``: one folder per request hash); a warm
  cache makes no Process request. A malformed response is deleted from the cache and the scene is
  skipped with the reason; the run goes on.
- Retries: sentinelhub retries 5xx and connection errors ``max_attempts`` times with backoff
  (``backoff_s`` x 3 each time) and waits out 429 by its Retry-After header, at most ``max_attempts``
  times. A token revoked before its expiry (401) gets one fresh session and one retry.
- Credentials only from the environment (AGRISAT_SH_CLIENT_ID, AGRISAT_SH_CLIENT_SECRET); the base and
  token URLs are config, for Sentinel Hub or the Copernicus Data Space Ecosystem.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import rasterio
import xarray as xr
from rasterio.transform import from_origin
from sentinelhub import (
    BBox,
    CRS,
    DataCollection,
    MimeType,
    SentinelHubCatalog,
    SentinelHubDownloadClient,
    SentinelHubRequest,
    SentinelHubSession,
    SHConfig,
)
from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException

from agrisat.errors import ConfigError, ImageryError, MissingBandError
from agrisat.sources import SceneReport, snap_bbox

log = logging.getLogger("agrisat.sources.sentinelhub")

MAX_PX = 2500  # Process API limit per side
S2_L2A_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL")
DN_SCALE = 1e-4  # L2A digital numbers -> reflectance (harmonised values, no offset)
ENDPOINTS = {
    "sentinelhub": ("https://services.sentinel-hub.com",
                    "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"),
    "cdse": ("https://sh.dataspace.copernicus.eu",
             "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"),
}


class SentinelHubSource:
    def __init__(self, cache_dir: str | Path, *, base_url: str | None = None, token_url: str | None = None,
                 deployment: str = "sentinelhub", resolution: float = 10.0, max_cloud_cover: float = 100.0,
                 max_attempts: int = 4, backoff_s: float = 5.0, timeout_s: float = 120.0) -> None:
        client_id, secret = os.environ.get("AGRISAT_SH_CLIENT_ID"), os.environ.get("AGRISAT_SH_CLIENT_SECRET")
        if not client_id or not secret:
            raise ConfigError("Sentinel Hub credentials come from the environment: set AGRISAT_SH_CLIENT_ID and "
                              "AGRISAT_SH_CLIENT_SECRET (an OAuth client of your Sentinel Hub or CDSE account)")
        default_base, default_token = ENDPOINTS[deployment]
        cfg = SHConfig()
        cfg.sh_client_id, cfg.sh_client_secret = client_id, secret
        cfg.sh_base_url = (base_url or default_base).rstrip("/")
        cfg.sh_token_url = token_url or default_token
        cfg.max_download_attempts = max_attempts
        cfg.max_retries = max_attempts  # 429 answers: wait out Retry-After, but not forever
        cfg.download_sleep_time = backoff_s
        cfg.download_timeout_seconds = timeout_s
        self.config = cfg
        # The stock collection is bound to services.sentinel-hub.com; bind a copy to our base URL
        # (CDSE, a regional deployment or a test server). One name per URL: definitions are global.
        name = "AGRISAT_S2L2A_" + hashlib.sha1(cfg.sh_base_url.encode()).hexdigest()[:10]
        try:
            self.collection = DataCollection[name]
        except (KeyError, AttributeError, ValueError):
            self.collection = DataCollection.SENTINEL2_L2A.define_from(name, service_url=cfg.sh_base_url)
        self.cache_dir = Path(cache_dir)
        self.resolution = resolution
        self.max_cloud_cover = max_cloud_cover

    def search(self, bbox: tuple[float, float, float, float], crs: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Acquisition days in [start, end] with their cloud cover (``date, cloud_cover, ids``)."""
        catalog = SentinelHubCatalog(config=self.config)
        items = catalog.search(self.collection, bbox=BBox(bbox, crs=CRS(crs)),
                               time=(pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime()),
                               fields={"include": ["id", "properties.datetime", "properties.eo:cloud_cover"], "exclude": []})
        rows = [{"date": pd.Timestamp(it["properties"]["datetime"]).tz_convert(None).normalize(),
                 "cloud_cover": float(it["properties"].get("eo:cloud_cover", np.nan)), "id": it["id"]} for it in items]
        if not rows:
            return pd.DataFrame(columns=["date", "cloud_cover", "ids"])
        df = pd.DataFrame(rows).groupby("date", sort=True).agg(cloud_cover=("cloud_cover", "min"), ids=("id", list))
        return df.reset_index()

    def cube(self, bbox: tuple[float, float, float, float], crs: str, start: pd.Timestamp, end: pd.Timestamp,
             bands: list[str]) -> tuple[xr.DataArray, SceneReport]:
        unknown = [b for b in bands if b not in S2_L2A_BANDS]
        if unknown:
            raise MissingBandError(f"Sentinel-2 L2A has no band(s) {', '.join(unknown)}; it has {', '.join(S2_L2A_BANDS)}")
        if CRS(crs).epsg is None:
            raise ImageryError(f"{crs}: not an EPSG CRS Sentinel Hub can grid on")
        x0, y0, x1, y1 = snap_bbox(bbox, self.resolution)
        width, height = round((x1 - x0) / self.resolution), round((y1 - y0) / self.resolution)
        report = SceneReport()
        scenes = self.search((x0, y0, x1, y1), crs, start, end)
        if scenes.empty:
            raise ImageryError(f"Sentinel Hub catalog: no Sentinel-2 L2A acquisition over {bbox} ({crs}) "
                               f"between {pd.Timestamp(start):%Y-%m-%d} and {pd.Timestamp(end):%Y-%m-%d}")
        tiles = _tiles(width, height)
        planes, dates = [], []
        for r in scenes.itertuples():
            if r.cloud_cover > self.max_cloud_cover:
                report.skip(r.date, f"cloud cover {r.cloud_cover:g}% > {self.max_cloud_cover:g}%")
                continue
            try:
                files = [self._fetch(r.date, bands, (x0 + c0 * self.resolution, y1 - r1 * self.resolution,
                                                     x0 + c1 * self.resolution, y1 - r0 * self.resolution), crs, c1 - c0, r1 - r0)
                         for r0, r1, c0, c1 in tiles]
            except ImageryError as e:
                report.skip(r.date, str(e))
                log.warning("scene %s skipped: %s", f"{r.date:%Y-%m-%d}", e)
                continue
            rows, k = [], 0
            for r0, r1, _, _ in tiles[:: len({t[2] for t in tiles})]:
                cols = []
                for c0, c1 in sorted({(t[2], t[3]) for t in tiles}):
                    block = dask.delayed(_read_response, pure=True)(str(files[k]), tuple(bands))
                    cols.append(da.from_delayed(block, shape=(len(bands), r1 - r0, c1 - c0), dtype=np.float32))
                    k += 1
                rows.append(cols)
            planes.append(da.block(rows))
            dates.append(r.date)
            report.used.append({"date": f"{r.date:%Y-%m-%d}", "source": "sentinelhub", "detail": f"{len(files)} tile(s)"})
        if not planes:
            raise ImageryError(f"Sentinel Hub: every scene between {pd.Timestamp(start):%Y-%m-%d} and "
                               f"{pd.Timestamp(end):%Y-%m-%d} was skipped: {report.skipped}")
        t = from_origin(x0, y1, self.resolution, self.resolution)
        cube = xr.DataArray(da.stack(planes), dims=("time", "band", "y", "x"),
                            coords={"time": pd.DatetimeIndex(dates), "band": list(bands),
                                    "y": y1 - self.resolution * (np.arange(height) + 0.5),
                                    "x": x0 + self.resolution * (np.arange(width) + 0.5)}, name="reflectance")
        cube.attrs.update(crs=crs, transform=tuple(t)[:6])
        return cube, report

    def _fetch(self, date: pd.Timestamp, bands: list[str], bbox: tuple, crs: str, width: int, height: int) -> Path:
        """Download one tile of one day into the cache (or find it there) and check it is a GeoTIFF."""
        request = SentinelHubRequest(
            evalscript=_evalscript(bands),
            input_data=[SentinelHubRequest.input_data(data_collection=self.collection,
                                                      time_interval=(date.to_pydatetime(), (date + pd.Timedelta(days=1)).to_pydatetime()),
                                                      mosaicking_order="leastCC")],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(bbox, crs=CRS(crs)), size=(width, height), data_folder=str(self.cache_dir), config=self.config)
        path = self.cache_dir / request.get_filename_list()[0]
        for attempt in (1, 2):
            try:
                request.save_data(raise_download_errors=True, max_threads=1)
                break
            except (DownloadFailedException, OutOfRequestsException) as e:
                status = getattr(getattr(getattr(e, "request_exception", None), "response", None), "status_code", None)
                if status == 401 and attempt == 1:  # token revoked early: new session, one more try
                    SentinelHubDownloadClient.cache_session(SentinelHubSession(config=self.config))
                    continue
                raise ImageryError(f"Sentinel Hub process request for {date:%Y-%m-%d} failed: {_short(e)}") from e
        try:
            with rasterio.open(path) as ds:
                if (ds.count, ds.width, ds.height) != (len(bands) + 1, width, height):
                    raise ImageryError(f"expected {len(bands) + 1} bands of {width}x{height}, got {ds.count} of {ds.width}x{ds.height}")
        except (rasterio.errors.RasterioIOError, ImageryError) as e:
            shutil.rmtree(path.parent, ignore_errors=True)  # never keep a bad response in the cache
            raise ImageryError(f"Sentinel Hub response for {date:%Y-%m-%d} is not a usable GeoTIFF: {_short(e)}") from e
        return path


def _evalscript(bands: list[str]) -> str:
    names = ", ".join(f'"{b}"' for b in [*bands, "dataMask"])
    values = ", ".join(f"s.{b}" for b in [*bands, "dataMask"])
    return f"""//VERSION=3
function setup() {{
  return {{input: [{{bands: [{names}], units: "DN"}}], output: {{bands: {len(bands) + 1}, sampleType: "UINT16"}}}};
}}
function evaluatePixel(s) {{ return [{values}]; }}
"""


def _tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) tiles of at most MAX_PX a side, row-major, of near-equal size."""
    ny, nx = math.ceil(height / MAX_PX), math.ceil(width / MAX_PX)
    rows = np.linspace(0, height, ny + 1).round().astype(int)
    cols = np.linspace(0, width, nx + 1).round().astype(int)
    return [(int(rows[i]), int(rows[i + 1]), int(cols[j]), int(cols[j + 1])) for i in range(ny) for j in range(nx)]


def _read_response(path: str, bands: tuple[str, ...]) -> np.ndarray:
    """Cached response -> float32 (band, y, x): reflectance for spectral bands (digital numbers
    scaled), SCL as is, NaN where ``dataMask`` (the last band) is 0."""
    with rasterio.open(path) as ds:
        raw = ds.read()
    n = len(bands)
    out = raw[:n].astype(np.float32)
    for i, name in enumerate(bands):
        if name != "SCL":
            out[i] *= np.float32(DN_SCALE)
    out[:, raw[n] == 0] = np.nan
    return out


def _short(e: Exception) -> str:
    """One line: the HTTP status and URL when there was a response, else the error's own words."""
    inner = getattr(e, "request_exception", None)
    resp = getattr(inner, "response", None)
    if resp is not None:
        return f"HTTP {resp.status_code} {resp.reason} from {resp.url}"
    return " ".join(str(inner or e).split())[:300]
