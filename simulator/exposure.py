"""Exposure and turnover of a run, week by week: what the strategy held and how much it traded.

All figures are fractions of the portfolio value, one row per return week t (the week whose
return the row of returns.csv reports):

- ``long``: the sum of the positive weights held over week t; ``short``: the sum of the
  negative ones (a negative number or 0); ``gross = long - short`` (the sum of absolute
  weights); ``net = long + short``.
- ``turnover``: the value of the orders filled to set up week t's positions (those decided at
  the close of the week before), buys plus sells, over the portfolio value at that close. A
  switch from one fully invested portfolio to a disjoint one is 2.0; the first week, bought
  from cash, is the gross exposure it builds.

"Held over week t" follows the fill mode: with ``next_open`` fills the positions bought at the
open of t, valued at the close of t (the engine's weights row t); with ``close`` fills the
positions bought at the close of t-1 (row t-1 of the engine, which records weights after each
close's fills). A paper account's journal records the holdings of each close before that
close's fills, i.e. the positions held over the week in both modes (see
:func:`simulator.account_report.account_result`).
"""

from __future__ import annotations

import pandas as pd

from simulator.metrics import WEEKS_PER_YEAR
from simulator.summary import ExposureFacts

#: Columns of exposure.csv (besides ``week``).
EXPOSURE_COLUMNS = ["long", "short", "gross", "net", "turnover"]


def held_weights(weights: pd.DataFrame, weeks: pd.DatetimeIndex, fill: str) -> pd.DataFrame:
    """The engine's weights (after each week's fills, ``(n_weeks, n_tickers)``) as the
    positions held over each return week ``weeks[1:]`` (see the module docstring)."""
    full = weights.reindex(weeks).fillna(0.0)
    held = full.shift(1) if fill == "close" else full
    return held.iloc[1:]


def exposure_frame(
    held: pd.DataFrame, orders: pd.DataFrame, values: pd.Series, weeks: pd.DatetimeIndex
) -> pd.DataFrame:
    """Long, short, gross and net exposure and turnover per return week.

    Parameters
    ----------
    held
        Weights held over each return week ``weeks[1:]``, shape ``(n_weeks - 1, n_tickers)``
        (missing weeks count as nothing held).
    orders
        The strategy's orders (``date_submitted``, ``value``, ``status``); only
        ``Completed`` ones count.
    values
        Portfolio value at the close of each week of ``weeks``.
    weeks
        Every week of the run: the first decision week, then the return weeks.

    Returns
    -------
    pd.DataFrame
        Index ``week`` (the return weeks), columns :data:`EXPOSURE_COLUMNS`.

    Examples
    --------
    >>> weeks = pd.DatetimeIndex(["2024-01-05", "2024-01-12", "2024-01-19"])
    >>> held = pd.DataFrame({"A": [0.5, 0.7], "B": [-0.25, 0.0]}, index=weeks[1:])
    >>> orders = pd.DataFrame({"date_submitted": weeks[[0, 0, 1]], "value": [50.0, 25.0, 30.0],
    ...                        "status": ["Completed"] * 3})
    >>> values = pd.Series([100.0, 100.0, 120.0], index=weeks)
    >>> exposure_frame(held, orders, values, weeks).round(4).to_dict("list")
    {'long': [0.5, 0.7], 'short': [-0.25, 0.0], 'gross': [0.75, 0.7], 'net': [0.25, 0.7], \
'turnover': [0.75, 0.3]}
    """
    returns_weeks = weeks[1:]
    held = held.reindex(returns_weeks).fillna(0.0)
    long = held.clip(lower=0.0).sum(axis=1)
    short = held.clip(upper=0.0).sum(axis=1)
    done = orders[orders["status"] == "Completed"]
    traded = done["value"].abs().groupby(pd.DatetimeIndex(done["date_submitted"])).sum()
    decided = weeks[:-1]
    turnover = traded.reindex(decided).fillna(0.0).to_numpy() / values.reindex(decided).to_numpy()
    frame = pd.DataFrame(
        {
            "long": long.to_numpy(),
            "short": short.to_numpy(),
            "gross": (long - short).to_numpy(),
            "net": (long + short).to_numpy(),
            "turnover": turnover,
        },
        index=pd.DatetimeIndex(returns_weeks, name="week").as_unit("ns"),
    )
    return frame[EXPOSURE_COLUMNS]


def strategy_exposure(
    weights: pd.DataFrame,
    orders: pd.DataFrame,
    values: pd.Series,
    weeks: pd.DatetimeIndex,
    fill: str,
    held: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`exposure_frame` of an engine run (``weights`` after each week's fills, read
    with :func:`held_weights`), or of ``held`` when given (a paper account's journal)."""
    if held is None:
        held = held_weights(weights, weeks, fill)
    return exposure_frame(held, orders, values, weeks)


def exposure_facts(frame: pd.DataFrame) -> ExposureFacts:
    """The summary figures of :func:`exposure_frame`: mean exposures, the largest gross
    exposure, and the mean weekly turnover after the first week (which builds the portfolio
    from cash) with its annual rate (times 52); None when the run has a single week.

    >>> weeks = pd.DatetimeIndex(["2024-01-12", "2024-01-19", "2024-01-26"], name="week")
    >>> frame = pd.DataFrame({"long": [1.0, 0.8, 0.9], "short": [0.0, -0.2, -0.1],
    ...     "gross": [1.0, 1.0, 1.0], "net": [1.0, 0.6, 0.8], "turnover": [1.0, 0.2, 0.1]},
    ...     index=weeks)
    >>> facts = exposure_facts(frame)
    >>> round(facts.mean_turnover, 4), round(facts.annual_turnover, 4), facts.max_gross
    (0.15, 7.8, 1.0)
    """
    later = frame["turnover"].iloc[1:]
    mean_turnover = float(later.mean()) if len(later) else None
    return ExposureFacts(
        weeks=len(frame),
        mean_long=float(frame["long"].mean()),
        mean_short=float(frame["short"].mean()),
        mean_gross=float(frame["gross"].mean()),
        mean_net=float(frame["net"].mean()),
        max_gross=float(frame["gross"].max()),
        mean_turnover=mean_turnover,
        annual_turnover=None if mean_turnover is None else mean_turnover * WEEKS_PER_YEAR,
        first_turnover=float(frame["turnover"].iloc[0]),
    )
