"""A seasonal run pointed at Sentinel Hub or at a STAC catalog gives the limits of the local run."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from agrisat.errors import ConfigError
from agrisat.io import tiles
from agrisat.sources.stac import write_catalog
from conftest import ROOT
from pipelines.seasonal import run_seasonal
from shserver import SentinelHubStub
from stacserver import StaticServer

SAMPLE = ROOT / "sample_tiles"


def _config(tmp_path, name: str, imagery: dict, inputs: dict | None = None):
    cfg = yaml.safe_load((ROOT / "configs" / "sample_mol.yaml").read_text())
    cfg["run"]["output_dir"] = str(tmp_path / "runs")
    cfg["inputs"] = {"plots": str(SAMPLE / "registry" / "plots_mol.geojson"), **(inputs or {})}
    cfg["crops"], cfg["policy"] = str(ROOT / "configs" / "crops.yaml"), str(ROOT / "configs" / "policy.yaml")
    cfg["imagery"] = {**cfg["imagery"], **imagery}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _same_results(a, b):
    pd.testing.assert_frame_equal(a.limits.drop(columns=["run_id", "inputs_sha256"]),
                                  b.limits.drop(columns=["run_id", "inputs_sha256"]))
    sa = pd.read_parquet(a.path / "plot_timeseries.parquet")
    sb = pd.read_parquet(b.path / "plot_timeseries.parquet")
    pd.testing.assert_frame_equal(sa, sb)


@pytest.fixture
def local_run(tmp_path):
    cfg = _config(tmp_path, "local", {}, {"imagery_index": str(SAMPLE / "index.csv"), "imagery_area": "mol"})
    return run_seasonal(cfg, run_id="local")


def test_sentinelhub_run_equals_local_and_reuses_what_it_fetched(tmp_path, monkeypatch, local_run):
    monkeypatch.setenv("AGRISAT_SH_CLIENT_ID", "test-client")
    monkeypatch.setenv("AGRISAT_SH_CLIENT_SECRET", "test-secret")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    from sentinelhub import SentinelHubDownloadClient

    SentinelHubDownloadClient._CACHED_SESSIONS.clear()
    with SentinelHubStub(SAMPLE, "mol") as sh:
        sh.faults["process"].append("malformed")  # the first scene comes back broken: skipped, named
        cfg = _config(tmp_path, "sh", {"source": "sentinelhub", "sentinelhub": {
            "base_url": sh.url, "token_url": f"{sh.url}/oauth/token", "backoff_s": 0.05}})
        res = run_seasonal(cfg, run_id="sh1")
        manifest = json.loads((res.path / "manifest.json").read_text())
        assert manifest["imagery_source"] == "sentinelhub" and manifest["counts"]["scenes_skipped"] == 1
        assert manifest["scenes_skipped"][0]["date"] == "2023-04-02"
        assert "not a usable GeoTIFF" in manifest["scenes_skipped"][0]["reason"]
        assert any("scene 2023-04-02 skipped" in w for w in manifest["warnings"])
        process_calls = sh.counts["process"]
        again = run_seasonal(cfg, run_id="sh2")  # same request: the fetched folder is reused
        assert sh.counts["process"] == process_calls and sh.counts["search"] == 1
    pd.testing.assert_frame_equal(res.limits.drop(columns="run_id"), again.limits.drop(columns="run_id"))
    # Without the broken scene (2023-04-02 is cloudy, so it adds no clear observation), the limits
    # equal the local run's; the series lacks that one date.
    local_series = pd.read_parquet(local_run.path / "plot_timeseries.parquet")
    sh_series = pd.read_parquet(res.path / "plot_timeseries.parquet")
    want = local_series[local_series["date"] != "2023-04-02"].reset_index(drop=True)
    pd.testing.assert_frame_equal(sh_series, want)
    pd.testing.assert_frame_equal(res.limits.drop(columns=["run_id", "inputs_sha256", "imagery_dates"]),
                                  local_run.limits.drop(columns=["run_id", "inputs_sha256", "imagery_dates"]))


def test_stac_run_equals_local(tmp_path, local_run):
    root = tmp_path / "www"
    shutil.copytree(SAMPLE / "mol", root / "mol")
    with StaticServer(root) as srv:
        write_catalog(tiles.read_index(SAMPLE / "index.csv"), "mol", root / "catalog", srv.url)
        cfg = _config(tmp_path, "stac", {"source": "stac", "stac": {
            "url": f"{srv.url}/catalog/catalog.json", "collection": "sentinel-2-l2a-sample"}})
        res = run_seasonal(cfg, run_id="stac")
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["counts"]["scenes_skipped"] == 0
    assert [s["detail"] for s in manifest["scenes_used"]][:2] == ["mol-2023-04-02", "mol-2023-04-05"]
    _same_results(res, local_run)


def test_folder_scan_run_equals_index_run(tmp_path, local_run):
    cfg = _config(tmp_path, "scan", {}, {"imagery_folder": str(SAMPLE), "imagery_area": "mol"})
    _same_results(run_seasonal(cfg, run_id="scan"), local_run)


def test_config_names_what_is_missing(tmp_path):
    from agrisat.config import load_run_config

    with pytest.raises(ConfigError, match="exactly one of inputs.imagery_index and inputs.imagery_folder"):
        load_run_config(_config(tmp_path, "none", {}))
    with pytest.raises(ConfigError, match="source stac needs imagery.stac.url"):
        load_run_config(_config(tmp_path, "stac", {"source": "stac"}))
    with pytest.raises(ConfigError, match="grid_crs EPSG:4326 is not projected"):
        load_run_config(_config(tmp_path, "geo", {"grid_crs": "EPSG:4326"}, {"imagery_folder": str(SAMPLE)}))


def test_the_cdse_template_is_a_valid_config():
    from agrisat.config import load_run_config

    cfg = load_run_config(ROOT / "configs" / "example_cdse.yaml")
    assert cfg.imagery.source == "sentinelhub" and cfg.imagery.sentinelhub.deployment == "cdse"


def test_fetch_ahead_then_run_asks_the_provider_nothing(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from sentinelhub import SentinelHubDownloadClient

    from agrisat.cli import main

    for k, v in {"AGRISAT_SH_CLIENT_ID": "test-client", "AGRISAT_SH_CLIENT_SECRET": "test-secret",
                 "OAUTHLIB_INSECURE_TRANSPORT": "1"}.items():
        monkeypatch.setenv(k, v)
    SentinelHubDownloadClient._CACHED_SESSIONS.clear()
    with SentinelHubStub(SAMPLE, "mol") as sh:
        cfg = _config(tmp_path, "sh", {"source": "sentinelhub", "sentinelhub": {
            "base_url": sh.url, "token_url": f"{sh.url}/oauth/token", "backoff_s": 0.05, "max_cloud_cover": 50}})
        out = CliRunner().invoke(main, ["fetch", str(cfg)])
        assert out.exit_code == 0, out.output
        assert "skipped  2023-04-02  cloud cover" in out.output and "used     2023-04-05  sentinelhub" in out.output
        calls = dict(sh.counts)
        out = CliRunner().invoke(main, ["run", str(cfg), "--run-id", "after-fetch"])
        assert out.exit_code == 0, out.output
        assert dict(sh.counts) == calls
