"""Operations: partitioned runs resume after a crash without recomputing finished partitions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from agrisat.errors import RunStoreError
from conftest import ROOT
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
        pd.testing.assert_frame_equal(pd.read_parquet(clean.path / name), pd.read_parquet(resumed.path / name))
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
                                  pd.read_parquet(two.path / "plot_timeseries.parquet"))
