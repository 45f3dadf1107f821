"""Crop calendar windows: when the declared crop of a season is in the field."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from agrisat.config import CropParams

HARVEST_MARGIN_DAYS = 30  # a crop can stand a little past its usual harvest date


def growing_window(crop: CropParams, season_end: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Sowing .. harvest (+ margin) of the crop's season that ends by ``season_end``.

    The season's window often also holds the previous crop (a cover crop in November, the winter
    wheat before a maize): statistics outside the declared crop's own calendar are not its growth.
    Winter crops are sown in the year before their harvest.
    """
    end = pd.Timestamp(season_end)
    hm, hd = (int(v) for v in crop.harvest.split("-"))
    sm, sd = (int(v) for v in crop.sowing.split("-"))
    harvest = pd.Timestamp(end.year, hm, hd)
    if harvest > end + pd.Timedelta(days=HARVEST_MARGIN_DAYS):
        harvest = harvest.replace(year=harvest.year - 1)
    sowing = pd.Timestamp(harvest.year, sm, sd)
    if sowing >= harvest:
        sowing = sowing.replace(year=sowing.year - 1)
    return sowing, harvest + pd.Timedelta(days=HARVEST_MARGIN_DAYS)
