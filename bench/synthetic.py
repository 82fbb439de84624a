"""The synthetic market of ``bench/peers.py``: one-factor daily prices, seeded.

``python bench/synthetic.py OUT --n 500`` writes ``OUT/T0000.csv`` .. (one file per ticker, the
CSV layout foliosim's ``csv`` source reads: ``date,open,high,low,close,adj_close,volume``), the
factor as the benchmark index ``OUT/MKT.csv``, and ``OUT/panel.npz`` (dates and the close
panel as plain arrays, no pickle, which the peers read so that every engine sees the same
numbers).

The model, per business day d (Monday to Friday, no holidays) and ticker i::

    log return[d, i] = beta[i] * f[d] + e[d, i]
    f[d] ~ N(0.0003, 0.011)    e[d, i] ~ N(0, sigma[i])

with ``beta`` uniform in [0.5, 1.5] and ``sigma`` uniform in [0.008, 0.025]; every ticker
starts at a price uniform in [20, 200]. Prices are rounded to the cent, so open = high = low
= close (a closes-only market: the weekly bar's open is the week's first daily close); volume is
1,000,000 shares. The same seed gives the same files, to the byte.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

START = "2004-01-05"
YEARS = 20
SEED = 7
BENCHMARK = "MKT"


def ticker_names(n: int) -> list[str]:
    return [f"T{i:04d}" for i in range(n)]


def business_days(years: int = YEARS) -> pd.DatetimeIndex:
    """Monday to Friday for ``years`` years from :data:`START`."""
    start = pd.Timestamp(START)
    return pd.bdate_range(start, start + pd.DateOffset(years=years) - pd.Timedelta(days=1))


def panel(n: int, years: int = YEARS, seed: int = SEED) -> tuple[pd.DataFrame, pd.Series]:
    """``(closes, index)``: daily closes of ``n`` tickers and of the factor index, in cents.

    The first ``n`` tickers of a larger panel are the same (each ticker draws from its own
    stream), so N = 20 is a subset of N = 500.
    """
    days = business_days(years)
    root = np.random.SeedSequence(seed)
    factor_seq, *ticker_seqs = root.spawn(n + 1)
    f = np.random.default_rng(factor_seq).normal(0.0003, 0.011, len(days))
    closes = np.empty((len(days), n))
    for i, seq in enumerate(ticker_seqs):
        rng = np.random.default_rng(seq)
        beta, sigma, start = rng.uniform(0.5, 1.5), rng.uniform(0.008, 0.025), rng.uniform(20, 200)
        closes[:, i] = start * np.exp(np.cumsum(beta * f + rng.normal(0.0, sigma, len(days))))
    index = 1000.0 * np.exp(np.cumsum(f))
    frame = pd.DataFrame(np.round(closes, 2), index=days, columns=ticker_names(n))
    return frame, pd.Series(np.round(index, 2), index=days, name=BENCHMARK)


def _csv(series: pd.Series, path: Path) -> None:
    close = series.map("{:.2f}".format)
    frame = pd.DataFrame(
        {
            "date": series.index.strftime("%Y-%m-%d"),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "adj_close": close,
            "volume": "1000000",
        }
    )
    frame.to_csv(path, index=False)


def write(out: Path, n: int, years: int = YEARS, seed: int = SEED) -> list[str]:
    """Write the data set of ``n`` tickers into ``out`` (see the module docstring); return the
    tickers. A folder already holding the same set is left as it is."""
    closes, index = panel(n, years, seed)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / f".made-v2-n{n}-y{years}-s{seed}"  # v2: text arrays, no pickle
    if not stamp.exists():
        for ticker in closes.columns:
            _csv(closes[ticker], out / f"{ticker}.csv")
        _csv(index, out / f"{BENCHMARK}.csv")
        np.savez(
            out / "panel.npz",
            dates=closes.index.strftime("%Y-%m-%d").to_numpy(dtype="U10"),
            closes=closes.to_numpy(),
            tickers=np.array(list(closes.columns), dtype="U"),
        )
        stamp.touch()
    return list(closes.columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--years", type=int, default=YEARS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    tickers = write(args.out, args.n, args.years, args.seed)
    print(f"{len(tickers)} tickers, {len(business_days(args.years))} days -> {args.out}")


if __name__ == "__main__":
    main()
