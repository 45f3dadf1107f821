"""Credit policy: expected revenue per plot -> limit per farmer, with ordered reason codes.

    pledgeable revenue = area x yield quantile (policy.yield_quantile, P10 by default) x price
    advance            = advance_rate x pledgeable revenue x haircuts, capped per ha (of the area seen) by crop
    haircuts           = price haircut of the crop x flag multipliers x imaged fraction (partial coverage)
                         x the multipliers of every weather shock that could not be evaluated
    limit              = sum(advances) - rent due on every contract the farmer leases - existing debt,
                         capped per farmer, floored at 0, moved from the previous limit only as far as
                         the change rules allow, rounded down; below min_limit -> declined

The conservatism contract (DESIGN.md, "What a limit means" in the README): less evidence, less
coverage or more obligations never raise a limit. Every haircut is in [0, 1]; an unknown (a shock
not evaluated, tenure not given, debt not known) costs at least what the worst known value would.

Plots that cannot be pledged (no established right to farm; with imagery evidence, too few clear
dates, no crop signal, no pixel seen) leave the revenue base and carry a reason code. Every reason
carries the signed amount it moved the limit; the amounts add up to the limit, and reasons are
ordered by size.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from agrisat.changes import NOT_DRIVERS, MISSING_EVIDENCE_CODES, apply_change_rules_all
from agrisat.config import CropTable, Policy
from agrisat.growth import EXCLUDING_GROWTH_FLAGS
from agrisat.land import EXCLUDING_LEASE_CODES, LEASE_DISPUTE_CODES
from agrisat.reasons import REASON_TEXT

EXCLUDING_CODES = tuple(EXCLUDING_LEASE_CODES) + tuple(EXCLUDING_GROWTH_FLAGS)
# Before the crop shows (prior evidence) imagery sufficiency cannot be asked for, but the plot must
# still be seen at all: otherwise a plot off the imagery would lend more than one half on it.
COVERAGE_CODES = ("NO_IMAGERY_COVERAGE", "PLOT_TOO_SMALL")
# Flags that keep a plot in the base but send the decision to a loan officer.
REVIEW_FLAGS = ("PEAK_OUTSIDE_CROP_CALENDAR", "AREA_MISMATCH", "CROP_MISMATCH", "GROWTH_ANOMALY_LOW",
                "GAP_TOO_LONG", "WEATHER_DROUGHT", "WEATHER_FLOOD", "WEATHER_HEAT", "WEATHER_FROST",
                "WEATHER_DATA_GAP", "WEATHER_SOURCE_FAR", "WEATHER_RULES_NOT_EVALUATED", "PARTIAL_IMAGERY_COVERAGE")


def excluding_codes(policy: Policy) -> tuple[str, ...]:
    """Flags that take a plot out of the base."""
    return tuple(EXCLUDING_LEASE_CODES) + COVERAGE_CODES if policy.evidence == "prior" else EXCLUDING_CODES


def plot_revenue(plots: pd.DataFrame, crops: CropTable, policy: Policy) -> pd.DataFrame:
    """Add revenue, eligibility, haircut and advance columns to per-plot results.

    Needs ``plot_id, declared_crop, area_ha, flags, yield_p10/p50/p90`` and optionally
    ``declared_area_ha``, ``imaged_fraction`` and ``weather_unevaluated`` (shock codes whose rules
    could not be evaluated). ``flags`` holds every plot flag: validation, growth, weather and lease.
    The smaller of declared and measured area is used.
    """
    df = plots.copy()
    declared = pd.to_numeric(df.get("declared_area_ha", df["area_ha"]), errors="coerce")
    df["area_used_ha"] = np.fmin(df["area_ha"].to_numpy(float), declared.to_numpy(float))
    crop = df["declared_crop"].astype(str)
    price = crop.map(lambda c: crops.get(c).price_per_t).astype(float)
    per_ha_cap = crop.map(lambda c: crops.get(c).max_limit_per_ha).astype(float)
    df["price_per_t"] = price
    df["expected_revenue"] = df["area_used_ha"] * df["yield_p50"] * price
    df["pledgeable_revenue"] = df["area_used_ha"] * df[f"yield_{policy.yield_quantile}"] * price
    excl = excluding_codes(policy)
    df["exclusion"] = [next((c for c in flags if c in excl), None) for flags in df["flags"]]
    df["eligible"] = df["exclusion"].isna()
    df["advance_uncapped"] = policy.advance_rate * df["pledgeable_revenue"].fillna(0.0)
    imaged = df["imaged_fraction"] if "imaged_fraction" in df.columns else pd.Series(1.0, index=df.index)
    unevaluated = df["weather_unevaluated"] if "weather_unevaluated" in df.columns else pd.Series([()] * len(df), index=df.index)
    df["haircuts"] = [_haircuts(c, flags, f, list(u) if _is_list(u) else [], policy)
                      for c, flags, f, u in zip(crop, df["flags"], imaged, unevaluated)]
    df["multiplier"] = [math.prod(h["multiplier"] for h in hs) for hs in df["haircuts"]]
    # The per-ha cap applies to the area actually seen.
    seen = np.where([("PARTIAL_IMAGERY_COVERAGE" in f) for f in df["flags"]], imaged.fillna(0.0).clip(0, 1), 1.0)
    df["area_lent_ha"] = df["area_used_ha"] * seen
    df["advance"] = np.minimum(df["advance_uncapped"] * df["multiplier"], per_ha_cap * df["area_lent_ha"])
    return df


def _is_list(v: object) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def _haircuts(crop: str, flags: list[str], imaged: float, unevaluated: list[str],
              policy: Policy) -> list[dict]:
    """``{code, multiplier in [0, 1], detail}`` per haircut of one plot, in a fixed order."""
    out = []
    h = policy.price_haircuts.get(crop, 0.0)
    if h > 0:
        out.append(("PRICE_HAIRCUT", 1.0 - h, f"{crop} price risk -{h:.0%}"))
    for flag in sorted(set(flags)):
        if flag == "PARTIAL_IMAGERY_COVERAGE":
            f = float(imaged) if np.isfinite(imaged) else 0.0
            out.append((f"FLAG_{flag}", min(max(f, 0.0), 1.0), f"lent on the {f:.0%} of the plot seen"))
        elif flag == "WEATHER_RULES_NOT_EVALUATED":
            # A shock we could not rule out is charged as if it had happened.
            m = math.prod(policy.multipliers.get(s, 1.0) for s in sorted(unevaluated))
            out.append((f"FLAG_{flag}", m, "charged as " + ", ".join(sorted(unevaluated)) if unevaluated else ""))
        elif (m := policy.multipliers.get(flag)) is not None and m < 1.0:
            out.append((f"FLAG_{flag}", m, f"x{m}"))
    return [{"code": c, "multiplier": float(m), "detail": d} for c, m, d in out if m < 1.0]


# The order in which the per-farmer rule adds its reasons; with the sort key of ``reasons.ordered``
# it fixes the order of tied reasons, as a stable sort of the per-farmer lists would.
_STAGES = ("ADVANCE", "EXCLUDED", "HAIRCUT", "CROP_CAP", "RENT", "DEBT", "DEBT_UNKNOWN", "CAP", "FLOOR", "CHANGE",
           "CAP_AFTER_CHANGE", "ROUNDING", "BELOW_MINIMUM", "HOLD", "DEBT_HOLD", "PRIOR", "NO_EVIDENCE")


class _Reasons:
    """Every farmer's reasons as columns, added rule by rule (one array operation per rule)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, stage: str, f: np.ndarray, code, amount, plot=None, detail="") -> None:
        f = np.asarray(f, dtype=np.int64)
        if len(f):
            self.parts.append(pd.DataFrame({
                "f": f, "rank": _STAGES.index(stage) * 10**9 + np.arange(len(f)), "code": code,
                "amount": np.asarray(amount, dtype=float), "plot_id": plot, "detail": detail}))

    def frame(self) -> pd.DataFrame:
        cols = {"f": np.int64, "rank": np.int64, "code": object, "amount": float, "plot_id": object, "detail": object}
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})
        return pd.concat(self.parts, ignore_index=True)


