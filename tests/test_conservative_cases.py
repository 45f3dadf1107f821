"""Conservative by construction, case by case (issue 16's table): each input a new user could give
the sample run, through ``run_seasonal`` as ``agrisat run`` calls it, or through ``decide`` on the
sample's own extracted series. Expected numbers are worked out from the input files and the policy
by hand (rent = annual rent x days in the season / 365; limit = floor((advances - rent - debt) / 100) x 100).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from affine import Affine
from click.testing import CliRunner
from rasterio import features
from shapely import affinity

from agrisat import plots as plotmod
from agrisat.cli import main
from agrisat.config import load_crops, load_policy
from agrisat.io import plots as plots_io
from agrisat.io import tables
from agrisat.io import weather as weather_io
from conftest import ROOT
from pipelines.seasonal import Evidence, decide, run_seasonal

CONFIG = ROOT / "configs" / "sample_hesbaye.yaml"
MOL = ROOT / "configs" / "sample_mol.yaml"
REG = ROOT / "sample_tiles" / "registry"
POLICY = load_policy(ROOT / "configs" / "policy.yaml").for_stage("harvest")


def _config(tmp: Path, base: Path = CONFIG, *, run: dict | None = None, inputs: dict | None = None,
            policy: Path | None = None, drop: tuple[str, ...] = ()) -> Path:
    """The sample config with absolute paths and the given overrides, written into ``tmp``."""
    cfg = yaml.safe_load(base.read_text())
    for key, value in cfg["inputs"].items():
        if isinstance(value, str) and value.startswith(".."):
            cfg["inputs"][key] = str((base.parent / value).resolve())
    for key in drop:
        cfg["inputs"].pop(key, None)
    cfg["inputs"].update({k: str(v) for k, v in (inputs or {}).items()})
    cfg["run"].update(run or {})
    cfg["run"]["output_dir"] = str(tmp / "runs")
    cfg["crops"] = str(base.parent / cfg["crops"])
    cfg["policy"] = str(policy or base.parent / cfg["policy"])
    path = tmp / f"cfg-{len(list(tmp.glob('cfg-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(cfg: Path, run_id: str = "r"):
    res = run_seasonal(cfg, run_id=run_id)
    plots = gpd.read_parquet(res.path / "plots.parquet").set_index("plot_id")
    return res, res.limits.set_index("farmer_id"), plots


def _reasons(limits: pd.DataFrame, farmer: str) -> list[dict]:
    return list(limits.loc[farmer, "reasons"])


def _limit_from(advances: float, rent: float, debt: float) -> float:
    """The policy's limit from its parts, by hand (no previous limit)."""
    v = min(max(advances - rent - debt, 0.0), POLICY.max_limit_per_farmer)
    v = math.floor(v / POLICY.rounding) * POLICY.rounding
    return 0.0 if v < POLICY.min_limit else v


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return _run(_config(tmp_path_factory.mktemp("baseline")))


def _registry() -> gpd.GeoDataFrame:
    return gpd.read_file(REG / "plots.geojson")


# --- coverage ---------------------------------------------------------------------------------------

def _tile_grid():
    idx = pd.read_csv(ROOT / "sample_tiles" / "index.csv")
    row = idx[(idx["area"] == "hesbaye") & (idx["band"] == "B04")].iloc[0]
    with rasterio.open(ROOT / "sample_tiles" / row["path"]) as ds:
        return ds.transform, ds.width, ds.height, ds.crs


def _centres(geom, transform, width, height, pad: int) -> tuple[int, int]:
    """(pixel centres inside ``geom`` on the tile, on the tile grid extended by ``pad`` pixels): rasterio."""
    big = transform @ Affine.translation(-pad, -pad)
    mask = features.rasterize([(geom, 1)], out_shape=(height + 2 * pad, width + 2 * pad), transform=big,
                              all_touched=False, fill=0, dtype="uint8").astype(bool)
    return int(mask[pad:pad + height, pad:pad + width].sum()), int(mask.sum())


