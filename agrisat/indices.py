"""Spectral indices as pure array functions."""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from agrisat.errors import MissingBandError
from agrisat.scenes import qa_bits_clear


def ndvi(cube: xr.DataArray, red: str = "B04", nir: str = "B08") -> xr.DataArray:
    """(NIR - red) / (NIR + red); NaN where either band is masked or the sum is not positive."""
    r = cube.sel(band=red)
    n = cube.sel(band=nir)
    total = n + r
    out = ((n - r) / total.where(total > 0)).astype(np.float32)
    out = out.drop_vars("band", errors="ignore").rename("ndvi")
    out.attrs = dict(cube.attrs)  # keep crs/transform: zonal statistics need the grid
    return out


def masked_ndvi(cube: xr.DataArray, red: str, nir: str, quality: str | None,
                exclude_classes: Sequence[int], exclude_bits: Sequence[int] | None = None) -> xr.DataArray:
    """``ndvi(mask_clouds(cube, ...))`` in one numpy pass per chunk: the same float32 operations in
    the same order (so the same bits), without the chain of xarray intermediates, each a task layer
    and a full pass over the pixels. Dims (time, y, x). With ``exclude_bits`` the quality band is
    bit-packed (Landsat QA_PIXEL): a pixel is clear when none of those bits is set."""
    bands = [str(b) for b in cube["band"].values]
    for name in (red, nir) + ((quality,) if quality else ()):
        if name not in bands:
            raise MissingBandError(f"band {name!r} not in cube bands {bands}")
    ir, inir = bands.index(red), bands.index(nir)
    iq = bands.index(quality) if quality else None
    classes = np.asarray(exclude_classes, dtype=np.float32)

    def fused(block: np.ndarray) -> np.ndarray:  # (time, band, y, x) -> (time, y, x)
        r, n = block[:, ir], block[:, inir]
        if iq is not None:
            q = block[:, iq]
            clear = qa_bits_clear(q, exclude_bits) if exclude_bits is not None else ~np.isnan(q) & ~np.isin(q, classes)
            r, n = np.where(clear, r, np.float32(np.nan)), np.where(clear, n, np.float32(np.nan))
        total = n + r
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((n - r) / np.where(total > 0, total, np.float32(np.nan))).astype(np.float32, copy=False)

    def fused_blocks(blocks: list[np.ndarray]) -> np.ndarray:  # the band axis arrives as a list of one chunk
        return fused(blocks[0])

    data = cube.transpose("time", "band", "y", "x").data
    if isinstance(data, da.Array):
        # concatenate=False: map_blocks(drop_axis=1) would copy every chunk through concatenate3 first.
        data = da.blockwise(fused_blocks, "tyx", data.rechunk({1: -1}), "tbyx", concatenate=False, dtype=np.float32)
    else:
        data = fused(data)
    out = xr.DataArray(data, dims=("time", "y", "x"),
                       coords={k: cube.coords[k] for k in ("time", "y", "x") if k in cube.coords}, name="ndvi")
    out.attrs = dict(cube.attrs)
    return out


Encoding = tuple  # (nodata or None, scale, offset) of one band's file, as in the imagery index


