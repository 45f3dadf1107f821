"""Crop calendar windows: when the declared crop of a season is in the field."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from agrisat.config import CropParams

HARVEST_MARGIN_DAYS = 30  # a crop can stand a little past its usual harvest date


def growing_window(crop: CropParams, season_end: dt.date,
                   season_start: dt.date | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Sowing .. harvest (+ margin) of the crop's cycle that overlaps the run's season the most.

    The season's window often also holds the previous crop (a cover crop in November, the winter
    wheat before a maize): statistics outside the declared crop's own calendar are not its growth.
    Winter crops are sown in the year before their harvest. A mid-season run (season ending in
    April) gets the crop now in the field, not last year's. Without ``season_start`` the season is
    the year up to ``season_end``. Ties go to the later cycle.
    """
    end = pd.Timestamp(season_end)
    start = pd.Timestamp(season_start) if season_start else end - pd.Timedelta(days=364)
    hm, hd = (int(v) for v in crop.harvest.split("-"))
    sm, sd = (int(v) for v in crop.sowing.split("-"))
    best: tuple[pd.Timedelta, pd.Timestamp, pd.Timestamp] | None = None
    for year in (end.year - 1, end.year, end.year + 1):
        harvest = pd.Timestamp(year, hm, hd)
        sowing = pd.Timestamp(year, sm, sd)
        if sowing >= harvest:
            sowing = sowing.replace(year=year - 1)
        stop = harvest + pd.Timedelta(days=HARVEST_MARGIN_DAYS)
        overlap = max(min(stop, end) - max(sowing, start), pd.Timedelta(0))
        if best is None or overlap >= best[0]:
            best = (overlap, sowing, stop)
    assert best is not None
    return best[1], best[2]