def test_a_plot_half_outside_the_tile_lends_only_on_what_was_seen(tmp_path, baseline):
    transform, width, height, crs = _tile_grid()
    reg = _registry()
    p = reg[reg["plot_id"] == "P005"].to_crs(crs)
    x0 = transform.c + width * transform.a  # the tile's east edge
    g = p.geometry.iloc[0]
    shifted = gpd.GeoSeries([g], crs=crs).translate(xoff=x0 - (g.bounds[0] + g.bounds[2]) / 2).iloc[0]
    reg.loc[reg["plot_id"] == "P005", "geometry"] = gpd.GeoSeries([shifted], crs=crs).to_crs(reg.crs).values
    reg.to_file(tmp_path / "plots.geojson", driver="GeoJSON")
    _, limits, plots = _run(_config(tmp_path, inputs={"plots": tmp_path / "plots.geojson"}))
    seen, total = _centres(shifted, transform, width, height, pad=200)
    assert 0 < seen < total
    r = plots.loc["P005"]
    assert r["n_pixels_grid"] == total and r["imaged_fraction"] == pytest.approx(seen / total)
    assert "PARTIAL_IMAGERY_COVERAGE" in list(r["flags"])
    cut = next(x for x in _reasons(limits, "F02") if x["code"] == "FLAG_PARTIAL_IMAGERY_COVERAGE")
    assert cut["plot_id"] == "P005"
    assert limits.loc["F02", "status"] == "review"
    assert limits.loc["F02", "limit"] <= baseline[1].loc["F02", "limit"]


def test_a_polygon_made_60x_larger_is_not_lent_on_the_unseen_part(tmp_path, baseline):
    reg = _registry()
    i = reg.index[reg["plot_id"] == "P001"][0]
    utm = reg.estimate_utm_crs()
    g = reg.to_crs(utm).geometry.iloc[i]
    big = affinity.scale(g, xfact=math.sqrt(60), yfact=math.sqrt(60), origin="centroid")
    reg.loc[i, "geometry"] = gpd.GeoSeries([big], crs=utm).to_crs(reg.crs).values
    reg = reg.drop(columns="declared_area_ha")
    reg.to_file(tmp_path / "plots.geojson", driver="GeoJSON")
    _, limits, plots = _run(_config(tmp_path, inputs={"plots": tmp_path / "plots.geojson"}))
    r = plots.loc["P001"]
    assert r["area_ha"] > 50  # the whole polygon ...
    transform, width, height, crs = _tile_grid()
    seen, total = _centres(gpd.GeoSeries([big], crs=utm).to_crs(crs).iloc[0], transform, width, height, pad=400)
    assert r["imaged_fraction"] == pytest.approx(seen / total) and seen / total < POLICY.min_imaged_fraction
    assert "PARTIAL_IMAGERY_COVERAGE" in list(r["flags"])
    # ... but the advance is on the share seen: advance_uncapped x price haircut x imaged fraction.
    h = 1 - POLICY.price_haircuts["winter_wheat"]
    want = min(r["advance_uncapped"] * h * r["imaged_fraction"],
               load_crops(ROOT / "configs" / "crops.yaml").crops["winter_wheat"].max_limit_per_ha * r["area_lent_ha"])
    assert r["advance"] == pytest.approx(want)
    assert r["area_lent_ha"] == pytest.approx(r["area_used_ha"] * r["imaged_fraction"])
    assert limits.loc["F01", "limit"] < 150_000 and limits.loc["F01", "status"] == "review"


# --- tenure and rent ----------------------------------------------------------------------------------

def test_a_registry_without_tenure_establishes_no_right_to_farm(tmp_path):
    reg = _registry().drop(columns="tenure")
    reg.to_file(tmp_path / "plots.geojson", driver="GeoJSON")
    _, limits, plots = _run(_config(tmp_path, inputs={"plots": tmp_path / "plots.geojson"}))
    # P008 (F03) and P010 (F05) have no contract: tenure unknown, never "owned".
    assert plots.loc["P008", "lease_code"] == "TENURE_UNKNOWN" and plots.loc["P010", "lease_code"] == "TENURE_UNKNOWN"
    assert plots.loc["P004", "lease_code"] == "LEASE_EXPIRED"  # C002 names it: leased, and expired
    assert plots.loc["P007", "lease_code"] == "LEASE_LESSEE_MISMATCH"  # C004 leases it to F03
    for f in ("F03", "F05"):
        assert limits.loc[f, "limit"] == 0 and limits.loc[f, "status"] == "review", f
    # Rent is still charged: F03 leases P007 under C004 for the whole season.
    rent = {(x["code"], x["plot_id"]): x["amount"] for x in _reasons(limits, "F03")}
    assert rent[("RENT_DUE", "P007")] == pytest.approx(-1102.9)


