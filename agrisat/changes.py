"""Change rules: how far a farmer's limit may move from the previous limit in one run.

    increase  -> at most max(previous x max_increase_relative, max_increase_absolute)
    decrease  -> at once on a severe event (severe_codes, more debt, more rent);
                 otherwise at most previous x max_decrease_relative per run (None: at once)

Both rules are monotone in the new evidence: a better base limit never gives a lower result.
"""

from __future__ import annotations

from dataclasses import dataclass

from agrisat.config import ChangeRules
from agrisat.reasons import Reason


@dataclass(frozen=True)
class Change:
    limit: float
    change_reason: str
    reason: Reason | None  # the reason code added to the limit, when a rule moved it


def apply_change_rules(base: float, previous: float | None, severe: list[str], rules: ChangeRules) -> Change:
    """Move from ``previous`` towards ``base`` as far as the rules allow."""
    if previous is None:
        return Change(base, "NO_PREVIOUS_LIMIT", None)
    if base > previous:
        ceiling = previous + max(previous * rules.max_increase_relative, rules.max_increase_absolute)
        if base > ceiling:
            return Change(ceiling, "INCREASE_CAPPED", Reason("CHANGE_INCREASE_CAPPED", ceiling - base,
                                                             detail=f"previous limit {previous:.0f}"))
        return Change(base, "INCREASE", None)
    if base < previous:
        if severe:
            return Change(base, f"DECREASE_SEVERE:{severe[0]}", None)
        if rules.max_decrease_relative is not None:
            floor = previous * (1.0 - rules.max_decrease_relative)
            if base < floor:
                return Change(floor, "DECREASE_DAMPED", Reason("CHANGE_DECREASE_DAMPED", floor - base,
                                                               detail=f"previous limit {previous:.0f}"))
        return Change(base, "DECREASE", None)
    return Change(base, "UNCHANGED", None)
