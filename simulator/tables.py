"""How the analyses are shown: the command line's and the tear sheet's tables of the
per-stock analytics (:mod:`simulator.analytics`) and of the stress scenarios
(:mod:`simulator.stress`). The analyses return data; the formatting lives here, with the
faces that print it (the CLI, :mod:`simulator.report` and :mod:`simulator.sections`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd

from simulator.analytics import RISK_RULE, VAR_RULE, json_value, risk_words
from simulator.htmlkit import esc as _esc
from simulator.htmlkit import num
from simulator.htmlkit import table as _table
from simulator.summary import StressFacts


def _pct(value: Any) -> str:
    return num(json_value(value), ".1%")


def _dec(value: Any) -> str:
    return num(json_value(value), ".2f")


_HEAD = (
    "Ticker",
    "Weeks",
    "Annual return",
    "Volatility",
    "Max drawdown",
    "Sortino",
    "Beta",
    "VaR 95% (1 week)",
    "CVaR 95% (1 week)",
    "Risk",
)


def _rows(frame: pd.DataFrame) -> list[tuple[str, dict[Hashable, Any]]]:
    return [(str(t), r) for t, r in zip(frame.index, frame.to_dict("records"), strict=True)]


def _cells(ticker: str, row: Mapping[Hashable, Any]) -> list[str]:
    return [
        str(ticker),
        str(int(row["weeks"])),
        _pct(row["annual_return"]),
        _pct(row["volatility"]),
        _pct(row["max_drawdown"]),
        _dec(row["sortino"]),
        _dec(row["beta"]),
        _pct(row["var_95"]),
        _pct(row["cvar_95"]),
        str(row["risk"]),
    ]


def analytics_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The column heads and the formatted cells of each ticker (the terminal's table)."""
    return list(_HEAD), [_cells(t, r) for t, r in _rows(frame)]


def analytics_html(
    frame: pd.DataFrame,
    as_of: pd.Timestamp,
    window: int,
    *,
    benchmark_name: str = "the benchmark index",
) -> str:
    """The tear sheet's section: ``<h3>Per-stock analytics</h3>``, the conventions in words,
    a table (``id="analytics"``) and one plain sentence per stock."""
    day = pd.Timestamp(as_of).date().isoformat()
    rows = [[_esc(c) for c in _cells(t, r)] for t, r in _rows(frame)]
    words = "\n".join(f"<li>{_esc(risk_words(row))}</li>" for _, row in frame.iterrows())
    return "\n".join(
        [
            "<h3>Per-stock analytics</h3>",
            f"<p>Each stock over the last {int(window)} weeks up to the week of {day}, from "
            "its weekly closes up to that week only (nothing after it). Annual return is "
            "compounded over the weeks measured (52 a year); volatility is the standard "
            "deviation of the weekly returns times &radic;52; max drawdown is the largest fall "
            "from a peak; the Sortino ratio is the mean weekly return above the risk-free rate "
            "over its downside deviation, times &radic;52; beta is measured against "
            f"{_esc(benchmark_name)}. {_esc(VAR_RULE)}. Risk level: {_esc(RISK_RULE)}. A week "
            "without a price gives no return into or out of it (nothing is filled in), so "
            "Weeks counts the weekly returns actually used.</p>",
            _table(_HEAD, rows, "analytics"),
            f"<ul>\n{words}\n</ul>",
        ]
    )


STRESS_HEAD = (
    "Scenario",
    "Weeks held",
    "Return",
    "Worst week",
    "Max drawdown",
    "Largest contributions (* proxied)",
)


def stress_rows(facts: StressFacts) -> list[list[str]]:
    """The cells of each scenario, plain text (the terminal's table and the tear sheet's)."""
    rows = []
    for s in facts.scenarios:
        if not s.available:
            rows.append([s.name, "", "n/a", "n/a", "n/a", f"unavailable: {s.reason}"])
            continue
        if s.kind == "historical":
            held = f"{s.first_week}..{s.last_week} ({s.weeks})"
            worst = f"{num(s.worst_week_return, '+.1%')} ({s.worst_week})"
        else:
            held, worst = "instant", num(s.worst_week_return, "+.1%")
        parts = [
            f"{c.ticker}{'*' if c.proxied else ''} {num(c.contribution, '+.1%')}"
            for c in s.contributors
        ]
        drawdown = num(s.max_drawdown, ".1%")
        rows.append([s.name, held, num(s.return_, "+.1%"), worst, drawdown, ", ".join(parts)])
    return rows
