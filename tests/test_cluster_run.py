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


def test_zonal_on_local_cluster_and_remote_cluster_equal_threaded(tiny_tiles, tiny_plots, dask_cluster_address):
    import dask
    from distributed import Client, LocalCluster

    from agrisat import zonal
    from test_zonal import _files, _ndvi

    nd = _ndvi(tiny_tiles, chunk_px=16)
    with dask.config.set(scheduler="threads"):
        threaded = zonal.plot_timeseries(nd, tiny_plots, group_px=8, coverage=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, Client(lc):
        local_cluster = zonal.plot_timeseries(nd, tiny_plots, group_px=8, coverage=True)
    files = _files(tiny_tiles, strip_px=16)  # the pipeline's reader: each date task reads its own files
    with Client(dask_cluster_address):
        remote = zonal.plot_timeseries(nd, tiny_plots, group_px=8, coverage=True)
        remote_files = zonal.plot_timeseries(files, tiny_plots, group_px=8, coverage=True)
    pd.testing.assert_frame_equal(threaded, local_cluster, check_exact=True)
    pd.testing.assert_frame_equal(threaded, remote, check_exact=True)
    pd.testing.assert_frame_equal(threaded, remote_files, check_exact=True)