def test_rent_is_charged_on_every_contract_the_farmer_leases(baseline):
    _, limits, plots = baseline
    contracts = pd.read_csv(REG / "contracts.csv")
    s0, s1 = pd.Timestamp("2020-11-01"), pd.Timestamp("2021-10-31")
    c = contracts[(contracts["status"] == "active")]
    days = (pd.to_datetime(c["end_date"]).clip(upper=s1) - pd.to_datetime(c["start_date"]).clip(lower=s0)).dt.days + 1
    want = {(lessee, cid): round(rent * d / 365, 2) for lessee, cid, rent, d in
            zip(c["lessee_id"], c["contract_id"], c["annual_rent"], days) if d > 0}
    got = {(f, x["detail"].removeprefix("contract ")): -x["amount"]
           for f in limits.index for x in _reasons(limits, f) if x["code"] == "RENT_DUE"}
    assert got == pytest.approx(want)
    # The cases the old rule missed: F03 leases P007 (registered to F05); P012 is disputed by C006 (F06) and C007 (F05).
    assert got[("F03", "C004")] == pytest.approx(1102.9)
    assert got[("F06", "C006")] == pytest.approx(846.0) and got[("F05", "C007")] == pytest.approx(900.0)
    for f in limits.index:
        assert limits.loc[f, "rent_due"] == pytest.approx(sum(v for (g, _), v in got.items() if g == f))


def test_the_rent_of_a_cloudy_or_bare_leased_plot_is_still_deducted(tmp_path, baseline):
    """F02: P003 owned, P005 leased under C003. Making P005 unmeasurable or bare must not raise F02's limit."""
    res, limits, _ = baseline
    series = pd.read_parquet(res.path / "plot_timeseries.parquet")
    series = series.drop(columns=[c for c in ("ndvi_smooth", "is_outlier") if c in series.columns])
    crops = load_crops(ROOT / "configs" / "crops.yaml")
    plots = plotmod.validate_plots(plots_io.read_plots(REG / "plots.geojson"), crops, area_tolerance=POLICY.area_tolerance)

    def f02(s: pd.DataFrame) -> pd.Series:
        ev = Evidence(series=s, plots=plots, crops=crops, policy=POLICY, stage="harvest", as_of=pd.Timestamp("2021-10-31").date(),
                      season_start=pd.Timestamp("2020-11-01").date(), season_end=pd.Timestamp("2021-10-31").date(),
                      contracts=tables.read_contracts(REG / "contracts.csv"),
                      weather=weather_io.monthly_cells(tables.read_weather_monthly(REG / "weather_monthly.csv")),
                      debt=tables.read_debt(REG / "debt.csv"))
        return decide(ev).limits.set_index("farmer_id").loc["F02"]

    same = f02(series)
    assert same["limit"] == limits.loc["F02", "limit"]  # decide is what run_seasonal ran
    on = series["plot_id"] == "P005"
    cloudy = f02(series.assign(valid_fraction=np.where(on, 0.1, series["valid_fraction"])))
    assert "PLOT_EXCLUDED_NOT_ENOUGH_CLEAR_OBSERVATIONS" in cloudy["reason_codes"]
    peak = series.loc[on, "mean"].max()
    bare = {p: f02(series.assign(mean=np.where(on, series["mean"] * p / peak, series["mean"]))) for p in (0.39, 0.41)}
    assert "PLOT_EXCLUDED_NO_CROP_SIGNAL" in bare[0.39]["reason_codes"]
    for r in (cloudy, bare[0.39], bare[0.41]):
        assert -1072.5 * 365 / 365 == pytest.approx(next(x["amount"] for x in r["reasons"] if x["code"] == "RENT_DUE"))
        assert r["limit"] <= same["limit"]
    assert bare[0.39]["limit"] <= bare[0.41]["limit"]


# --- debt and the previous limit ---------------------------------------------------------------------