def masked_ndvi_from_raw(red: np.ndarray, nir: np.ndarray, quality: np.ndarray | None,
                         red_enc: Encoding, nir_enc: Encoding, quality_enc: Encoding | None,
                         exclude_classes: Sequence[int], out: np.ndarray | None = None) -> np.ndarray:
    """``masked_ndvi`` of one 2-D block straight from the files' digital numbers: the same float32
    values, bit for bit, as decoding each band to reflectance (``io.tiles`` semantics: x scale, +
    offset, NaN at nodata), masking the quality classes and taking the NDVI -- without materialising
    the float32 reflectance of every band.

    Work runs on strips of ~64k pixels so every temporary stays in cache; the quality test is one
    lookup per pixel in a table of the integer codes built with the same float32 operations.
    ``out``: a (h, w) float32 array to write into (a new one by default).
    """
    h, w = red.shape
    out = np.empty((h, w), np.float32) if out is None else out
    classes = np.asarray(exclude_classes, dtype=np.float32)
    qlut = _bad_code_table(quality.dtype, quality_enc, classes) if quality is not None else None
    rows = max(1, (1 << 16) // max(w, 1))
    m = min(rows, h)
    r, n, total = (np.empty((m, w), np.float32) for _ in range(3))
    bad, tmp = np.empty((m, w), bool), np.empty((m, w), bool)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for y0 in range(0, h, rows):
            sl = slice(y0, y0 + rows)
            k = min(rows, h - y0)
            rr, nn, bb, tt, to = r[:k], n[:k], bad[:k], tmp[:k], total[:k]
            reflectance(red[sl], red_enc, rr)
            reflectance(nir[sl], nir_enc, nn)
            if quality is None:
                bb[...] = False
            elif qlut is not None:
                np.take(qlut, quality[sl], out=bb, mode="clip")
            else:
                q = np.empty((k, w), np.float32)
                reflectance(quality[sl], quality_enc, q)
                _nodata_to_nan(quality[sl], quality_enc[0], q)
                np.logical_or(np.isnan(q), np.isin(q, classes), out=bb)
            for raw, enc in ((red[sl], red_enc), (nir[sl], nir_enc)):
                if _equal_nodata(raw, enc[0], tt):
                    np.logical_or(bb, tt, out=bb)
            np.add(nn, rr, out=to)
            np.subtract(nn, rr, out=nn)
            o = out[sl]
            np.divide(nn, to, out=o)
            np.greater(to, 0, out=tt)  # False for NaN too
            np.logical_not(tt, out=tt)
            np.logical_or(bb, tt, out=bb)
            np.copyto(o, np.float32(np.nan), where=bb)
    return out


def reflectance(raw: np.ndarray, enc: Encoding, out: np.ndarray) -> np.ndarray:
    """float32(raw) * float32(scale) + float32(offset), skipping x1 and +0 (``io.tiles._read_block``)."""
    _, scale, offset = enc
    if scale != 1.0:
        np.multiply(raw, np.float32(scale), out=out, dtype=np.float32, casting="unsafe")
    else:
        np.copyto(out, raw, casting="unsafe")
    if offset != 0.0:
        out += np.float32(offset)
    return out


def _equal_nodata(raw: np.ndarray, nodata: float | None, out: np.ndarray) -> bool:
    """``out = raw == nodata`` as ``io.tiles`` tests it; False (and ``out`` untouched) when no pixel can match."""
    if nodata is None or np.isnan(nodata):
        return False
    if raw.dtype.kind in "ui":
        info = np.iinfo(raw.dtype)
        if nodata != int(nodata) or not info.min <= nodata <= info.max:
            return False  # an integer file never equals a fractional or out-of-range nodata
        np.equal(raw, raw.dtype.type(int(nodata)), out=out)
    else:
        np.equal(raw, nodata, out=out)
    return True


def _nodata_to_nan(raw: np.ndarray, nodata: float | None, out: np.ndarray) -> None:
    if nodata is not None and not np.isnan(nodata):
        np.copyto(out, np.float32(np.nan), where=raw == nodata)


def _bad_code_table(dtype: np.dtype, enc: Encoding | None, classes: np.ndarray) -> np.ndarray | None:
    """For 8/16-bit unsigned quality bands: a table over every possible code, True where the decoded
    quality value is NaN (nodata) or one of ``classes`` (the same float32 tests as ``masked_ndvi``)."""
    if enc is None or dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        return None
    codes = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    q = np.empty(codes.shape, np.float32)
    reflectance(codes, enc, q)
    _nodata_to_nan(codes, enc[0], q)
    return np.isnan(q) | np.isin(q, classes)
