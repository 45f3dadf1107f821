"""Thin command line over pipelines/. Errors become one readable line and a non-zero exit.

Exit codes: 0 success; 2 usage; 3 bad config or input data; 4 imagery problem; 5 run store problem.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
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
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per line on stderr, for schedulers and log shippers.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(log_format: str, quiet: bool) -> None:
    """agrisat: credit limits for farmers from satellite crop monitoring."""
    from agrisat import logs

    logs.setup(log_format, logging.WARNING if quiet else logging.INFO)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--run-id", default=None, help="Run id (default: <name>-<as_of>-<UTC time>).")
@click.option("--scheduler", default=None, help="threads | synchronous | processes | tcp://HOST:PORT of a Dask scheduler.")
@click.option("--incremental-from", default=None, metavar="RUN_ID",
              help="Reuse RUN_ID's statistics for unchanged plots on unchanged imagery dates; read only new dates.")
@click.option("--max-rows", default=40, show_default=True, type=click.IntRange(min=0),
              help="Above this many farmers print a summary (statuses, total, top reasons) instead of one line each.")
@click.option("--farmers", "every_farmer", is_flag=True, help="Print one line per farmer however many there are.")
@_friendly_errors
def run(config: str, run_id: str | None, scheduler: str | None, incremental_from: str | None, max_rows: int,
        every_farmer: bool) -> None:
    """Run a seasonal job from CONFIG and write a run folder.

    Re-running with the same --run-id after a crash resumes: finished partitions are not recomputed.
    """
    from pipelines.seasonal import run_seasonal

    result = run_seasonal(config, run_id=run_id, scheduler=scheduler, incremental_from=incremental_from)
    if every_farmer or len(result.limits) <= max_rows:
        click.echo(format_limits(result.limits))
    else:  # thousands of lines scroll the warnings and the run folder out of sight
        click.echo(format_summary(result.limits, n_warnings=len(result.warnings), run_dir=result.path))
    if result.warnings:  # also in the manifest; shown here so nobody lends on them unread
        click.echo(f"\n{len(result.warnings)} warning(s):", err=True)
        for w in result.warnings[:20]:
            click.echo(f"  {w}", err=True)
        if len(result.warnings) > 20:
            click.echo(f"  ... {len(result.warnings) - 20} more in manifest.json", err=True)
    click.echo(f"\nrun {result.run_id} written to {result.path}")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@_friendly_errors
def fetch(config: str) -> None:
    """Fetch (remote sources) or check (local files) the imagery CONFIG's run would read, and list
    the scenes used and skipped. A later `agrisat run CONFIG` reuses what was fetched."""
    from agrisat.config import load_run_config
    from agrisat.io import plots as plots_io
    from pipelines import extract

    cfg = load_run_config(config)
    im = cfg.imagery
    bands = [im.red, im.nir] + ([im.quality] if im.quality else [])
    _, chosen, report, grid = extract.open_imagery(cfg, plots_io.read_plots(cfg.inputs.plots), bands)
    for s in report.used:
        click.echo(f"used     {s['date']}  {s['source']}  {s.get('detail', '')}")
    for s in report.skipped:
        click.echo(f"skipped  {s['date']}  {s['reason']}")
    click.echo(f"\n{chosen['date'].nunique()} date(s) of {', '.join(bands)} on {grid}")


@main.command()
@click.argument("farmer_id")
@click.option("--run", "run_id", required=True, help="Run id (a folder under the runs directory).")
@click.option("--runs-dir", default=None, type=click.Path(file_okay=False),
              help="Runs directory (default: $AGRISAT_OUTPUT_DIR or ./runs).")
@_friendly_errors
def explain(farmer_id: str, run_id: str, runs_dir: str | None) -> None:
    """Print FARMER_ID's limit in RUN_ID, its breakdown and its reason codes."""
    from agrisat.explain import explain_farmer
    from agrisat.io.runstore import find_run

    path = find_run(_runs_dir(runs_dir), run_id)
    click.echo(explain_farmer(path, farmer_id))