def _previous(tmp: Path, rows: list[dict], name: str = "previous.parquet") -> Path:
    path = tmp / name
    df = pd.DataFrame(rows)
    df.to_parquet(path) if name.endswith(".parquet") else df.to_csv(path, index=False)
    return path


def test_new_debt_is_deducted_at_once_not_damped(tmp_path):
    prev = _previous(tmp_path, [{"farmer_id": "F04", "limit": 3000.0}], "previous.csv")
    _, limits, _ = _run(_config(tmp_path, inputs={"previous_limits": prev}))
    assert limits.loc["F04", "existing_debt"] == 60_000 and limits.loc["F04", "limit"] == 0
    assert limits.loc["F04", "change_reason"].startswith("DECREASE")
    assert "CHANGE_DECREASE_DAMPED" not in limits.loc["F04", "reason_codes"]


def test_a_previous_limit_without_validity_or_evidence_is_not_held(tmp_path, baseline):
    # A CSV with only farmer_id, limit: no valid_until, so nothing may be held above today's evidence.
    prev = _previous(tmp_path, [{"farmer_id": "F01", "limit": 5000.0}], "previous.csv")
    _, limits, _ = _run(_config(tmp_path, inputs={"previous_limits": prev}))
    assert limits.loc["F01", "limit"] == baseline[1].loc["F01", "limit"]
    assert limits.loc["F01", "status"] != "approved" or limits.loc["F01", "limit"] == baseline[1].loc["F01", "limit"]
    # With a valid previous limit the fall is damped, but the farmer goes to review and the hold is at
    # most the previous revenue minus today's obligations.
    rent = 129.5 * 365 / 365
    prev = _previous(tmp_path, [{"farmer_id": "F01", "limit": 5000.0, "existing_debt": 1200.0, "rent_due": rent,
                                 "valid_until": pd.Timestamp("2021-12-31")}])
    _, limits, _ = _run(_config(tmp_path, inputs={"previous_limits": prev}), "valid")
    capacity = 5000 + 1200 + rent  # what the previous run's revenue supported
    assert limits.loc["F01", "limit"] == math.floor(min(5000 * 0.7, capacity - 1200 - rent) / 100) * 100 == 3500
    assert limits.loc["F01", "status"] == "review" and limits.loc["F01", "decided_by"] == "CHANGE_DECREASE_DAMPED"


def test_debt_jump_without_previous_debt_is_severe(tmp_path, baseline):
    debt = pd.read_csv(REG / "debt.csv")
    debt.loc[debt["farmer_id"] == "F01", "outstanding"] = 50_000.0
    debt.to_csv(tmp_path / "debt.csv", index=False)
    prev = _previous(tmp_path, [{"farmer_id": "F01", "limit": 3000.0, "valid_until": pd.Timestamp("2021-12-31")}])
    _, limits, _ = _run(_config(tmp_path, inputs={"previous_limits": prev, "debt": tmp_path / "debt.csv"}))
    assert limits.loc["F01", "limit"] == 0
    assert limits.loc["F01", "change_reason"] == "DECREASE_SEVERE:EXISTING_DEBT"
    # The previous file knew no debt and no rent: both count as increases.
    assert list(limits.loc["F01", "severe_events"]) == ["EXISTING_DEBT_INCREASED", "RENT_DUE_INCREASED"]


def test_the_change_reason_names_the_reason_that_moved_most(tmp_path, baseline):
    res, before, _ = baseline
    debt = pd.read_csv(REG / "debt.csv")
    debt.loc[debt["farmer_id"] == "F03", "outstanding"] = 1400.0  # +500
    debt.to_csv(tmp_path / "debt.csv", index=False)
    _, limits, _ = _run(_config(tmp_path, inputs={"previous_limits": res.path / "limits.parquet",
                                                  "debt": tmp_path / "debt.csv"}))
    assert limits.loc["F03", "limit"] == before.loc["F03", "limit"] - 500
    assert limits.loc["F03", "change_reason"] == "DECREASE_SEVERE:EXISTING_DEBT"
    assert limits.loc["F02", "change_reason"] == "UNCHANGED"


