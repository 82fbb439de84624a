"""The raw feature panels of :mod:`models.features`, built from weekly bars.

Each panel holds one number per week stamp and ticker, on the data's calendar, computed from
weeks up to that stamp only (the time contract): the week's volume, its high-low range over
its close, the benchmark's return over the week and the yield's change over the week. A model
reads the panels of its ``features`` (:func:`models.features.select_panels`) and cuts them at
its as-of week.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from models.features import FEATURES
from simulator.data.sources import CLOSES_ONLY_NOTE
from simulator.data.weekly import WeeklyData
from simulator.errors import DataError


def _per_ticker(weekly: WeeklyData, column: str) -> pd.DataFrame:
    frame = pd.DataFrame({t: b[column] for t, b in weekly.bars.items()})
    return frame.reindex(weekly.calendar).astype(float)


def _broadcast(series: pd.Series, weekly: WeeklyData) -> pd.DataFrame:
    values = series.reindex(weekly.calendar).astype(float)
    return pd.DataFrame({t: values for t in weekly.bars}, index=weekly.calendar)


def feature_panels(weekly: WeeklyData) -> dict[str, pd.DataFrame]:
    """Every raw panel ``weekly`` can give, ``(n_weeks, n_tickers)`` each on its calendar.

    ``volume`` and ``range`` come from the bars; ``index`` is the benchmark's return over the
    week (NaN after a week without an index close); ``rate`` (only with a yield series, the
    risk-free series of the data) is the yield's change over the week in percentage points.
    """
    panels = {
        "volume": _per_ticker(weekly, "volume"),
        "range": (_per_ticker(weekly, "high") - _per_ticker(weekly, "low"))
        / _per_ticker(weekly, "close"),
        "index": _broadcast(weekly.benchmark.pct_change(fill_method=None), weekly),
    }
    if weekly.risk_free is not None:
        panels["rate"] = _broadcast(weekly.risk_free.diff(), weekly)
    return panels


def check_available(weekly: WeeklyData, features: Sequence[str], who: str = "the model") -> None:
    """Refuse features the data cannot give, with one line saying how to get them."""
    closes_only = weekly.note == CLOSES_ONLY_NOTE
    for feature in features:
        if feature in ("volume", "range") and closes_only:
            raise DataError(
                f"{who} reads {feature!r}, but the {weekly.source} data has daily closes only "
                f'(no volume, high or low); use data.source = "csv" (e.g. ../shared/data/'
                f'paper12) or "yahoo", or drop {feature!r} from model.features'
            )
        if feature == "volume":
            volume = _per_ticker(weekly, "volume")
            lacking = [t for t in volume.columns if not (volume[t] > 0).any()]
            if lacking:
                raise DataError(
                    f"{who} reads 'volume', but the data has no volume for {lacking[0]}; use "
                    "data with volume or drop 'volume' from model.features"
                )
        if feature == "rate" and weekly.risk_free is None:
            raise DataError(
                f"{who} reads 'rate' (the 2-year yield's weekly change), but the data has no "
                'yield series; set report.risk_free to the yield\'s series name (e.g. "DGS2", '
                "a file of the data folder) or drop 'rate' from model.features"
            )
        if feature not in FEATURES:
            raise DataError(f"{who} reads an unknown feature {feature!r}")