@main.command()
@click.argument("loans_csv", type=click.Path(dir_okay=False))
@click.option("--bands", default=5, show_default=True, help="Number of quantile bands.")
@_friendly_errors
def backtest(loans_csv: str, bands: int) -> None:
    """Default rate by limit and score band, KS and AUC, from LOANS_CSV (limit, risk_score, defaulted)."""
    import pandas as pd

    from agrisat.backtest import backtest as run_backtest
    from agrisat.errors import InputDataError

    try:
        df = pd.read_csv(loans_csv)
    except (OSError, ValueError) as e:
        raise InputDataError(f"{loans_csv}: cannot read: {e}") from e
    click.echo(run_backtest(df, source=loans_csv, n_bands=bands).to_text())


@main.command("train-yield")
@click.argument("history", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", default="models", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the model artifact (.joblib) and its metadata (.json).")
@click.option("--no-validate", is_flag=True, help="Skip leave-one-season/region-out validation.")
@_friendly_errors
def train_yield_cmd(history: str, out_dir: str, no_validate: bool) -> None:
    """Train per-crop quantile yield models from HISTORY (Parquet or CSV) and report validation."""
    import json

    from pipelines import train_yield

    art = train_yield.train(train_yield.read_history(Path(history)), validate=not no_validate)
    path = train_yield.save(art, Path(out_dir))
    click.echo(json.dumps({k: art[k] for k in ("version", "crops", "n_rows", "metrics")}, indent=2))
    click.echo(f"model written to {path}  (set `yield_model: {path}` in a run config)")


@main.command("train-crops")
@click.argument("labelled", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--from-run", "from_run", default=None, type=click.Path(file_okay=False, exists=True),
              help="Label a run's clear dates with the plots' declared crops instead of reading LABELLED.")
@click.option("--out", "out_dir", default="models", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the classifier artifact (.joblib) and its metadata (.json).")
@_friendly_errors
def train_crops_cmd(labelled: str | None, from_run: str | None, out_dir: str) -> None:
    """Train the crop classifier from LABELLED profiles (plot_id, crop, season_start, date, ndvi)."""
    import json

    from agrisat.errors import InputDataError
    from pipelines import train_crops

    if (labelled is None) == (from_run is None):
        raise InputDataError("give either LABELLED or --from-run RUN_DIR")
    table = train_crops.from_run(Path(from_run)) if from_run else train_crops.read_labelled(Path(labelled))
    art = train_crops.train(table)
    path = train_crops.save(art, Path(out_dir))
    click.echo(json.dumps({k: art[k] for k in ("version", "crops", "n_profiles", "metrics")}, indent=2))
    click.echo(f"classifier written to {path}  (set `crop_classifier: {path}` in a run config)")


runs_dir_option = click.option("--runs-dir", default=None, type=click.Path(file_okay=False),
                               help="Runs directory (default: $AGRISAT_OUTPUT_DIR or ./runs).")


@main.group()
def inspect() -> None:
    """Look at one plot or farmer of a run."""


@inspect.command("plot")
@click.argument("plot_id")
@click.option("--run", "run_id", required=True, help="Run id.")
@runs_dir_option
@click.option("--png", "png_path", default=None, type=click.Path(dir_okay=False),
              help="Where to write the chart (default: <run>/plots/<PLOT_ID>.png).")
@_friendly_errors
def inspect_plot(plot_id: str, run_id: str, runs_dir: str | None, png_path: str | None) -> None:
    """Metrics and flags of PLOT_ID, and a PNG chart of its NDVI against its cohort."""
    from agrisat.io.runstore import find_run
    from agrisat.report.inspect import plot_summary

    path = find_run(_runs_dir(runs_dir), run_id)
    text, png = plot_summary(path, plot_id)
    out = Path(png_path) if png_path else path / "plots" / f"{plot_id}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    click.echo(text)
    click.echo(f"\nchart written to {out}")


@inspect.command("farmer")
@click.argument("farmer_id")
@click.option("--run", "run_id", required=True, help="Run id.")
@runs_dir_option
@_friendly_errors
def inspect_farmer(farmer_id: str, run_id: str, runs_dir: str | None) -> None:
    """FARMER_ID's plots and limit breakdown (same as `agrisat explain`)."""
    from agrisat.explain import explain_farmer
    from agrisat.io.runstore import find_run

    click.echo(explain_farmer(find_run(_runs_dir(runs_dir), run_id), farmer_id))


@main.command()
@click.argument("run_id")
@runs_dir_option
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="HTML file to write (default: <run>/report.html).")
@_friendly_errors
def report(run_id: str, runs_dir: str | None, output: str | None) -> None:
    """Write a self-contained HTML report of RUN_ID (works offline)."""
    from agrisat.io.runstore import find_run
    from agrisat.report.html import write_report

    out = write_report(find_run(_runs_dir(runs_dir), run_id), Path(output) if output else None)
    click.echo(f"report written to {out}")