def test_every_plot_cloudy_is_review_with_nothing_held(tmp_path):
    prev = _previous(tmp_path, [{"farmer_id": "M01", "limit": 20_000.0, "valid_until": pd.Timestamp("2023-12-31")}])
    res, limits, plots = _run(_config(tmp_path, MOL, inputs={"previous_limits": prev}))
    assert limits.loc["M01", "limit"] == 0 and limits.loc["M01", "n_plots_eligible"] == 0
    assert limits.loc["M01", "status"] == "review" and limits.loc["M01", "decided_by"] == "NO_PLEDGEABLE_EVIDENCE"
    assert all("NOT_ENOUGH_CLEAR_OBSERVATIONS" in list(f) for f in plots["flags"])
    # Mol has no debt file: never a silent zero.
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert any(w.startswith("no debt file") for w in manifest["warnings"])
    assert "DEBT_UNKNOWN" in limits.loc["M02", "reason_codes"] and limits.loc["M02", "status"] == "review"


def test_a_clamp_of_a_held_limit_has_its_reason(tmp_path):
    prev = _previous(tmp_path, [{"farmer_id": "F01", "limit": 250_000.0, "existing_debt": 1200.0, "rent_due": 129.5,
                                 "valid_until": pd.Timestamp("2021-12-31")}])
    _, limits, _ = _run(_config(tmp_path, inputs={"previous_limits": prev}))
    r = limits.loc["F01"]
    assert r["limit"] == POLICY.max_limit_per_farmer and "FARMER_CAP" in r["reason_codes"]
    assert sum(x["amount"] for x in r["reasons"]) == pytest.approx(r["limit"])


def test_an_increase_cap_never_becomes_a_decline(tmp_path, baseline):
    text = (ROOT / "configs" / "policy.yaml").read_text()
    text = text.replace("max_increase_absolute: 5000", "max_increase_absolute: 200").replace(
        "max_increase_relative: 0.25", "max_increase_relative: 0.0")
    (tmp_path / "policy.yaml").write_text(text)
    prev = _previous(tmp_path, [{"farmer_id": "F03", "limit": 100.0}], "previous.csv")
    _, limits, _ = _run(_config(tmp_path, inputs={"previous_limits": prev}, policy=tmp_path / "policy.yaml"))
    assert baseline[1].loc["F03", "limit"] >= POLICY.min_limit  # the evidence supports a line
    assert limits.loc["F03", "limit"] == 300 and limits.loc["F03", "status"] != "declined"
    assert limits.loc["F03", "change_reason"].startswith("INCREASE_CAPPED")


# --- identity and time ---------------------------------------------------------------------------------

def test_policy_and_crops_versions_carry_the_file_hash(tmp_path, baseline):
    text = (ROOT / "configs" / "policy.yaml").read_text().replace("advance_rate: 0.5 ", "advance_rate: 0.45 ")
    (tmp_path / "policy.yaml").write_text(text)
    _, limits, _ = _run(_config(tmp_path, policy=tmp_path / "policy.yaml"))
    sha = hashlib.sha256(text.encode()).hexdigest()[:8]
    assert set(limits["policy_version"]) == {f"policy-2026.12.1+{sha}"}
    assert set(baseline[1]["policy_version"]) != set(limits["policy_version"])
    crops_sha = hashlib.sha256((ROOT / "configs" / "crops.yaml").read_bytes()).hexdigest()[:8]
    assert limits["model_version"].iloc[0].endswith(f"+{crops_sha}")


@pytest.mark.parametrize("as_of", ["2030-01-01", "2020-10-31"])
def test_as_of_outside_the_season_is_a_config_error(tmp_path, as_of):
    out = CliRunner().invoke(main, ["run", str(_config(tmp_path, run={"as_of": as_of}))])
    assert out.exit_code == 3
    assert f"run.as_of {as_of} is outside the season 2020-11-01 .. 2021-10-31" in out.output


def test_planting_runs_in_winter_and_a_harvest_run_before_harvest_warns(tmp_path):
    for as_of in ("2020-11-30", "2021-03-31"):
        out = CliRunner().invoke(main, ["run", str(_config(tmp_path, run={"as_of": as_of, "stage": "planting"})),
                                        "--run-id", f"p{as_of}"])
        assert out.exit_code == 0, out.output
    res, _, _ = _run(_config(tmp_path, run={"as_of": "2021-05-31", "stage": "harvest"}), "early")
    warnings = json.loads((res.path / "manifest.json").read_text())["warnings"]
    assert any(w.startswith("stage harvest at 2021-05-31: before the first harvest") for w in warnings)


