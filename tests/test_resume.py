"""Operations: partitioned runs resume after a crash without recomputing finished partitions."""

from __future__ import annotations


import pandas as pd
import pytest
import yaml

from agrisat.errors import RunStoreError
from pipelines import extract
from pipelines.seasonal import run_seasonal


def test_crash_then_resume_gives_identical_outputs_without_recomputing(tiny_config, monkeypatch):
    clean = run_seasonal(tiny_config, run_id="clean")
    parts = pd.read_json(clean.path / "manifest.json", typ="series")["partitions"]
    assert len(parts["all"]) == 3 and parts["computed"] == parts["all"]

    real = extract.zonal.plot_timeseries
    calls: list[list[str]] = []
    crashed: list[bool] = []

    def flaky(ndvi, plots, **kw):
        calls.append(list(plots["plot_id"]))
        if len(calls) == 2 and not crashed:
            crashed.append(True)
            raise RuntimeError("injected fault: worker lost")
        return real(ndvi, plots, **kw)

    monkeypatch.setattr(extract.zonal, "plot_timeseries", flaky)
    with pytest.raises(RuntimeError, match="injected fault"):
        run_seasonal(tiny_config, run_id="crashy")
    out = clean.path.parent
    assert not (out / "crashy").exists()  # no half run
    assert len(list((out / ".work" / "crashy").glob("part-*.parquet"))) == 1

    calls.clear()
    resumed = run_seasonal(tiny_config, run_id="crashy")
    assert len(calls) == 2  # only the two unfinished partitions were computed
    manifest = pd.read_json(resumed.path / "manifest.json", typ="series")
    assert len(manifest["partitions"]["resumed"]) == 1 and len(manifest["partitions"]["computed"]) == 2
    assert not (out / ".work" / "crashy").exists()
    for name in ("plot_timeseries.parquet", "plots.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(clean.path / name), pd.read_parquet(resumed.path / name), check_exact=True)
    a = pd.read_parquet(clean.path / "limits.parquet").drop(columns="run_id")
    b = pd.read_parquet(resumed.path / "limits.parquet").drop(columns="run_id")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_resume_with_changed_inputs_is_refused(tiny_config, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(extract.zonal, "plot_timeseries", boom)
    with pytest.raises(RuntimeError):
        run_seasonal(tiny_config, run_id="r1")
    monkeypatch.undo()
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["season"]["start"] = "2021-04-15"
    tiny_config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(RunStoreError, match="unfinished run with this id used other inputs"):
        run_seasonal(tiny_config, run_id="r1")


def test_partitioning_does_not_change_results(tiny_config, tmp_path):
    one = run_seasonal(tiny_config, run_id="many-parts")
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["imagery"]["partition_px"] = 4096
    cfg["run"]["output_dir"] = str(tmp_path / "runs2")
    tiny_config.write_text(yaml.safe_dump(cfg))
    two = run_seasonal(tiny_config, run_id="one-part")
    pd.testing.assert_frame_equal(pd.read_parquet(one.path / "plot_timeseries.parquet"),
                                  pd.read_parquet(two.path / "plot_timeseries.parquet"), check_exact=True)


def test_incremental_run_reads_only_new_dates_and_equals_full_run(tiny_config, tmp_path, monkeypatch):
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["run"]["as_of"] = "2021-05-15"  # first run sees April and May
    early = tmp_path / "early.yaml"
    early.write_text(yaml.safe_dump(cfg))
    run_seasonal(early, run_id="may")

    read_dates: list[str] = []
    real = extract.tiles.NdviFiles.open_date  # where the pipeline's date tasks open their files

    def spy(self, t):
        read_dates.append(f"{self.dates[t]:%Y-%m-%d}")
        return real(self, t)

    monkeypatch.setattr(extract.tiles.NdviFiles, "open_date", spy)
    inc = run_seasonal(tiny_config, run_id="june-inc", incremental_from="may")
    assert set(read_dates) == {"2021-06-01"}
    manifest = pd.read_json(inc.path / "manifest.json", typ="series")
    assert manifest["dates"] == {"read": ["2021-06-01"], "reused": ["2021-04-01", "2021-05-01"]}

    read_dates.clear()
    full = run_seasonal(tiny_config, run_id="june-full")
    assert set(read_dates) == {"2021-04-01", "2021-05-01", "2021-06-01"}
    for name in ("plot_timeseries.parquet", "plots.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(full.path / name), pd.read_parquet(inc.path / name), check_exact=True)


def test_incremental_run_recomputes_a_plot_whose_geometry_changed(tiny_config, tiny_plots, tmp_path, monkeypatch):
    import geopandas as gpd
    from conftest import pixel_box

    run_seasonal(tiny_config, run_id="before")
    cfg = yaml.safe_load(tiny_config.read_text())
    plots = gpd.read_file(cfg["inputs"]["plots"])
    plots.loc[plots["plot_id"] == "C", "geometry"] = pixel_box(32, 5, 46, 40)  # C redrawn
    plots.to_file(cfg["inputs"]["plots"])
    seen: list[list[str]] = []
    real = extract.zonal.plot_timeseries

    def spy(ndvi, members, **kw):
        seen.append((sorted(members["plot_id"]), len(ndvi.dates)))
        return real(ndvi, members, **kw)

    monkeypatch.setattr(extract.zonal, "plot_timeseries", spy)
    inc = run_seasonal(tiny_config, run_id="after", incremental_from="before")
    assert seen == [(["C"], 3)]  # only C's partition read imagery, for every date
    full = run_seasonal(tiny_config, run_id="after-full")
    pd.testing.assert_frame_equal(pd.read_parquet(full.path / "plot_timeseries.parquet"),
                                  pd.read_parquet(inc.path / "plot_timeseries.parquet"), check_exact=True)


def test_incremental_run_after_a_mask_change_rereads_every_date(tiny_config, tmp_path, monkeypatch):
    """The files are byte-identical, but the cloud classes changed: every statistic may change, so
    nothing of the earlier run is reused and the result equals a full run under the new mask."""
    run_seasonal(tiny_config, run_id="scl-default")
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["imagery"]["exclude_classes"] = [0, 1]  # cloud (SCL 9) now counts as clear
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    read_dates: list[str] = []
    real = extract.tiles.NdviFiles.open_date

    def spy(self, t):
        read_dates.append(f"{self.dates[t]:%Y-%m-%d}")
        return real(self, t)

    monkeypatch.setattr(extract.tiles.NdviFiles, "open_date", spy)
    inc = run_seasonal(changed, run_id="scl-inc", incremental_from="scl-default")
    assert set(read_dates) == {"2021-04-01", "2021-05-01", "2021-06-01"}
    full = run_seasonal(changed, run_id="scl-full")
    got, want = (pd.read_parquet(r.path / "plot_timeseries.parquet") for r in (inc, full))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    old = pd.read_parquet(tmp_path / "runs" / "scl-default" / "plot_timeseries.parquet")
    # The cloudy date of the tiny tiles: under the new mask its pixels count (fixture: SCL 9 top-left).
    assert (got["valid_fraction"] >= old["valid_fraction"]).all() and (got["valid_fraction"] > old["valid_fraction"]).any()


def test_imagery_hashes_are_cached_by_path_size_and_mtime(tiny_config, tmp_path, monkeypatch):
    import os

    from agrisat.io import runstore

    hashed: list[str] = []
    real = runstore.sha256_file

    def spy(path, *a, **kw):
        hashed.append(str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(runstore, "sha256_file", spy)
    first = run_seasonal(tiny_config, run_id="h1")
    tifs = sorted({p for p in hashed if p.endswith(".tif")})
    assert len(tifs) == 9  # 3 dates x B04, B08, SCL: each read once for its hash
    hashed.clear()
    second = run_seasonal(tiny_config, run_id="h2")
    assert not [p for p in hashed if p.endswith(".tif")]  # nothing reread
    touched = tifs[0]
    os.utime(touched, ns=(os.stat(touched).st_atime_ns, os.stat(touched).st_mtime_ns + 10**9))
    hashed.clear()
    run_seasonal(tiny_config, run_id="h3")
    assert [p for p in hashed if p.endswith(".tif")] == [touched]  # only the changed file is rehashed
    m1, m2 = (pd.read_json(r.path / "manifest.json", typ="series") for r in (first, second))
    assert m1["imagery"] == m2["imagery"]  # the same hashes, from the cache
