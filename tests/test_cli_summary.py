"""`agrisat run` on many farmers prints a summary; its numbers are recomputed here from the limits
frame with pandas, independently of the formatter's own counting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from agrisat.cli import format_limits, format_summary, main
from conftest import ROOT

CODES = ["ADVANCE_ON_REVENUE", "PRICE_HAIRCUT", "RENT_DUE", "EXISTING_DEBT", "FLOOR_AT_ZERO", "BELOW_MINIMUM",
         "PLOT_EXCLUDED_LEASE_EXPIRED", "FLAG_CROP_MISMATCH", "ROUNDING"]


def _limits(n: int = 300, seed: int = 3) -> pd.DataFrame:
    """A limits frame as the pipeline writes it, with codes repeated inside a farmer (one per plot)."""
    rng = np.random.default_rng(seed)
    weights = np.linspace(2.0, 0.2, len(CODES))
    codes = [list(rng.choice(CODES, size=rng.integers(0, 7), p=weights / weights.sum())) for _ in range(n)]
    n_plots = rng.integers(1, 5, n)
    return pd.DataFrame({
        "farmer_id": [f"F{k:04d}" for k in range(n)],
        "limit": np.floor(rng.uniform(0, 5000, n) / 100) * 100,
        "currency": rng.choice(["EUR", "EUR", "EUR", "USD"], n),
        "status": rng.choice(["approved", "review", "declined"], n, p=[0.5, 0.3, 0.2]),
        "reason_codes": [np.array(c, dtype=object) for c in codes],  # parquet gives arrays
        "n_plots": n_plots,
        "n_plots_eligible": rng.integers(0, n_plots + 1),
    })


def _parse(text: str) -> dict:
    lines = text.splitlines()
    field = {ln[:16].strip(): ln[16:].strip() for ln in lines if ln and not ln.startswith("  ")}
    status = {s: int(v.replace(",", "")) for v, s in re.findall(r"(\d[\d,]*) (\w+)", field["status"])}
    totals = {c: float(v.replace(",", "")) for v, c in re.findall(r"(\d[\d,]*) ([A-Z]{3})", field["total limit"])}
    eligible, total = (int(v.replace(",", "")) for v in re.fullmatch(r"([\d,]+) of ([\d,]+)", field["plots eligible"]).groups())
    reasons = [(m[0], int(m[1].replace(",", ""))) for ln in lines if ln.startswith("  ")
               for m in [ln.split()]]
    return {"head": lines[0], "status": status, "totals": totals, "eligible": (eligible, total), "reasons": reasons,
            "warnings": int(field["warnings"].split()[0].replace(",", "")), "run folder": field.get("run folder")}


def _expected_reasons(limits: pd.DataFrame, top: int = 5) -> list[tuple[str, int]]:
    per_farmer = limits["reason_codes"].map(lambda c: sorted(set(c))).explode().dropna()
    counts = per_farmer.value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # the formatter's documented tie rule
    return [(str(c), int(n)) for c, n in ranked[:top]]


def test_summary_numbers_equal_an_independent_count():
    limits = _limits()
    got = _parse(format_summary(limits, n_warnings=1234, run_dir=Path("runs/big-run")))
    assert got["head"].startswith("300 farmers")
    assert got["status"] == {k: int(v) for k, v in limits["status"].value_counts().items()}
    assert got["totals"] == {k: float(v) for k, v in limits.groupby("currency")["limit"].sum().items()}
    assert set(got["totals"]) == {"EUR", "USD"}  # one total per currency, never summed across them
    assert got["eligible"] == (limits["n_plots_eligible"].sum(), limits["n_plots"].sum())
    assert got["reasons"] == _expected_reasons(limits)
    # A code repeated inside one farmer counts once: the counts are farmers, at most their number.
    occurrences = limits["reason_codes"].explode().value_counts()
    assert any(occurrences[c] > n for c, n in got["reasons"]) and all(n <= len(limits) for _, n in got["reasons"])
    assert got["warnings"] == 1234 and got["run folder"].startswith("runs/big-run")


def test_summary_names_every_status_and_tolerates_no_reasons():
    limits = _limits(50).assign(status="review", reason_codes=[np.array([], dtype=object)] * 50)
    got = _parse(format_summary(limits))
    assert got["status"] == {"approved": 0, "review": 50, "declined": 0}
    assert got["reasons"] == [] and got["warnings"] == 0 and got["run folder"] is None


class _Result:
    def __init__(self, limits: pd.DataFrame, path: Path) -> None:
        self.run_id, self.path, self.limits, self.warnings = "fake", path, limits, ("w1", "w2")


@pytest.mark.parametrize(("n", "args", "summary"), [(40, [], False), (41, [], True), (41, ["--farmers"], False),
                                                    (5, ["--max-rows", "4"], True), (5, ["--max-rows", "5"], False)])
def test_run_prints_a_table_up_to_max_rows_farmers(monkeypatch, tmp_path, n, args, summary):
    import pipelines.seasonal

    limits = _limits(n)
    monkeypatch.setattr(pipelines.seasonal, "run_seasonal", lambda *a, **k: _Result(limits, tmp_path))
    out = CliRunner().invoke(main, ["run", "any.yaml", *args])
    assert out.exit_code == 0, out.output
    assert (format_limits(limits) in out.stdout) is not summary
    assert (format_summary(limits, n_warnings=2, run_dir=tmp_path) in out.stdout) is summary
    assert "2 warning(s):" in out.stderr and f"run fake written to {tmp_path}" in out.stdout


def test_sample_run_with_max_rows_3_prints_the_summary_of_its_limits(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "sample_hesbaye.yaml").read_text())
    base = ROOT / "configs"
    for key in ("plots", "imagery_index", "contracts", "weather", "debt"):
        cfg["inputs"][key] = str((base / cfg["inputs"][key]).resolve())
    cfg["crops"], cfg["policy"] = str(base / cfg["crops"]), str(base / cfg["policy"])
    cfg["run"]["output_dir"] = str(tmp_path / "runs")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))

    out = CliRunner().invoke(main, ["run", str(path), "--run-id", "summary", "--max-rows", "3"])
    assert out.exit_code == 0, out.output
    assert "\nF01 " not in out.stdout  # no farmer lines
    limits = pd.read_parquet(tmp_path / "runs" / "summary" / "limits.parquet")
    manifest = json.loads((tmp_path / "runs" / "summary" / "manifest.json").read_text())
    got = _parse(out.stdout.split("\n\nrun summary written")[0])
    assert got["head"].startswith(f"{len(limits)} farmers")
    want_status = {s: 0 for s in ("approved", "review", "declined")} | limits["status"].value_counts().to_dict()
    assert got["status"] == want_status
    assert got["totals"] == limits.groupby("currency")["limit"].sum().to_dict()
    assert got["eligible"] == (limits["n_plots_eligible"].sum(), limits["n_plots"].sum())
    assert got["reasons"] == _expected_reasons(limits)
    assert got["warnings"] == len(manifest["warnings"])
    assert got["run folder"].startswith(str(tmp_path / "runs" / "summary"))