def _stage(day: pd.Timestamp) -> str:
    return "planting" if day < pd.Timestamp("2021-04-01") else "mid_season" if day < pd.Timestamp("2021-08-01") else "harvest"


def test_every_as_of_through_the_season_gives_every_farmer_a_limit(tmp_path):
    farmers = sorted(set(_registry()["farmer_id"]))
    days = pd.date_range("2020-11-01", "2021-10-31", freq="14D")
    seen = {}
    for day in days:
        res, limits, _ = _run(_config(tmp_path, run={"as_of": f"{day:%Y-%m-%d}", "stage": _stage(day)}), f"{day:%Y%m%d}")
        assert sorted(limits.index) == farmers, day
        assert limits["limit"].notna().all() and (limits["limit"] >= 0).all()
        seen[f"{day:%Y-%m-%d}"] = limits["limit"].to_dict()
    assert len(seen) == len(days) == 27


# --- weather evidence ------------------------------------------------------------------------------------

def _weather(tmp: Path, **change) -> Path:
    w = pd.read_csv(REG / "weather_monthly.csv")
    if "rain" in change:
        w["precip_mm"] = w["precip_mm"] * change["rain"]
    if "lon" in change:
        w["lon"], w["lat"] = change["lon"], change["lat"]
    if change.get("missing"):  # another year's table: every month of this season is missing
        w["month"] = (pd.to_datetime(w["month"]) - pd.DateOffset(years=10)).dt.strftime("%Y-%m-%d")
    path = tmp / f"weather-{len(list(tmp.glob('weather-*.csv')))}.csv"
    w.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("rain, shock", [(0.1, "WEATHER_DROUGHT"), (4.0, "WEATHER_FLOOD")])
def test_monthly_rain_shocks_are_seen(tmp_path, baseline, rain, shock):
    _, limits, plots = _run(_config(tmp_path, inputs={"weather": _weather(tmp_path, rain=rain)}))
    assert all(shock in list(f) for f in plots["flags"])
    base = baseline[1]
    assert (limits["limit"] <= base["limit"]).all()
    assert (limits["status"] != "approved").all()


def test_a_far_and_empty_weather_source_is_no_evidence(tmp_path, baseline):
    # Belgium to the other side of the Atlantic (Boston): thousands of km, every month missing.
    path = _weather(tmp_path, lon=-71.06, lat=42.36, missing=True)
    _, limits, plots = _run(_config(tmp_path, inputs={"weather": path}))
    assert (plots["weather_distance_km"] > 5000).all()
    shocks = sorted(POLICY.weather.shocks)
    charge = float(np.prod([POLICY.multipliers.get(s, 1.0) for s in shocks]))
    for pid, r in plots.iterrows():
        assert {"WEATHER_SOURCE_FAR", "WEATHER_RULES_NOT_EVALUATED"} <= set(r["flags"]), pid
        assert sorted(r["weather_unevaluated"]) == shocks
    f01 = _reasons(limits, "F01")
    cut = next(x for x in f01 if x["code"] == "FLAG_WEATHER_RULES_NOT_EVALUATED" and x["plot_id"] == "P001")
    p = plots.loc["P001"]
    assert cut["amount"] == pytest.approx(-p["advance_uncapped"] * (1 - POLICY.price_haircuts["winter_wheat"]) * (1 - charge))
    assert (limits["limit"] <= baseline[1]["limit"]).all() and (limits["status"] != "approved").all()


@pytest.mark.parametrize("edit, message", [
    (("  potato: 0.3\n", "  potato: 1.5\n"), "price_haircuts.potato = 1.5 must be within [0, 1)"),
    (("  file_missing: review ", "  file_missing: ignore "), "debt.file_missing"),
])
def test_bad_policy_values_are_named(tmp_path, edit, message):
    text = (ROOT / "configs" / "policy.yaml").read_text()
    assert edit[0] in text
    (tmp_path / "policy.yaml").write_text(text.replace(*edit))
    out = CliRunner().invoke(main, ["run", str(_config(tmp_path, policy=tmp_path / "policy.yaml"))])
    assert out.exit_code == 3
    assert str(tmp_path / "policy.yaml") in out.output and message in out.output
