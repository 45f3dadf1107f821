"""Push to a local receiver (http.server on 127.0.0.1) that checks signatures and fails on purpose."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from agrisat.errors import ConfigError
from agrisat.store import publish_run
from agrisat.webhook import SIGNATURE_HEADER, WebhookExporter, dead_letters, push_run, verify

SECRET = "s3cret-for-tests-only-0123456789"


class Receiver:
    """Answers ``plan[n]`` to the n-th request for each idempotency key (the last entry repeats)."""

    def __init__(self, plan: list[int]) -> None:
        self.plan, self.bodies, self.tries = plan, [], Counter()
        self.bad_signatures = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify(SECRET, body, self.headers.get(SIGNATURE_HEADER)):
                    outer.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                key = self.headers["Idempotency-Key"]
                n = outer.tries[key]
                outer.tries[key] += 1
                code = outer.plan[min(n, len(outer.plan) - 1)]
                if code == 200:
                    outer.bodies.append((key, json.loads(body)))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/limits"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request):
    r = Receiver(request.param)
    yield r
    r.close()


@pytest.fixture
def small_run(engine, runs_dir):
    from .fakes import write_run

    write_run(runs_dir, "run-s", ["F1", "F2", "F3"])
    publish_run(engine, runs_dir, "run-s")
    return "run-s"


def exporter(url: str, secret: str = SECRET, **kw) -> WebhookExporter:
    return WebhookExporter(url, secret, backoff_s=0.01, max_backoff_s=0.05, timeout_s=2, **kw)


@pytest.mark.parametrize("receiver", [[500, 500, 200]], indirect=True)
def test_signed_retried_then_delivered_once(engine, small_run, receiver):
    res = push_run(engine, exporter(receiver.url), small_run, url=receiver.url)
    assert (res.delivered, res.dead, receiver.bad_signatures) == (3, 0, 0)
    assert receiver.tries == Counter({"run-s:F1": 3, "run-s:F2": 3, "run-s:F3": 3})
    key, body = receiver.bodies[0]
    assert key == body["idempotency_key"] == "run-s:F1" and body["limit"]["limit"] == 1000.0
    again = push_run(engine, exporter(receiver.url), small_run, url=receiver.url)
    assert (again.delivered, again.skipped) == (0, 3) and sum(receiver.tries.values()) == 9


@pytest.mark.parametrize("receiver", [[500]], indirect=True)
def test_always_500_ends_in_dead_letter(engine, small_run, receiver):
    res = push_run(engine, exporter(receiver.url, max_attempts=4), small_run, url=receiver.url)
    assert (res.delivered, res.dead) == (0, 3) and receiver.tries["run-s:F2"] == 4
    dead = dead_letters(engine, small_run)
    assert [d["farmer_id"] for d in dead] == ["F1", "F2", "F3"]
    assert dead[0]["attempts"] == 4 and dead[0]["last_error"] == "HTTP 500"
    assert json.loads(dead[0]["payload"])["idempotency_key"] == "run-s:F1"
    # Dead letters are not resent unless asked; once the receiver recovers they are delivered.
    assert push_run(engine, exporter(receiver.url), small_run, url=receiver.url).skipped == 3
    receiver.plan = [200]
    assert push_run(engine, exporter(receiver.url), small_run, url=receiver.url, retry_dead=True).delivered == 3
    assert dead_letters(engine, small_run) == []


@pytest.mark.parametrize("receiver", [[200]], indirect=True)
def test_wrong_secret_is_refused_and_not_retried(engine, small_run, receiver):
    res = push_run(engine, exporter(receiver.url, secret="another-secret-0123456789"), small_run, url=receiver.url)
    assert res.dead == 3 and receiver.bad_signatures == 3  # 401 is final: one attempt each


def test_unreachable_receiver_is_retried_then_dead(engine, small_run):
    from .conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/x"
    res = push_run(engine, exporter(url, max_attempts=2), small_run, url=url)
    assert res.dead == 3 and dead_letters(engine)[0]["attempts"] == 2


@pytest.mark.parametrize("url,secret,msg", [
    ("http://lender.example/limits", SECRET, "use https"),
    ("ftp://x/", SECRET, "not an http"),
    ("https://lender.example/limits", None, "AGRISAT_WEBHOOK_SECRET"),
    ("https://lender.example/limits", "short", "AGRISAT_WEBHOOK_SECRET"),
])
def test_refuses_unsafe_configuration(url, secret, msg):
    with pytest.raises(ConfigError, match=msg):
        WebhookExporter(url, secret)


@pytest.mark.parametrize("receiver", [[200]], indirect=True)
def test_cli_publish_and_push(tmp_path, receiver, monkeypatch):
    from agrisat.cli import main

    from .fakes import write_run

    runs = tmp_path / "cli-runs"
    runs.mkdir()
    write_run(runs, "run-c", ["F1", "F2"])
    monkeypatch.setenv("AGRISAT_OUTPUT_DIR", str(runs))
    monkeypatch.delenv("AGRISAT_DB_URL", raising=False)
    monkeypatch.setenv("AGRISAT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("AGRISAT_WEBHOOK_SECRET", SECRET)
    cli = CliRunner()
    r = cli.invoke(main, ["publish", "run-c", "--push"])
    assert r.exit_code == 0, r.output
    assert "2 limits current" in r.output and "2 delivered" in r.output
    assert cli.invoke(main, ["publish", "run-c"]).exit_code == 5  # already published
    assert "0 delivered, 2 already done, 0 dead letters" in cli.invoke(main, ["push"]).output
    created = cli.invoke(main, ["keys", "create", "bank", "--scope", "limits:read"])
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("agr_") and created.exit_code == 0
    key_id = key.split("_")[1]
    listing = cli.invoke(main, ["keys", "list"]).output
    assert key_id in listing and key.split("_", 2)[2] not in listing
    assert cli.invoke(main, ["keys", "revoke", key_id]).exit_code == 0
    assert cli.invoke(main, ["keys", "revoke", key_id]).exit_code == 3
