"""A whole seasonal run on a real Dask cluster (scheduler + 2 worker processes) equals the local run."""

import pandas as pd

from pipelines.seasonal import run_seasonal


def test_run_on_dask_cluster_gives_same_limits_as_local(tiny_config, dask_cluster_address):
    local = run_seasonal(tiny_config, run_id="local", scheduler="threads")
    remote = run_seasonal(tiny_config, run_id="cluster", scheduler=dask_cluster_address)
    manifest = pd.read_json(remote.path / "manifest.json", typ="series")
    assert manifest["scheduler"].startswith(dask_cluster_address) and "(2 workers)" in manifest["scheduler"]
    for name in ("plot_timeseries.parquet", "plots.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(local.path / name), pd.read_parquet(remote.path / name), check_exact=True)
    a = pd.read_parquet(local.path / "limits.parquet").drop(columns="run_id")
    b = pd.read_parquet(remote.path / "limits.parquet").drop(columns="run_id")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_tiny_run_has_real_limits_to_compare(tiny_config):
    # Guards the test above against comparing zeros: the tiny sample lends to F2 and excludes plot A.
    limits = run_seasonal(tiny_config, run_id="check").limits.set_index("farmer_id")
    assert limits.loc["F2", "limit"] > 0
    assert "PLOT_EXCLUDED_NOT_ENOUGH_CLEAR_OBSERVATIONS" in limits.loc["F1", "reason_codes"]
