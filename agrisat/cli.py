"""Thin command line over pipelines/. Errors become one readable line and a non-zero exit.

Exit codes: 0 success; 2 usage; 3 bad config or input data; 4 imagery problem; 5 run store problem.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from agrisat.errors import AgrisatError, ImageryError, RunStoreError

EXIT_INPUT, EXIT_IMAGERY, EXIT_STORE = 3, 4, 5


def _friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AgrisatError as e:
            code = EXIT_IMAGERY if isinstance(e, ImageryError) else EXIT_STORE if isinstance(e, RunStoreError) else EXIT_INPUT
            click.echo(f"agrisat: error: {e}", err=True)
            sys.exit(code)

    return wrapper


@click.group()
@click.version_option(package_name="agrisat")
def main() -> None:
    """agrisat: credit limits for farmers from satellite crop monitoring."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--run-id", default=None, help="Run id (default: <name>-<as_of>-<UTC time>).")
@click.option("--scheduler", default=None, help="threads | synchronous | processes | tcp://HOST:PORT of a Dask scheduler.")
@_friendly_errors
def run(config: str, run_id: str | None, scheduler: str | None) -> None:
    """Run a seasonal job from CONFIG and write a run folder."""
    from pipelines.seasonal import run_seasonal

    result = run_seasonal(config, run_id=run_id, scheduler=scheduler)
    click.echo(format_limits(result.limits))
    click.echo(f"\nrun {result.run_id} written to {result.path}")


def format_limits(limits: Any) -> str:
    """A short fixed-width table of farmers, limits, status and the top reasons."""
    lines = [f"{'farmer':<8} {'limit':>10} {'cur':<4} {'status':<9} {'plots':>5}  top reasons"]
    for r in limits.itertuples():
        top = ", ".join(list(r.reason_codes)[:3])
        lines.append(f"{r.farmer_id:<8} {r.limit:>10,.0f} {r.currency:<4} {r.status:<9} "
                     f"{r.n_plots_eligible:>2}/{r.n_plots:<2}  {top}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
