"""Choose the Dask scheduler for a run: local threads, or an existing cluster by address."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dask

LOCAL_SCHEDULERS = ("threads", "synchronous", "processes")


@contextlib.contextmanager
def dask_scheduler(spec: str, num_workers: int | None = None) -> Iterator[str]:
    """Make ``spec`` the active scheduler inside the block; yields a description for the manifest.

    ``spec`` is ``threads``/``synchronous``/``processes`` or a scheduler address such as
    ``tcp://10.0.0.5:8786``; for an address a ``distributed.Client`` is opened and closed here.
    """
    if spec in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=spec, num_workers=num_workers):
            yield spec
        return
    from distributed import Client  # imported lazily: local runs do not need it

    with Client(spec, set_as_default=True, timeout="30s") as client:
        n = len(client.scheduler_info().get("workers", {}))
        yield f"{spec} ({n} workers)"
