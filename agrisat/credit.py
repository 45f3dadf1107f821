"""Credit policy: expected revenue per plot -> limit per farmer, with ordered reason codes.

    pledgeable revenue = area x yield quantile (policy.yield_quantile, P10 by default) x price
    advance            = advance_rate x pledgeable revenue, capped per hectare by crop
    limit              = sum(advances) - rent due - existing debt, capped per farmer,
                         floored at 0, rounded down; below min_limit -> declined

Plots that cannot be pledged (no usable lease, not enough clear imagery, no crop signal) leave the
revenue base and carry a reason code. Every reason carries the amount it moved the limit; reasons
are ordered by the size of that amount, so the first one explains most of the decision.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from agrisat.config import CropTable, Policy
from agrisat.growth import EXCLUDING_GROWTH_FLAGS
from agrisat.land import EXCLUDING_LEASE_CODES

# code: (English, Chinese) short texts a loan officer can read out.
REASON_TEXT: dict[str, tuple[str, str]] = {
    "ADVANCE_ON_REVENUE": ("Advance on expected crop revenue", "按预期作物收入授信"),
    "CROP_CAP_PER_HA": ("Capped at the per-hectare maximum for the crop", "受作物每公顷上限限制"),
    "RENT_DUE": ("Land rent due this season deducted", "扣除本季应付地租"),
    "EXISTING_DEBT": ("Existing debt deducted", "扣除现有负债"),
    "FARMER_CAP": ("Capped at the maximum limit per farmer", "受单户最高额度限制"),
    "FLOOR_AT_ZERO": ("Deductions exceed the advance; limit set to zero", "扣减超过授信额，额度为零"),
    "ROUNDING": ("Rounded down", "向下取整"),
    "BELOW_MINIMUM": ("Below the minimum limit; declined", "低于最低额度，拒绝"),
    "PLOT_EXCLUDED_LEASE_MISSING": ("Leased plot without a contract excluded", "无租赁合同的地块被排除"),
    "PLOT_EXCLUDED_LEASE_EXPIRED": ("Plot with an expired lease excluded", "租约已过期的地块被排除"),
    "PLOT_EXCLUDED_LEASE_LESSEE_MISMATCH": ("Plot leased to someone else excluded", "承租人非本农户的地块被排除"),
    "PLOT_EXCLUDED_NOT_ENOUGH_CLEAR_OBSERVATIONS": ("Plot without enough clear imagery excluded", "晴空影像不足的地块被排除"),
    "PLOT_EXCLUDED_NO_IMAGERY_COVERAGE": ("Plot outside the imagery excluded", "无影像覆盖的地块被排除"),
    "PLOT_EXCLUDED_PLOT_TOO_SMALL": ("Plot too small to measure excluded", "地块过小无法测量被排除"),
    "PLOT_EXCLUDED_NO_CROP_SIGNAL": ("Plot with no crop signal excluded", "无作物信号的地块被排除"),
}
EXCLUDING_CODES = tuple(EXCLUDING_LEASE_CODES) + tuple(EXCLUDING_GROWTH_FLAGS)
# Flags that keep a plot in the base but send the decision to a loan officer.
REVIEW_FLAGS = ("PEAK_OUTSIDE_CROP_CALENDAR", "AREA_MISMATCH")


@dataclass(frozen=True)
class Reason:
    code: str
    amount: float  # signed effect on the limit, in the policy currency
    plot_id: str | None = None
    detail: str = ""

    def as_dict(self) -> dict:
        en, zh = REASON_TEXT.get(self.code, (self.code, self.code))
        return {**asdict(self), "text_en": en, "text_zh": zh}


def plot_revenue(plots: pd.DataFrame, crops: CropTable, policy: Policy) -> pd.DataFrame:
    """Add revenue, eligibility and advance columns to per-plot results.

    Needs ``plot_id, declared_crop, area_ha, flags, yield_p10/p50/p90`` and optionally
    ``declared_area_ha``. ``flags`` holds every plot flag: validation, growth and lease codes. The smaller of declared and measured area is used.
    """
    df = plots.copy()
    declared = pd.to_numeric(df.get("declared_area_ha", df["area_ha"]), errors="coerce")
    df["area_used_ha"] = np.fmin(df["area_ha"].to_numpy(float), declared.to_numpy(float))
    price = df["declared_crop"].map(lambda c: crops.get(str(c)).price_per_t).astype(float)
    per_ha_cap = df["declared_crop"].map(lambda c: crops.get(str(c)).max_limit_per_ha).astype(float)
    df["price_per_t"] = price
    df["expected_revenue"] = df["area_used_ha"] * df["yield_p50"] * price
    df["pledgeable_revenue"] = df["area_used_ha"] * df[f"yield_{policy.yield_quantile}"] * price
    excl = [next((c for c in flags if c in EXCLUDING_CODES), None) for flags in df["flags"]]
    df["exclusion"] = excl
    df["eligible"] = [e is None for e in excl]
    raw = policy.advance_rate * df["pledgeable_revenue"].fillna(0.0)
    df["advance_uncapped"] = raw
    df["advance"] = np.minimum(raw, per_ha_cap * df["area_used_ha"])
    return df


def farmer_limits(
    plot_rev: pd.DataFrame,
    debt: pd.DataFrame | None,
    policy: Policy,
    as_of: dt.date,
) -> pd.DataFrame:
    """One row per farmer (sorted by id): limit, status, decided_by, ordered reasons."""
    owed = dict(zip(debt["farmer_id"], debt["outstanding"])) if debt is not None else {}
    rows = []
    for fid, fp in plot_rev.groupby("farmer_id", sort=True):
        reasons: list[Reason] = []
        ok = fp[fp["eligible"]]
        advance_uncapped = float(ok["advance_uncapped"].sum())
        advance = float(ok["advance"].sum())
        reasons.append(Reason("ADVANCE_ON_REVENUE", advance_uncapped,
                              detail=f"{policy.advance_rate:.0%} of {ok['pledgeable_revenue'].sum():.0f} "
                                     f"({policy.yield_quantile} yield) on {len(ok)} plot(s)"))
        if advance < advance_uncapped:
            reasons.append(Reason("CROP_CAP_PER_HA", advance - advance_uncapped))
        for r in fp[~fp["eligible"]].itertuples():
            lost = -float(r.advance) if np.isfinite(r.advance) else 0.0
            reasons.append(Reason(f"PLOT_EXCLUDED_{r.exclusion}", lost, plot_id=str(r.plot_id),
                                  detail="no yield estimate" if r.advance == 0 else ""))
        rent = float(fp.loc[fp["eligible"], "rent_due"].sum())
        if rent > 0:
            reasons.append(Reason("RENT_DUE", -rent))
        debt_amt = float(owed.get(fid, 0.0))
        if debt_amt > 0:
            reasons.append(Reason("EXISTING_DEBT", -debt_amt))
        limit = advance - rent - debt_amt
        if limit > policy.max_limit_per_farmer:
            reasons.append(Reason("FARMER_CAP", policy.max_limit_per_farmer - limit))
            limit = policy.max_limit_per_farmer
        if limit < 0:
            reasons.append(Reason("FLOOR_AT_ZERO", -limit))
            limit = 0.0
        rounded = math.floor(limit / policy.rounding) * policy.rounding
        if rounded < limit:
            reasons.append(Reason("ROUNDING", rounded - limit))
        limit = rounded
        if 0 < limit < policy.min_limit:
            reasons.append(Reason("BELOW_MINIMUM", -limit))
            limit = 0.0

        excluded = [r for r in reasons if r.code.startswith("PLOT_EXCLUDED_")]
        flagged = sorted({f for flags in fp["flags"] for f in flags if f in REVIEW_FLAGS})
        if limit <= 0:
            status, decided_by = "declined", next((r.code for r in reasons if r.code in ("BELOW_MINIMUM", "FLOOR_AT_ZERO")), "NO_PLEDGEABLE_REVENUE")
        elif policy.review_on_flags and (excluded or flagged):
            status, decided_by = "review", excluded[0].code if excluded else flagged[0]
        else:
            status, decided_by = "approved", "ADVANCE_ON_REVENUE"
        ordered = sorted(reasons, key=lambda r: (-abs(r.amount), r.code, r.plot_id or ""))
        rows.append({
            "farmer_id": fid,
            "limit": float(limit),
            "currency": policy.currency,
            "status": status,
            "decided_by": decided_by,
            "reason_codes": [r.code for r in ordered],
            "reasons": [r.as_dict() for r in ordered],
            "expected_revenue": float(fp["expected_revenue"].sum(min_count=1)) if fp["expected_revenue"].notna().any() else np.nan,
            "pledgeable_revenue": float(ok["pledgeable_revenue"].sum()),
            "rent_due": rent,
            "existing_debt": debt_amt,
            "n_plots": int(len(fp)),
            "n_plots_eligible": int(len(ok)),
            "valid_from": pd.Timestamp(as_of),
            "valid_until": pd.Timestamp(as_of) + pd.Timedelta(days=policy.validity_days),
        })
    return pd.DataFrame(rows)