def _fsum(f: np.ndarray, values, n: int) -> np.ndarray:
    """Per farmer, the sum of ``values`` in row order (bincount adds sequentially, as a loop would)."""
    return np.bincount(f, weights=np.asarray(values, dtype=float), minlength=n) if len(f) else np.zeros(n)


def farmer_limits(
    plot_rev: pd.DataFrame,
    policy: Policy,
    as_of: dt.date,
    *,
    rent: pd.DataFrame | None = None,
    debt: pd.DataFrame | None = None,
    previous: pd.DataFrame | None = None,
    holds: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per farmer (sorted by id): limit, status, decided_by, ordered reasons, risk score.

    ``rent``: ``land.rent_obligations`` (one row per contract the farmer leases). ``debt``: the debt
    file's rows, or None when the run has no debt file (``policy.debt`` says what an unknown debt
    means). ``previous`` (optional) holds the farmer's last limits: ``farmer_id, limit`` and, when
    known, ``existing_debt, rent_due, valid_until, reasons`` (a previous ``limits.parquet`` has them).
    ``holds`` maps farmers whose records could not be trusted (a quarantined debt row) to why: their
    limit is 0, in review.

    Columnar: every rule is one array operation over all farmers (the per-farmer loop it replaced is
    kept as the oracle in tests/oracle_credit.py); Python touches single items only to format texts.
    """
    holds = holds or {}
    rules = policy.change_rules
    fid_plot = plot_rev["farmer_id"].astype(str).to_numpy()
    farmers = np.unique(fid_plot)  # sorted
    n = len(farmers)
    f = np.searchsorted(farmers, fid_plot)
    pid = plot_rev["plot_id"].astype(str).to_numpy()
    ok = plot_rev["eligible"].to_numpy(bool)
    adv_u = plot_rev["advance_uncapped"].to_numpy(float)
    excl = plot_rev["exclusion"].to_numpy(object)
    R = _Reasons()

    # Gross advance over every plot with an estimate; exclusions, haircuts and caps then subtract.
    gross = _fsum(f, adv_u, n)
    pledge_all = _fsum(f, np.nan_to_num(plot_rev["pledgeable_revenue"].to_numpy(float)), n)
    n_plots = np.bincount(f, minlength=n)
    R.add("ADVANCE", np.arange(n), "ADVANCE_ON_REVENUE", gross, None,
          [f"{policy.advance_rate:.0%} of {p:.0f} ({policy.yield_quantile} yield) on {k} plot(s)"
           for p, k in zip(pledge_all, n_plots)])
    out_ = ~ok
    lost = -adv_u[out_]
    lease_detail = (plot_rev["lease_detail"].to_numpy(object)[out_] if "lease_detail" in plot_rev.columns
                    else np.full(out_.sum(), "", dtype=object))
    is_lease = np.isin(excl[out_].astype(str), EXCLUDING_LEASE_CODES)
    det = [(str(d or "") if lc else "") or ("" if x else "no yield estimate") for d, lc, x in zip(lease_detail, is_lease, lost)]
    R.add("EXCLUDED", f[out_], [f"PLOT_EXCLUDED_{e}" for e in excl[out_]], lost, pid[out_], det)

    # Haircuts of eligible plots, applied in order: each takes its share of what the earlier left.
    hc = plot_rev.loc[ok, ["haircuts"]].assign(_f=f[ok], _p=pid[ok], _a=adv_u[ok]).explode("haircuts")
    hc = hc[hc["haircuts"].notna()]
    cut_amt = np.zeros(len(hc))
    if len(hc):
        m = np.array([h["multiplier"] for h in hc["haircuts"]], dtype=float)
        row = hc.index.to_numpy()
        j = hc.groupby(level=0, sort=False).cumcount().to_numpy()
        remaining = pd.Series(hc["_a"].to_numpy(), index=row).groupby(level=0).first()
        for k in range(int(j.max()) + 1):  # over a plot's haircuts (a handful), not over plots
            at = j == k
            rem = remaining.loc[row[at]].to_numpy()
            cut_amt[at] = -rem * (1.0 - m[at])
            remaining.loc[row[at]] = rem * m[at]
        R.add("HAIRCUT", hc["_f"].to_numpy(), [h["code"] for h in hc["haircuts"]], cut_amt, hc["_p"].to_numpy(),
              [h["detail"] for h in hc["haircuts"]])
    advance = _fsum(f[ok], plot_rev["advance"].to_numpy(float)[ok], n)
    after_cuts = _fsum(f[ok], adv_u[ok], n) + (_fsum(hc["_f"].to_numpy(), cut_amt, n) if len(hc) else 0.0)
    capped = advance < after_cuts - 1e-9
    R.add("CROP_CAP", np.flatnonzero(capped), "CROP_CAP_PER_HA", (advance - after_cuts)[capped])

    # Obligations: rent on every contract the farmer leases, and debt, in full and at once.
    rent_amt = np.zeros(n)
    if rent is not None and len(rent):
        at = pd.Index(farmers).get_indexer(rent["farmer_id"].astype(str))  # hash lookups, not a sort of strings
        known = at >= 0
        rr = rent[known]
        fr = at[known]
        R.add("RENT", fr, "RENT_DUE", -rr["rent_due"].to_numpy(float), rr["plot_id"].astype(str).to_numpy(),
              [f"contract {c}" for c in rr["contract_id"]])
        rent_amt = _fsum(fr, rr["rent_due"].to_numpy(float), n)
    if debt is not None:
        owed = debt.assign(_f=debt["farmer_id"].astype(str)).drop_duplicates("_f", keep="last").set_index("_f")["outstanding"]
        debt_known = pd.Index(farmers).isin(owed.index)
        debt_amt = owed.reindex(farmers).fillna(0.0).to_numpy(float)
    else:
        debt_known, debt_amt = np.zeros(n, bool), np.zeros(n)
    has_debt = debt_amt > 0
    R.add("DEBT", np.flatnonzero(has_debt), "EXISTING_DEBT", -debt_amt[has_debt])
    held = pd.Index(farmers).isin(list(holds))
    debt_rule = policy.debt.file_missing if debt is None else policy.debt.farmer_absent
    unknown_debt = ~debt_known & ~held
    why = "no debt file given" if debt is None else "farmer not in the debt file"
    R.add("DEBT_UNKNOWN", np.flatnonzero(unknown_debt), "DEBT_UNKNOWN", 0.0, None, f"{why}; policy: {debt_rule}")

    limit = advance - rent_amt - debt_amt
    limit = _cap_all(limit, policy, R, "CAP")
    neg = limit < 0
    R.add("FLOOR", np.flatnonzero(neg), "FLOOR_AT_ZERO", -limit[neg])
    limit = np.where(neg, 0.0, limit)

    # Change rules against the previous limit.
    prev = _previous_columns(previous, farmers)
    flags = plot_rev[["flags"]].assign(_f=f, _p=pid).explode("flags")
    flags = flags[flags["flags"].notna()].rename(columns={"flags": "flag"})
    severe_codes = set(rules.severe_codes)
    sev = flags[flags["flag"].isin(severe_codes | set(MISSING_EVIDENCE_CODES))].drop_duplicates(["_f", "flag", "_p"])
    if prev["events"] is not None and len(prev["events"]):
        events = prev["events"].drop_duplicates()  # a previous reason may repeat: one event
        seen = sev.merge(events, on=["_f", "flag", "_p"], how="left", indicator=True)["_merge"] == "both"
        sev = sev[~seen.to_numpy()]
    sev = sev.drop_duplicates(["_f", "flag"]).sort_values(["_f", "flag"])
    severe_lists: list[list[str]] = [[] for _ in range(n)]
    for k, fl in zip(*_split(sev["_f"].to_numpy(), sev["flag"].to_numpy())):
        severe_lists[k] = list(fl)
    has_prev = ~np.isnan(prev["limit"])
    more_debt = has_prev & (debt_amt > np.nan_to_num(prev["existing_debt"])) & ("EXISTING_DEBT_INCREASED" in severe_codes)
    more_rent = has_prev & (rent_amt > np.nan_to_num(prev["rent_due"])) & ("RENT_DUE_INCREASED" in severe_codes)
    for k in np.flatnonzero(more_debt):
        severe_lists[k].append("EXISTING_DEBT_INCREASED")
    for k in np.flatnonzero(more_rent):
        severe_lists[k].append("RENT_DUE_INCREASED")
    severe_lists = [sorted(x) for x in severe_lists]
    any_severe = np.array([bool(x) for x in severe_lists])
    missing_any = np.bincount(flags["_f"].to_numpy()[flags["flag"].isin(MISSING_EVIDENCE_CODES).to_numpy()],
                              minlength=n) > 0
    n_ok = np.bincount(f[ok], minlength=n)
    complete = (n_ok > 0) & ~missing_any

    base = limit
    p_lim = prev["limit"]
    ch = apply_change_rules_all(base, p_lim, prev["existing_debt"], prev["rent_due"], prev["valid_until"],
                                obligations=debt_amt + rent_amt, any_severe=any_severe, complete=complete,
                                as_of=as_of, rules=rules)
    direction = ch.direction
    inc_capped, damped = direction == "INCREASE_CAPPED", direction == "DECREASE_DAMPED"
    R.add("CHANGE", np.flatnonzero(inc_capped), "CHANGE_INCREASE_CAPPED", (ch.limit - base)[inc_capped], None,
          [f"previous limit {x:.0f}" for x in p_lim[inc_capped]])
    R.add("CHANGE", np.flatnonzero(damped), "CHANGE_DECREASE_DAMPED", (ch.limit - base)[damped], None,
          [f"previous limit {x:.0f} valid until {pd.Timestamp(v):%Y-%m-%d}"
           for x, v in zip(p_lim[damped], prev["valid_until"][damped])])
    limit = ch.limit
    limit = _cap_all(limit, policy, R, "CAP_AFTER_CHANGE")

    rounded = np.floor(limit / policy.rounding) * policy.rounding
    down = rounded < limit
    R.add("ROUNDING", np.flatnonzero(down), "ROUNDING", (rounded - limit)[down])
    limit = rounded
    # The minimum is asked of what the evidence supports: an increase held back by the cap keeps
    # its capped value instead of becoming a decline.
    below = (limit > 0) & (limit < policy.min_limit) & ~((direction == "INCREASE_CAPPED") & (base >= policy.min_limit))
    R.add("BELOW_MINIMUM", np.flatnonzero(below), "BELOW_MINIMUM", -limit[below])
    limit = np.where(below, 0.0, limit)
    hold = held & (limit > 0)
    R.add("HOLD", np.flatnonzero(hold), "DEBT_RECORD_REJECTED", -limit[hold], None, [holds[x] for x in farmers[hold]])
    limit = np.where(hold, 0.0, limit)
    dhold = unknown_debt & (debt_rule == "hold") & (limit > 0)
    R.add("DEBT_HOLD", np.flatnonzero(dhold), "DEBT_UNKNOWN_HOLD", -limit[dhold])
    limit = np.where(dhold, 0.0, limit)
    if policy.evidence == "prior":
        R.add("PRIOR", np.arange(n), "PRIOR_YIELD_ESTIMATE", 0.0, None, f"relative sd {policy.prior_relative_sd}")
    ex_missing = out_ & np.isin(excl.astype(str), MISSING_EVIDENCE_CODES)
    no_evidence = (n_ok == 0) & (n_plots > 0) & (np.bincount(f[ex_missing], minlength=n) == n_plots)
    R.add("NO_EVIDENCE", np.flatnonzero(no_evidence), "NO_PLEDGEABLE_EVIDENCE", 0.0, None,
          [f"{k} plot(s), none could be measured" for k in n_plots[no_evidence]])
    reasons = R.frame()

    status, decided_by = _status_all(limit, reasons, f, excl, out_, flags, policy, direction, no_evidence, n)
    dunk = ~held & unknown_debt & (debt_rule in ("review", "hold")) & (status != "review")
    status = np.where(held | dunk, "review", status).astype(object)
    decided_by = np.where(held, "DEBT_RECORD_REJECTED", np.where(dunk, "DEBT_UNKNOWN", decided_by)).astype(object)
    same = has_prev & (limit == p_lim) & np.isin(direction, ["INCREASE", "DECREASE", "DECREASE_SEVERE"])
    direction = np.where(same, "UNCHANGED", direction).astype(object)  # rounding or the minimum brought it back
    driver = _drivers(reasons, prev, direction, has_prev, n)
    expected = np.where(n_ok > 0, _fsum(f[ok], np.nan_to_num(plot_rev["expected_revenue"].to_numpy(float)[ok]), n), np.nan)
    score = risk_score(limit, debt_amt, rent_amt, expected)

    codes, dicts = _ordered_lists(reasons, n)
    return pd.DataFrame({
        "farmer_id": farmers.astype(object),
        "limit": limit.astype(float),
        "currency": policy.currency,
        "status": status,
        "decided_by": decided_by,
        "reason_codes": codes,
        "reasons": dicts,
        "previous_limit": p_lim,
        "change_reason": [d + (f":{x}" if x else "") for d, x in zip(direction, driver)],
        "severe_events": [s if d == "DECREASE_SEVERE" else [] for s, d in zip(severe_lists, direction)],
        "expected_revenue": expected,
        "pledgeable_revenue": _fsum(f[ok], np.nan_to_num(plot_rev["pledgeable_revenue"].to_numpy(float)[ok]), n),
        "rent_due": rent_amt,
        "existing_debt": debt_amt,
        "debt_known": debt_known,
        "risk_score": score,
        "n_plots": n_plots.astype(int),
        "n_plots_eligible": n_ok.astype(int),
        "valid_from": pd.Timestamp(as_of),
        "valid_until": pd.Timestamp(as_of) + pd.Timedelta(days=policy.validity_days),
    })


def _cap_all(limit: np.ndarray, policy: Policy, R: _Reasons, stage: str) -> np.ndarray:
    """Clamp at the farmer cap, with a reason (so the reasons still add up to the limit)."""
    over = limit > policy.max_limit_per_farmer
    R.add(stage, np.flatnonzero(over), "FARMER_CAP", policy.max_limit_per_farmer - limit[over])
    return np.where(over, float(policy.max_limit_per_farmer), limit)


def _split(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows sorted by ``keys`` -> (the keys present, the values of each)."""
    if not len(keys):
        return np.zeros(0, int), []
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.split(values, starts[1:])


