"""The scalar change rules of agrisat/changes.py, kept for tests/oracle_credit.py (issue 17).

Change rules: how far a farmer's limit may move from the previous limit in one run.

    increase  -> at most max(previous x max_increase_relative, max_increase_absolute)
    decrease  -> at once, unless every condition for damping holds; a damped decrease falls at most
                 previous x max_decrease_relative per run, and holds at most what the previous run's
                 revenue supported minus today's obligations

Damping holds an old limit above what today's evidence supports, so it is allowed only when:
the previous limit is still valid (its ``valid_until`` is known and not before ``as_of``), the
farmer has an eligible plot, no plot lacks evidence (``MISSING_EVIDENCE_CODES``: less evidence must
switch damping off, never on), and no severe event is new since the previous run. New debt and rent
are never damped: the floor is ``previous limit + previous debt + previous rent - today's debt and
rent`` (unknown previous obligations count as zero, which lowers the floor).

Every rule is monotone: a better base limit, less debt or rent, or more evidence never gives a lower
result, and the reverse never a higher one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from agrisat.config import ChangeRules
from agrisat.reasons import Reason

# Flags that mean "we could not see": always severe, whatever the policy lists, and they switch damping
# off. Otherwise losing evidence (a drought flag becoming "weather not evaluated", a bare plot becoming
# a cloudy one) would turn an immediate decrease into a damped one, i.e. raise the limit.
MISSING_EVIDENCE_CODES = ("NOT_ENOUGH_CLEAR_OBSERVATIONS", "NO_IMAGERY_COVERAGE", "PLOT_TOO_SMALL",
                          "PARTIAL_IMAGERY_COVERAGE", "TENURE_UNKNOWN", "WEATHER_RULES_NOT_EVALUATED",
                          "WEATHER_DATA_GAP", "WEATHER_SOURCE_FAR")
# Reasons that are the change rules' own doing (not evidence) are never a change's driver.
_NOT_DRIVERS = ("CHANGE_INCREASE_CAPPED", "CHANGE_DECREASE_DAMPED", "ROUNDING")


@dataclass(frozen=True)
class Previous:
    """The farmer's previous limit, as far as the previous limits file tells."""

    limit: float
    existing_debt: float | None = None
    rent_due: float | None = None
    valid_until: pd.Timestamp | None = None
    events: frozenset[tuple[str, str]] | None = None  # (flag, plot_id) the previous reasons carried
    reasons: tuple[tuple[str, str, float], ...] | None = None  # (code, plot_id, amount)

    @property
    def capacity(self) -> float:
        """What the previous run's revenue supported: its limit plus the obligations it deducted."""
        return self.limit + (self.existing_debt or 0.0) + (self.rent_due or 0.0)


@dataclass(frozen=True)
class Change:
    limit: float
    direction: str  # NO_PREVIOUS_LIMIT, INCREASE, INCREASE_CAPPED, DECREASE, DECREASE_SEVERE, DECREASE_DAMPED, UNCHANGED
    reason: Reason | None  # the reason code added to the limit, when a rule moved it


def apply_change_rules(base: float, previous: Previous | None, *, obligations: float, new_severe: list[str],
                       complete_evidence: bool, as_of: dt.date, rules: ChangeRules) -> Change:
    """Move from ``previous`` towards ``base`` as far as the rules allow. ``obligations`` is today's
    debt + rent; ``complete_evidence``: the farmer has an eligible plot and no plot lacks evidence."""
    if previous is None:
        return Change(base, "NO_PREVIOUS_LIMIT", None)
    prev = previous.limit
    if base > prev:
        ceiling = prev + max(prev * rules.max_increase_relative, rules.max_increase_absolute)
        if base > ceiling:
            return Change(ceiling, "INCREASE_CAPPED", Reason("CHANGE_INCREASE_CAPPED", ceiling - base,
                                                             detail=f"previous limit {prev:.0f}"))
        return Change(base, "INCREASE", None)
    if base == prev:
        return Change(base, "UNCHANGED", None)
    if new_severe:
        return Change(base, "DECREASE_SEVERE", None)
    valid = previous.valid_until is not None and pd.Timestamp(as_of) <= previous.valid_until
    if rules.max_decrease_relative is None or not valid or not complete_evidence:
        return Change(base, "DECREASE", None)
    floor = min(prev * (1.0 - rules.max_decrease_relative), previous.capacity - obligations)
    if base < floor:
        return Change(floor, "DECREASE_DAMPED", Reason(
            "CHANGE_DECREASE_DAMPED", floor - base,
            detail=f"previous limit {prev:.0f} valid until {previous.valid_until:%Y-%m-%d}"))
    return Change(base, "DECREASE", None)


def new_severe_events(current: set[tuple[str, str]], previous: Previous | None, severe_codes: set[str]) -> list[str]:
    """Severe (flag, plot) events of this run that the previous limit did not carry, as sorted flags.

    Without the previous reasons (a CSV of limits) every current event counts as new."""
    severe = {(c, p) for c, p in current if c in severe_codes or c in MISSING_EVIDENCE_CODES}
    seen = previous.events if previous is not None and previous.events is not None else frozenset()
    return sorted({c for c, p in severe - seen})


def change_driver(now: list[Reason], previous: Previous | None, direction: str) -> str | None:
    """The reason whose amount moved the limit most since the previous run, in the change's direction.

    With the previous reasons, compare amounts by (code, plot); without them, the largest reason of
    the change's sign (the largest deduction for a decrease)."""
    if previous is None or direction == "UNCHANGED":
        return None
    sign = 1.0 if direction.startswith("INCREASE") else -1.0
    amounts: dict[tuple[str, str], float] = {}
    for r in now:
        if r.code not in _NOT_DRIVERS:
            key = (r.code, r.plot_id or "")
            amounts[key] = amounts.get(key, 0.0) + r.amount
    if previous.reasons is not None:
        for code, plot, amount in previous.reasons:
            if code not in _NOT_DRIVERS:
                amounts[(code, plot)] = amounts.get((code, plot), 0.0) - amount
    moves = sorted(((sign * v, k) for k, v in amounts.items() if sign * v > 0), key=lambda t: (-t[0], t[1]))
    return moves[0][1][0] if moves else None


def previous_record(row: pd.Series | None) -> Previous | None:
    """One row of a previous limits file -> ``Previous`` (None when the farmer had no limit)."""
    if row is None or pd.isna(row.get("limit")):
        return None

    def num(col: str) -> float | None:
        v = row.get(col)
        return float(v) if v is not None and pd.notna(v) else None

    until = row.get("valid_until")
    until = pd.Timestamp(until) if until is not None and pd.notna(until) else None
    raw = row.get("reasons")
    events = reasons = None
    if raw is not None and not isinstance(raw, (str, float)):
        items = [dict(r) for r in raw]
        reasons = tuple((str(r["code"]), str(r.get("plot_id") or ""), float(r["amount"])) for r in items)
        events = frozenset((_flag_of(c), p) for c, p, _ in reasons if _flag_of(c))
    return Previous(float(row["limit"]), num("existing_debt"), num("rent_due"), until, events, reasons)


def _flag_of(code: str) -> str:
    for prefix in ("FLAG_", "PLOT_EXCLUDED_"):
        if code.startswith(prefix):
            return code[len(prefix):]
    return ""
