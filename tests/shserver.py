"""A Sentinel Hub look-alike on 127.0.0.1 for tests: OAuth token, Catalog search and Process API.

It answers Process requests with GeoTIFF bytes cut from ``sample_tiles/`` (the Mol scenes: B04, B08,
SCL per acquisition) on the requested bbox and size, plus ``dataMask``. Faults are queued per
endpoint (``server.faults["process"].append("429")``) and consumed one per request:

    "429"        Too Many Requests with Retry-After (milliseconds, as Sentinel Hub sends it)
    "500"        Internal Server Error
    "slow"       sleeps ``slow_seconds`` before answering (the client's timeout should fire)
    "malformed"  200 with a body that is not a TIFF
    "revoke"     401: the bearer token is treated as expired before its announced expiry

Every request is counted in ``server.counts`` by endpoint.
"""

from __future__ import annotations

import base64
import collections
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.windows import from_bounds as window_from_bounds

SCL_CLOUD = (3, 8, 9, 10)


class SentinelHubStub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sample: Path, area: str = "mol"):
        super().__init__(("127.0.0.1", 0), _Handler)
        idx = pd.read_csv(sample / "index.csv")
        self.scenes = idx[idx["area"] == area]
        self.sample = sample
        self.faults: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.counts: collections.Counter = collections.Counter()
        self.tokens: set[str] = set()
        self.slow_seconds = 2.0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> SentinelHubStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()

    def next_fault(self, endpoint: str) -> str | None:
        with self.lock:
            self.counts[endpoint] += 1
            q = self.faults[endpoint]
            return q.popleft() if q else None

    # --- the three endpoints -------------------------------------------------------------------

    def token(self) -> dict:
        # A JWT-shaped token like Sentinel Hub's (the client decodes the payload for the client id).
        payload = {"azp": "test-client", "sub": "test-client", "exp": int(time.time()) + 3600, "jti": uuid.uuid4().hex}
        tok = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                       for part in ({"alg": "none"}, payload)) + ".sig"
        self.tokens.add(tok)
        return {"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "expires_at": time.time() + 3600}

    def search(self, body: dict) -> dict:
        start, end = (pd.Timestamp(t).tz_localize(None) for t in body["datetime"].split("/"))
        feats = []
        for date in sorted(self.scenes["date"].unique()):
            d = pd.Timestamp(date)
            if start <= d <= end:
                feats.append({"type": "Feature", "id": f"S2_{date}", "properties": {
                    "datetime": f"{date}T10:30:00Z", "eo:cloud_cover": self._cloud_cover(date)}})
        return {"type": "FeatureCollection", "features": feats, "context": {"limit": body.get("limit"), "returned": len(feats)}}

    def process(self, body: dict) -> bytes:
        inp, out = body["input"], body["output"]
        bbox = inp["bounds"]["bbox"]
        epsg = int(inp["bounds"]["properties"]["crs"].rsplit("/", 1)[-1])
        rng = inp["data"][0]["dataFilter"]["timeRange"]
        start, end = pd.Timestamp(rng["from"]).tz_localize(None), pd.Timestamp(rng["to"]).tz_localize(None)
        width, height = int(out["width"]), int(out["height"])
        bands = re.search(r"bands:\s*\[([^\]]*)\]", body["evalscript"]).group(1)
        bands = [b.strip().strip("\"'") for b in bands.split(",")]
        dates = [d for d in sorted(self.scenes["date"].unique()) if start <= pd.Timestamp(d) < end]
        stack = np.zeros((len(bands), height, width), dtype=np.uint16)
        if dates:
            date = dates[0]
            mask = np.ones((height, width), dtype=bool)
            for i, band in enumerate(b for b in bands if b != "dataMask"):
                row = self.scenes[(self.scenes["date"] == date) & (self.scenes["band"] == band)].iloc[0]
                with rasterio.open(self.sample / row["path"]) as ds:
                    assert ds.crs.to_epsg() == epsg, "test server only cuts in the tiles' own CRS"
                    win = window_from_bounds(*bbox, transform=ds.transform)
                    arr = ds.read(1, window=win, out_shape=(height, width), boundless=True, fill_value=ds.nodata or 0)
                    mask &= arr != ds.nodata
                stack[i] = arr
            if "dataMask" in bands:
                stack[bands.index("dataMask")] = mask
        prof = {"driver": "GTiff", "width": width, "height": height, "count": len(bands), "dtype": "uint16",
                "crs": f"EPSG:{epsg}", "transform": from_bounds(*bbox, width, height)}
        with MemoryFile() as mem:
            with mem.open(**prof) as dst:
                dst.write(stack)
            return mem.read()

    def _cloud_cover(self, date: str) -> float:
        row = self.scenes[(self.scenes["date"] == date) & (self.scenes["band"] == "SCL")].iloc[0]
        with rasterio.open(self.sample / row["path"]) as ds:
            scl = ds.read(1)
        return round(100.0 * float(np.isin(scl, SCL_CLOUD).mean()), 2)


class _Handler(BaseHTTPRequestHandler):
    server: SentinelHubStub

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        path = self.path.split("?")[0]
        endpoint = {"/oauth/token": "token", "/api/v1/catalog/1.0.0/search": "search", "/api/v1/process": "process"}.get(path)
        if endpoint is None:
            return self._send(404, b'{"error": "not found"}')
        fault = self.server.next_fault(endpoint)
        if fault == "429":
            return self._send(429, b'{"error": {"status": 429, "reason": "Too Many Requests"}}', {"Retry-After": "200"})
        if fault == "500":
            return self._send(500, b'{"error": {"status": 500, "reason": "Internal Server Error"}}')
        if fault == "slow":
            time.sleep(self.server.slow_seconds)
        if endpoint == "token":
            return self._send(200, json.dumps(self.server.token()).encode())
        auth = self.headers.get("Authorization", "")
        tok = auth.removeprefix("Bearer ")
        if fault == "revoke":
            self.server.tokens.discard(tok)
        if tok not in self.server.tokens:
            return self._send(401, b'{"error": {"status": 401, "reason": "Unauthorized", "message": "token expired"}}')
        body = json.loads(raw)
        if endpoint == "search":
            return self._send(200, json.dumps(self.server.search(body)).encode())
        if fault == "malformed":
            return self._send(200, b"<html>gateway error</html>", {"Content-Type": "image/tiff"})
        return self._send(200, self.server.process(body), {"Content-Type": "image/tiff"})

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
