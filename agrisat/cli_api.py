"""CLI commands of the lending-system API: serve, publish, keys, push.

Registered on the main group by agrisat/cli.py (``register(main)``). The database URL and the
webhook secret come from the environment only (a command line shows up in ``ps``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

runs_dir_option = click.option("--runs-dir", default=None, type=click.Path(file_okay=False),
                               help="Runs directory (default: $AGRISAT_OUTPUT_DIR or ./runs).")


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """agrisat.cli's one-line errors and exit codes (imported late: cli.py imports this module)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from agrisat.cli import _friendly_errors

        return _friendly_errors(fn)(*args, **kwargs)

    return wrapper


def _settings(runs_dir: str | None) -> Any:
    from agrisat.api.settings import Settings

    env = dict(os.environ)
    if runs_dir:
        env["AGRISAT_OUTPUT_DIR"] = runs_dir
    return Settings.from_env(env)


def _engine(runs_dir: str | None) -> Any:
    from agrisat.store import init_schema, make_engine

    engine = make_engine(_settings(runs_dir).db_url)
    init_schema(engine)
    return engine


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 to expose).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Processes; rate limits are per process.")
@runs_dir_option
@_errors
def serve(host: str, port: int, workers: int, runs_dir: str | None) -> None:
    """Serve published limits over HTTP (the lending-system API)."""
    import uvicorn

    if runs_dir:
        os.environ["AGRISAT_OUTPUT_DIR"] = runs_dir  # the factory reads the environment (also in workers)
    _engine(runs_dir)  # fail here, with a readable error, if the store is unreachable
    uvicorn.run("agrisat.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=False, server_header=False, log_level="info")


@click.command()
@click.argument("run_id")
@runs_dir_option
@click.option("--push", "then_push", is_flag=True, help="Then push the run's limits to $AGRISAT_WEBHOOK_URL.")
@_errors
def publish(run_id: str, runs_dir: str | None, then_push: bool) -> None:
    """Make RUN_ID's limits current, in one transaction."""
    from agrisat.store import publish_run

    settings = _settings(runs_dir)
    done = publish_run(_engine(runs_dir), settings.output_dir, run_id)
    click.echo(f"published run {done.run_id}: {done.n_limits} limits current (publication {done.pub_seq})")
    if then_push:
        _push(runs_dir, run_id, retry_dead=False)


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["limits:read", "plots:read", "admin"]), help="Repeat for several scopes.")
@click.option("--rate", type=float, default=None, help="Requests per second (default: $AGRISAT_API_RATE or 20).")
@click.option("--burst", type=int, default=None, help="Bucket size (default: $AGRISAT_API_BURST or 40).")
@runs_dir_option
@_errors
def keys_create(name: str, scopes: tuple[str, ...], rate: float | None, burst: int | None,
                runs_dir: str | None) -> None:
    """Create a key for NAME and print it once (only its hash is stored)."""
    from agrisat.store.keys import create_key

    key_id, key = create_key(_engine(runs_dir), name, list(scopes), rate, burst)
    click.echo(key)
    click.echo(f"key id {key_id} ({' '.join(sorted(scopes))}); store the key now, it cannot be shown again",
               err=True)


@keys.command("list")
@runs_dir_option
@_errors
def keys_list(runs_dir: str | None) -> None:
    """List keys (ids, names, scopes; never secrets)."""
    from agrisat.store.keys import list_keys

    for k in list_keys(_engine(runs_dir)):
        state = f"revoked {k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "active"
        click.echo(f"{k['key_id']}  {k['name']:<20} {k['scopes']:<30} {state}")


@keys.command("revoke")
@click.argument("key_id")
@runs_dir_option
@_errors
def keys_revoke(key_id: str, runs_dir: str | None) -> None:
    """Revoke KEY_ID (takes effect within 5 s on running servers)."""
    from agrisat.errors import ConfigError
    from agrisat.store.keys import revoke_key

    if not revoke_key(_engine(runs_dir), key_id):
        raise ConfigError(f"key {key_id}: no such active key")
    click.echo(f"revoked {key_id}")


@click.command()
@click.argument("run_id", required=False)
@runs_dir_option
@click.option("--retry-dead", is_flag=True, help="Also resend deliveries that ended as dead letters.")
@_errors
def push(run_id: str | None, runs_dir: str | None, retry_dead: bool) -> None:
    """Push RUN_ID's limits (default: the last published run) to $AGRISAT_WEBHOOK_URL."""
    _push(runs_dir, run_id, retry_dead)


def _push(runs_dir: str | None, run_id: str | None, retry_dead: bool) -> None:
    import sys

    from agrisat.errors import ConfigError
    from agrisat.store import queries, read_tx
    from agrisat.webhook import WebhookExporter, push_run

    settings = _settings(runs_dir)
    if not settings.webhook_url:
        raise ConfigError("AGRISAT_WEBHOOK_URL is not set")
    engine = _engine(runs_dir)
    if run_id is None:
        with read_tx(engine) as conn:
            published = queries.list_runs(conn, max_rows=1)
        if not published:
            raise ConfigError("no published run to push")
        run_id = published[0]["run_id"]
    exporter = WebhookExporter(settings.webhook_url, settings.webhook_secret)
    try:
        res = push_run(engine, exporter, run_id, url=settings.webhook_url, retry_dead=retry_dead)
    finally:
        exporter.close()
    click.echo(f"run {run_id}: {res.delivered} delivered, {res.skipped} already done, {res.dead} dead letters")
    if res.dead:
        sys.exit(6)


def register(main: click.Group) -> None:
    for cmd in (serve, publish, keys, push):
        main.add_command(cmd)