def _runs_dir(option: str | None) -> Path:
    return Path(option or os.environ.get("AGRISAT_OUTPUT_DIR") or "runs")


def format_limits(limits: Any) -> str:
    """A short fixed-width table of farmers, limits, status and the top reasons."""
    lines = [f"{'farmer':<8} {'limit':>10} {'cur':<4} {'status':<9} {'plots':>5}  top reasons"]
    for r in limits.itertuples():
        top = ", ".join(list(r.reason_codes)[:3])
        lines.append(f"{r.farmer_id:<8} {r.limit:>10,.0f} {r.currency:<4} {r.status:<9} "
                     f"{r.n_plots_eligible:>2}/{r.n_plots:<2}  {top}")
    return "\n".join(lines)


STATUS_ORDER = ("approved", "review", "declined")


def format_summary(limits: Any, *, n_warnings: int = 0, run_dir: Path | None = None, top: int = 5) -> str:
    """What a run of many farmers decided, in a dozen lines: farmers by status, the total limit per
    currency, eligible plots, the ``top`` reason codes by the number of farmers whose limit carries
    them, the number of warnings and the run folder."""
    from collections import Counter

    status = Counter(str(s) for s in limits["status"])
    statuses = list(STATUS_ORDER) + sorted(set(status) - set(STATUS_ORDER))  # all three even at 0
    totals = limits.groupby("currency", sort=True)["limit"].sum()
    # A code counts once per farmer: PRICE_HAIRCUT, RENT_DUE ... come once per plot or contract, and
    # "how many farmers does this hit" is what a loan officer reads the list for.
    reasons = Counter(c for codes in limits["reason_codes"] if codes is not None for c in set(codes))
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:top]  # ties by code: stable output
    lines = [f"{len(limits):,} farmers, summarised (--farmers prints one line per farmer)",
             f"{'status':<16} " + ", ".join(f"{status.get(s, 0):,} {s}" for s in statuses),
             f"{'total limit':<16} " + (", ".join(f"{v:,.0f} {c}" for c, v in totals.items()) or "0"),
             f"{'plots eligible':<16} {int(limits['n_plots_eligible'].sum()):,} of {int(limits['n_plots'].sum()):,}",
             f"{'top reasons':<16} " + ("farmers with the code" if ranked else "none")]
    code_w = max((len(c) for c, _ in ranked), default=0)
    lines += [f"  {c:<{code_w}}  {n:>9,}" for c, n in ranked]
    lines.append(f"{'warnings':<16} {n_warnings:,}" + (" (listed below and in manifest.json)" if n_warnings else ""))
    if run_dir is not None:
        lines.append(f"{'run folder':<16} {run_dir} (every farmer's limit in limits.parquet)")
    return "\n".join(lines)


from agrisat.cli_api import register; register(main)  # noqa: E402,E702 - serve, publish, keys, push

if __name__ == "__main__":
    main()
