"""Analyst views: inspect plot/farmer, and the offline HTML report rendered in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from agrisat.cli import main
from pipelines.seasonal import run_seasonal

ARTIFACTS = Path(os.environ.get("AGRISAT_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture
def tiny_run(tiny_config):
    res = run_seasonal(tiny_config, run_id="tiny-run")
    return res.path


def test_inspect_plot_prints_metrics_and_writes_png(tiny_run):
    result = CliRunner().invoke(main, ["inspect", "plot", "B", "--run", "tiny-run", "--runs-dir", str(tiny_run.parent)])
    assert result.exit_code == 0, result.output
    assert "plot B" in result.output and "peak_ndvi" in result.output and "valid_fraction" in result.output
    png = tiny_run / "plots" / "B.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_inspect_unknown_plot_is_a_clear_error(tiny_run):
    result = CliRunner().invoke(main, ["inspect", "plot", "NOPE", "--run", "tiny-run", "--runs-dir", str(tiny_run.parent)])
    assert result.exit_code == 3 and "plot 'NOPE' is not in this run" in result.output


def test_inspect_farmer_and_explain_show_breakdown(tiny_run):
    for cmd in (["inspect", "farmer"], ["explain"]):
        result = CliRunner().invoke(main, [*cmd, "F1", "--run", "tiny-run", "--runs-dir", str(tiny_run.parent)])
        assert result.exit_code == 0, result.output
        assert "farmer F1" in result.output and "ADVANCE_ON_REVENUE" in result.output and "按预期作物收入授信" in result.output
        assert "A" in result.output and "B" in result.output


def test_html_report_is_self_contained(tiny_run):
    result = CliRunner().invoke(main, ["report", "tiny-run", "--runs-dir", str(tiny_run.parent)])
    assert result.exit_code == 0, result.output
    text = (tiny_run / "report.html").read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert text.count('class="map"') == 2 and 'data-plot="A"' in text
    assert text.count('<section class="plot"') == 3 and "data:image/png;base64," in text


@pytest.mark.skipif(shutil.which("chromium") is None and not os.environ.get("CI"),
                    reason="Debian chromium not installed (.ci/run installs it; required in CI)")
def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    from agrisat.report.html import write_report

    report = write_report(tiny_run)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The browser parsed the maps (SVG paths per plot) and the per-plot chart images.
    assert dom.stdout.count("<svg") == 2 and 'data-plot="C"' in dom.stdout
    assert 'alt="NDVI chart of plot A"' in dom.stdout
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()],
                   capture_output=True, timeout=90, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
