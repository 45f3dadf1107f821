"""Change rules: how far a farmer's limit may move from the previous limit in one run.

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

import numpy as np
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
NOT_DRIVERS = ("CHANGE_INCREASE_CAPPED", "CHANGE_DECREASE_DAMPED", "ROUNDING")


@dataclass(frozen=True)
class Previous:
    """One farmer's previous limit, as far as the previous limits file tells (None: unknown)."""

    limit: float
    existing_debt: float | None = None
    rent_due: float | None = None
    valid_until: pd.Timestamp | None = None


@dataclass(frozen=True)
class Change:
    limit: float
    direction: str  # NO_PREVIOUS_LIMIT, INCREASE, INCREASE_CAPPED, DECREASE, DECREASE_SEVERE, DECREASE_DAMPED, UNCHANGED
    reason: Reason | None  # the reason code added to the limit, when a rule moved it


@dataclass(frozen=True)
class Changes:
    limit: np.ndarray  # per farmer, after the rules
    direction: np.ndarray  # per farmer, as Change.direction


def apply_change_rules_all(base: np.ndarray, previous: np.ndarray, prev_debt: np.ndarray, prev_rent: np.ndarray,
                           valid_until: np.ndarray, *, obligations: np.ndarray, any_severe: np.ndarray,
                           complete: np.ndarray, as_of: dt.date, rules: ChangeRules) -> Changes:
    """The rules for every farmer at once. ``previous`` is NaN where a farmer had no limit; its
    ``prev_debt``/``prev_rent`` NaN where unknown (counted as zero), ``valid_until`` NaT where unknown
    (no damping). ``obligations`` is today's debt + rent; ``complete``: an eligible plot and no plot
    lacking evidence; ``any_severe``: a severe event new since the previous run."""
    base = np.asarray(base, dtype=float)
    has = ~np.isnan(previous)
    with np.errstate(invalid="ignore"):
        inc = has & (base > previous)
        ceiling = previous + np.maximum(previous * rules.max_increase_relative, rules.max_increase_absolute)
        capped = inc & (base > ceiling)
        dec = has & (base < previous)
        valid = ~pd.isna(valid_until) & (valid_until >= np.datetime64(pd.Timestamp(as_of)))
        rel = rules.max_decrease_relative
        capacity = previous + np.nan_to_num(prev_debt) + np.nan_to_num(prev_rent)  # what the previous revenue supported
        floor = (np.minimum(previous * (1.0 - rel), capacity - obligations) if rel is not None
                 else np.full(len(base), np.nan))
        damped = dec & ~any_severe & valid & complete & (base < floor)
    direction = np.select(
        [~has, capped, inc, base == previous, dec & any_severe, damped, dec],
        ["NO_PREVIOUS_LIMIT", "INCREASE_CAPPED", "INCREASE", "UNCHANGED", "DECREASE_SEVERE", "DECREASE_DAMPED",
         "DECREASE"], default="UNCHANGED").astype(object)
    return Changes(np.where(capped, ceiling, np.where(damped, floor, base)), direction)


def apply_change_rules(base: float, previous: Previous | None, *, obligations: float, new_severe: list[str],
                       complete_evidence: bool, as_of: dt.date, rules: ChangeRules) -> Change:
    """One farmer's change (``apply_change_rules_all`` on one row), with the reason it adds."""
    if previous is None:
        return Change(base, "NO_PREVIOUS_LIMIT", None)
    until = np.array([np.datetime64(previous.valid_until) if previous.valid_until is not None else np.datetime64("NaT")],
                     dtype="datetime64[ns]")
    nan = np.nan
    c = apply_change_rules_all(np.array([base]), np.array([previous.limit]),
                               np.array([nan if previous.existing_debt is None else previous.existing_debt]),
                               np.array([nan if previous.rent_due is None else previous.rent_due]), until,
                               obligations=np.array([obligations]), any_severe=np.array([bool(new_severe)]),
                               complete=np.array([complete_evidence]), as_of=as_of, rules=rules)
    limit, direction = float(c.limit[0]), str(c.direction[0])
    reason = None
    if direction == "INCREASE_CAPPED":
        reason = Reason("CHANGE_INCREASE_CAPPED", limit - base, detail=f"previous limit {previous.limit:.0f}")
    elif direction == "DECREASE_DAMPED":
        reason = Reason("CHANGE_DECREASE_DAMPED", limit - base,
                        detail=f"previous limit {previous.limit:.0f} valid until {previous.valid_until:%Y-%m-%d}")
    return Change(limit, direction, reason)
