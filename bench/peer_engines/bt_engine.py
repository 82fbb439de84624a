"""bt (pmorissette): weekly 1/N or 12-week momentum on the synthetic panel; runs in bt's venv.

Daily closes in, bt's own algos out: ``RunWeekly(run_on_end_of_period=True)`` runs on the last
trading day of each week (the Friday close), ``run_on_first_date=False`` so that the first
Monday is not a decision day; ``SelectAll`` + ``WeighEqually`` + ``Rebalance`` (1/N), or
``RunAfterDate`` (the 13th week: 12 weekly returns of history) + ``SelectMomentum(n=10,
lookback=12 weeks)`` + ``WeighEqually`` + ``Rebalance``. bt trades at the close of the row
it runs on; no commission (bt's default). ``integer_positions`` (bt's default, whole shares,
rounded down for a long) or fractional shares.
"""

from __future__ import annotations

import _panel
import bt
import pandas as pd


def main() -> None:
    args = _panel.arguments(__doc__.splitlines()[0])
    closes = _panel.daily_closes(args.panel, args.end)
    weeks = _panel.week_ends(closes.index)
    when = bt.algos.RunWeekly(run_on_first_date=False, run_on_end_of_period=True)
    if args.strategy == "equal_weight":
        algos = [when, bt.algos.SelectAll(), bt.algos.WeighEqually(), bt.algos.Rebalance()]
    else:
        # RunAfterDate runs strictly after its date: from the week with LOOKBACK returns on.
        first = weeks[_panel.LOOKBACK] - pd.Timedelta(days=1)
        algos = [
            when,
            bt.algos.RunAfterDate(first),
            bt.algos.SelectAll(),
            bt.algos.SelectMomentum(
                n=_panel.TOP, lookback=pd.DateOffset(weeks=_panel.LOOKBACK), all_or_none=False
            ),
            bt.algos.WeighEqually(),
            bt.algos.Rebalance(),
        ]
    test = bt.Backtest(
        bt.Strategy(args.strategy, algos),
        closes,
        initial_capital=_panel.CASH,
        integer_positions=args.shares == "whole",
        progress_bar=False,
    )
    bt.run(test)
    values = test.strategy.values
    _panel.emit(values.iloc[-1], len(weeks), last=str(values.index[-1].date()))


if __name__ == "__main__":
    main()