def _previous_columns(previous: pd.DataFrame | None, farmers: np.ndarray) -> dict:
    """The previous limits file as arrays over ``farmers`` (NaN / NaT where unknown) and, when the
    file has reasons, their (farmer, flag, plot) events and (farmer, code, plot, amount) rows."""
    n = len(farmers)
    out = {"limit": np.full(n, np.nan), "existing_debt": np.full(n, np.nan), "rent_due": np.full(n, np.nan),
           "valid_until": np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"), "events": None, "reasons": None}
    if previous is None or previous.empty:
        return out
    p = previous.assign(_f=previous["farmer_id"].astype(str)).set_index("_f")
    p = p[~p.index.duplicated(keep="last")].reindex(farmers)
    for col in ("limit", "existing_debt", "rent_due"):
        if col in p.columns:
            out[col] = pd.to_numeric(p[col], errors="coerce").to_numpy(float)
    if "valid_until" in p.columns:
        out["valid_until"] = pd.to_datetime(p["valid_until"], errors="coerce").to_numpy("datetime64[ns]")
    if "reasons" in p.columns:
        rows = [(k, str(r["code"]), str(r.get("plot_id") or ""), float(r["amount"]))
                for k, raw in enumerate(p["reasons"].to_numpy(object))
                if raw is not None and not isinstance(raw, (str, float)) and not pd.isna(out["limit"][k])
                for r in (dict(x) for x in raw)]
        r = pd.DataFrame(rows, columns=["_f", "code", "_p", "amount"])
        out["reasons"] = r
        flag = r["code"].str.replace(r"^(FLAG_|PLOT_EXCLUDED_)", "", regex=True)
        has = r["code"].str.match(r"^(FLAG_|PLOT_EXCLUDED_)")
        out["events"] = pd.DataFrame({"_f": r["_f"][has], "flag": flag[has], "_p": r["_p"][has]}).astype(
            {"_f": np.int64})
    return out


def _drivers(reasons: pd.DataFrame, prev: dict, direction: np.ndarray, has_prev: np.ndarray, n: int) -> list:
    """Per farmer, the reason whose amount moved most since the previous run, in the change's
    direction: with the previous reasons, amounts compared by (code, plot); without them, the largest
    reason of the change's sign. None without a previous limit or when unchanged."""
    out: list = [None] * n
    want = has_prev & (direction != "UNCHANGED")
    if not want.any():
        return out
    now = reasons[~reasons["code"].isin(NOT_DRIVERS)]
    now = pd.DataFrame({"_f": now["f"].to_numpy(), "code": now["code"].to_numpy(),
                        "_p": now["plot_id"].fillna("").astype(str).to_numpy(), "amount": now["amount"].to_numpy(),
                        "_o": now["rank"].to_numpy()})
    parts = [now.sort_values(["_f", "_o"], kind="stable")]
    if prev["reasons"] is not None and len(prev["reasons"]):
        pr = prev["reasons"][~prev["reasons"]["code"].isin(NOT_DRIVERS)]
        parts.append(pr.assign(amount=-pr["amount"], _o=np.iinfo(np.int64).max))
    d = pd.concat(parts, ignore_index=True)
    d = d[want[d["_f"].to_numpy()]]
    sign = np.where(np.char.startswith(direction.astype(str), "INCREASE"), 1.0, -1.0)
    # Sequential sums per (farmer, code, plot), in the per-farmer rule's order.
    d["cum"] = d.groupby(["_f", "code", "_p"], sort=False)["amount"].cumsum()
    tot = d.groupby(["_f", "code", "_p"], sort=False).tail(1)
    tot = tot.assign(move=sign[tot["_f"].to_numpy()] * tot["cum"].to_numpy())
    tot = tot[tot["move"] > 0].sort_values(["_f", "move", "code", "_p"], ascending=[True, False, True, True])
    best = tot.drop_duplicates("_f")
    for k, code in zip(best["_f"], best["code"]):
        out[int(k)] = code
    return out


def _status_all(limit, reasons, f, excl, out_, flags, policy, direction, no_evidence, n):
    """declined / review / approved per farmer, and the rule that decided it (``_status``'s order).

    ``declined`` only when the evidence supports less than the minimum. A farmer whose plots could
    not be measured, or whose right to farm is disputed, goes to review: more evidence may lend."""
    ex = pd.DataFrame({"_f": f[out_], "code": [f"PLOT_EXCLUDED_{e}" for e in excl[out_]], "raw": excl[out_].astype(str)})
    first_ex = ex.drop_duplicates("_f").set_index("_f")["code"].reindex(range(n)).to_numpy(object)
    miss = ex[ex["raw"].isin(MISSING_EVIDENCE_CODES)].drop_duplicates("_f").set_index("_f")["code"].reindex(range(n)).to_numpy(object)
    disp = ex[ex["raw"].isin(LEASE_DISPUTE_CODES)].drop_duplicates("_f").set_index("_f")["code"].reindex(range(n)).to_numpy(object)
    fl = flags.rename(columns={"flag": "code"})
    unseen = fl[fl["code"].isin(MISSING_EVIDENCE_CODES)].groupby("_f")["code"].min().reindex(range(n)).to_numpy(object)
    flagged = fl[fl["code"].isin(REVIEW_FLAGS)].groupby("_f")["code"].min().reindex(range(n)).to_numpy(object)
    zero_rule = reasons[reasons["code"].isin(["BELOW_MINIMUM", "FLOOR_AT_ZERO"])].sort_values(["f", "rank"])
    zero_rule = zero_rule.drop_duplicates("f").set_index("f")["code"].reindex(range(n)).to_numpy(object)
    has = lambda a: np.array([isinstance(x, str) for x in a], dtype=bool)  # noqa: E731
    h_ex, h_miss, h_disp, h_unseen, h_flag = has(first_ex), has(miss), has(disp), has(unseen), has(flagged)
    status = np.full(n, "approved", dtype=object)
    rule = np.full(n, "ADVANCE_ON_REVENUE", dtype=object)
    conds = [
        (no_evidence, "review", np.full(n, "NO_PLEDGEABLE_EVIDENCE", dtype=object)),
        (h_disp, "review", disp),
        ((limit <= 0) & (h_miss | h_unseen), "review", np.where(h_miss, miss, unseen)),
        (limit <= 0, "declined", np.where(has(zero_rule), zero_rule, "NO_PLEDGEABLE_REVENUE")),
        (direction == "DECREASE_DAMPED", "review", np.full(n, "CHANGE_DECREASE_DAMPED", dtype=object)),
        (policy.review_on_flags & (h_ex | h_flag), "review", np.where(h_ex, first_ex, flagged)),
    ]
    done = np.zeros(n, bool)
    for cond, st, why in conds:
        take = cond & ~done
        status[take], rule[take] = st, why[take]
        done |= take
    return status, rule


def _ordered_lists(reasons: pd.DataFrame, n: int) -> tuple[list, list]:
    """Per farmer, reason codes and reason dicts ordered as ``reasons.ordered`` orders them."""
    r = reasons.assign(_abs=-reasons["amount"].abs(), _p=reasons["plot_id"].fillna("").astype(str))
    r = r.sort_values(["f", "_abs", "code", "_p", "rank"], kind="stable")
    code, plot, detail = (r[c].to_numpy(object) for c in ("code", "plot_id", "detail"))  # plain objects iterate fast
    texts = [REASON_TEXT.get(c, (c, c)) for c in code]
    recs = [{"code": c, "amount": float(a), "plot_id": p if isinstance(p, str) else None, "detail": d,
             "text_en": t[0], "text_zh": t[1]}
            for c, a, p, d, t in zip(code, r["amount"].to_numpy(float), plot, detail, texts)]
    codes: list[list[str]] = [[] for _ in range(n)]
    dicts: list[list[dict]] = [[] for _ in range(n)]
    keys, groups = _split(r["f"].to_numpy(), np.arange(len(r)))
    for k, idx in zip(keys, groups):
        codes[k] = [recs[i]["code"] for i in idx]
        dicts[k] = [recs[i] for i in idx]
    return codes, dicts


def risk_score(limit: np.ndarray, debt: np.ndarray, rent: np.ndarray, expected_revenue: np.ndarray) -> np.ndarray:
    """Share of the expected (P50) harvest revenue committed if the line is fully drawn, in [0, 1],
    per farmer.

    Higher is riskier; 1 when nothing is expected. Transparent on purpose: the backtest reports how
    well it ranks defaults (KS, AUC) before anyone trusts a fitted score instead.
    """
    expected_revenue = np.asarray(expected_revenue, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip((limit + debt + rent) / expected_revenue, 0.0, 1.0)
    return np.where(np.isfinite(expected_revenue) & (expected_revenue > 0), share, 1.0)
