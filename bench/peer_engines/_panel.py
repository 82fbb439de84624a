"""What every peer script shares: its arguments, the close panel, the weekly grid, the result.

Imported by the scripts beside it, which run in the peers' own virtualenvs: numpy and pandas
only, nothing of foliosim.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import pandas as pd

RESULT_TAG = "PEER_RESULT "
CASH = 10_000_000.0
TOP = 10
LOOKBACK = 12


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--panel", required=True, help="panel.npz of bench/synthetic.py")
    parser.add_argument("--strategy", choices=["equal_weight", "momentum"], required=True)
    parser.add_argument("--end", required=True, help="last day of the run (YYYY-MM-DD)")
    parser.add_argument("--shares", choices=["whole", "fractional"], default="whole")
    return parser.parse_args()


def daily_closes(path: str, end: str) -> pd.DataFrame:
    """Daily closes ``(n_days, n_tickers)`` up to ``end``, as bench/synthetic.py wrote them."""
    # bench/synthetic.py saves the dates and tickers as object arrays (pickled inside the npz);
    # the file is the one this benchmark wrote itself.
    with np.load(path) as npz:
        dates = pd.DatetimeIndex(npz["dates"].astype(str))
        frame = pd.DataFrame(npz["closes"], index=dates, columns=npz["tickers"].astype(str))
    return frame.loc[:end]


def week_ends(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """foliosim's weekly grid: the last trading day of each Monday-to-Friday week."""
    days = pd.Series(index, index=index)
    return pd.DatetimeIndex(days.groupby(index.to_period("W-FRI")).max().to_numpy())


def emit(final: float, weeks: int, **extra: Any) -> None:
    print(RESULT_TAG + json.dumps({"final": float(final), "weeks": weeks, **extra}), flush=True)
    sys.stdout.flush()
