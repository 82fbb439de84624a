"""vectorbt: weekly 1/N or 12-week momentum on the synthetic panel; runs in vectorbt's venv.

Daily closes in; a target-weight frame that is NaN (no order) on every day but the last trading
day of each week, where it holds 1/N, or 1/10 for the 10 best 12-week returns on the weekly
closes (0 for the rest; no row before the 13th week). ``Portfolio.from_orders`` with
``size_type="targetpercent"``, one group with shared cash, ``call_seq="auto"`` (sells before
buys), orders at that day's close, no fees. Whole shares: ``size_granularity=1``, which rounds
every order's size down (a sale sells the whole shares of the excess, so its remaining position
can be one share above the rounded-down target); fractional shares: no granularity.
"""

from __future__ import annotations

import _panel
import numpy as np
import pandas as pd
import vectorbt as vbt


def target_weights(closes: pd.DataFrame, weeks: pd.DatetimeIndex, strategy: str) -> pd.DataFrame:
    """``(n_days, n_tickers)``: the targets on decision days (every week end but the last)."""
    decisions = weeks[:-1]
    weekly = closes.loc[decisions]
    if strategy == "equal_weight":
        rows = pd.DataFrame(1.0 / closes.shape[1], index=decisions, columns=closes.columns)
    else:
        score = weekly / weekly.shift(_panel.LOOKBACK) - 1.0
        # method="first": ties go to the earlier column, i.e. the ticker name.
        rank = score.rank(axis=1, ascending=False, method="first")
        rows = (rank <= _panel.TOP).astype(float) / _panel.TOP
        rows = rows.loc[score.notna().any(axis=1)]
    return rows.reindex(closes.index)


def main() -> None:
    args = _panel.arguments(__doc__.splitlines()[0])
    closes = _panel.daily_closes(args.panel, args.end)
    weeks = _panel.week_ends(closes.index)
    pf = vbt.Portfolio.from_orders(
        close=closes,
        size=target_weights(closes, weeks, args.strategy),
        size_type="targetpercent",
        group_by=True,
        cash_sharing=True,
        call_seq="auto",
        init_cash=_panel.CASH,
        fees=0.0,
        size_granularity=1.0 if args.shares == "whole" else np.nan,
        freq="1D",
    )
    values = pf.value()
    _panel.emit(values.iloc[-1], len(weeks), last=str(values.index[-1].date()))


if __name__ == "__main__":
    main()
