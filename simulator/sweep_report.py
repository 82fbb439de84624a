"""The statistics of a sweep and its report, sweep.html (see :mod:`simulator.sweep`).

Per config (the grid's values; seeds and periods are its trials): the trials, the median and
the spread of total return and Sharpe ratio beside 1/N's and the index's on the same weeks, the
share of trials that beat 1/N, the median probability that a trial beats 1/N (the probabilistic
Sharpe ratio of its weekly excess over 1/N) and the median forecast MSE against the naive
forecast (n/a for rules without forecasts, and for a Sharpe-loss model's position scores).
Over all trials: the deflated Sharpe ratio of the best trial
(:func:`simulator.stats.deflated_sharpe`, N = the trials, their Sharpe ratios' variance) and,
with an even number of periods, the probability of backtest overfitting over the periods
(:func:`simulator.stats.pbo`; a "config" there is each grid value and seed, a block each period,
its performance the trial's Sharpe ratio).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from simulator.htmlkit import esc, num, png, table, write_atomically
from simulator.stats import deflated_sharpe, expected_max_sharpe, pbo

WEEKS_PER_YEAR = 52


@dataclass(frozen=True)
class SweepStats:
    """The sweep's figures (what sweep.html and the command line print)."""

    per_config: pd.DataFrame
    trials: int
    failed: int
    best_trial: str | None
    dsr: float | None
    sr0: float | None
    pbo: float | None
    pbo_note: str
    #: trials the environment stopped (a full disk, memory, a dead worker): run on resume
    retry: int = 0
    #: trials without a row (a sweep killed before them)
    missing: int = 0

    @property
    def done(self) -> int:
        """The trials with figures."""
        return self.trials - self.failed - self.retry - self.missing


def sweep_stats(frame: pd.DataFrame) -> SweepStats:
    """The statistics of sweep.csv's rows (see the module docstring)."""
    done = frame[frame["status"] == "done"].copy() if "status" in frame else frame.iloc[:0]
    status = frame["status"] if "status" in frame else pd.Series(dtype=str)
    failed = int((status == "failed").sum())
    retry = int((status == "retry").sum())
    missing = int((status == "missing").sum())
    per = []
    for label, part in done.groupby("config", sort=False):
        beats = (part["total_return"] > part["equal_weight_total_return"]).mean()
        # Absent from the rows of sweeps run before they were recorded: NaN, shown as n/a.
        mse = pd.to_numeric(part.get("mse_ratio", pd.Series(dtype=float)), errors="coerce")
        p_beats = pd.to_numeric(
            part.get("p_beats_equal_weight", pd.Series(dtype=float)), errors="coerce"
        )
        per.append(
            {
                "config": label,
                "trials": len(part),
                "median return": part["total_return"].median(),
                "min return": part["total_return"].min(),
                "max return": part["total_return"].max(),
                "median Sharpe": part["sharpe"].median(),
                "min Sharpe": part["sharpe"].min(),
                "max Sharpe": part["sharpe"].max(),
                "1/N median return": part["equal_weight_total_return"].median(),
                "index median return": part["benchmark_total_return"].median(),
                "share beating 1/N": float(beats),
                "median MSE ratio": mse.median(),
                "median P(beats 1/N)": p_beats.median(),
            }
        )
    per_config = pd.DataFrame(per)
    best, dsr, sr0 = None, None, None
    sharpe = done["sharpe"].astype(float) / math.sqrt(WEEKS_PER_YEAR) if len(done) else None
    if sharpe is not None and sharpe.notna().sum() >= 2:
        valid = done[sharpe.notna()]
        weekly = sharpe[sharpe.notna()]
        i = int(np.argmax(weekly.to_numpy()))
        row = valid.iloc[i]
        best = str(row["trial"])
        sr0 = expected_max_sharpe(float(np.var(weekly.to_numpy(), ddof=1)), len(weekly))
        skew = float(row["skew"]) if pd.notna(row.get("skew")) else 0.0
        kurt = float(row["kurtosis"]) if pd.notna(row.get("kurtosis")) else 3.0
        value = deflated_sharpe(float(weekly.iloc[i]), sr0, int(row["weeks"]), skew, kurt)
        dsr = None if math.isnan(value) else value
    overfit, note = _pbo(frame)
    return SweepStats(per_config, len(frame), failed, best, dsr, sr0, overfit, note, retry, missing)


def _pbo(frame: pd.DataFrame) -> tuple[float | None, str]:
    periods = [p for p in dict.fromkeys(frame.get("period", pd.Series(dtype=str))) if p]
    if len(periods) < 2 or len(periods) % 2:
        return None, "needs an even number of periods (2 or more): run with --periods"
    if (frame["status"] != "done").any():
        return None, "needs every trial: some failed or are missing"
    seed = frame["seed"].map(lambda v: "-" if v is None or v != v else str(int(v)))
    variant = frame["config"].astype(str) + " / seed " + seed
    table_ = pd.DataFrame(
        {"period": frame["period"], "variant": variant, "sharpe": frame["sharpe"].astype(float)}
    )
    matrix = table_.set_index(["period", "variant"])["sharpe"].unstack().reindex(periods)
    if matrix.shape[1] < 2:
        return None, "needs at least 2 configs or seeds to choose between"
    if not np.isfinite(matrix.to_numpy(dtype=float)).all():
        return None, "a trial has no Sharpe ratio (a constant series)"
    if matrix.nunique(axis=1).eq(1).all():
        # Every split would "pick" a variant that ranks at the median: 100%, meaning nothing.
        return None, "the variants have the same Sharpe ratio in every period: nothing to choose"
    result = pbo(matrix.to_numpy(dtype=float))
    return (
        result.pbo,
        f"{result.splits} splits of {len(periods)} periods, {matrix.shape[1]} variants",
    )


@dataclass(frozen=True)
class WhatRan:
    """What made a sweep, as sweep.html shows it (from its sweep.json)."""

    #: the command line that created the sweep, shell-quoted; "" when not recorded (a sweep
    #: run from Python, or made before the command was recorded)
    command: str = ""
    #: the ``--set`` overrides every trial has, before its own axes' values
    overrides: tuple[str, ...] = ()
    #: the axes in words (:meth:`simulator.sweep.Axes.describe`)
    axes: str = ""


#: The trials sweep.html lists one by one (sweep.csv has them all).
MAX_TRIAL_ROWS = 2_000
#: The series of the distribution chart besides the strategy: column prefix, label, colour.
MARKED = (("equal_weight_", "1/N", "#ff7f0e"), ("benchmark_", "index", "#555555"))
#: The configs' colours: matplotlib's cycle without 1/N's orange and the index's grey.
CONFIG_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def distribution_figure(frame: pd.DataFrame) -> Figure | None:
    """The empirical distribution (ECDF) of the done trials' total returns and Sharpe ratios,
    one curve per config, with 1/N and the index on the same weeks marked: a vertical line
    where every trial shares one value (one period), else their own ECDF, dashed. Returns
    and shares of trials in percent; None without a done trial."""
    done = frame[frame["status"] == "done"] if "status" in frame else frame.iloc[:0]
    if done.empty:
        return None
    labels = list(dict.fromkeys(done["config"]))
    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    panels = (
        ("total_return", "total return of each trial", True),
        ("sharpe", "Sharpe ratio of each trial (annualised, 52 weeks)", False),
    )
    for k, (metric, title, percent) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        for n, label in enumerate(labels):
            values = pd.to_numeric(done.loc[done["config"] == label, metric], errors="coerce")
            values = values[np.isfinite(values)]
            if len(values):
                name = "strategy" if len(labels) == 1 else _short(label)
                colour = CONFIG_COLOURS[n % len(CONFIG_COLOURS)]
                ax.ecdf(values.to_numpy(dtype=float), label=name, color=colour, lw=1.6)
        for prefix, name, color in MARKED:
            column = f"{prefix}{metric}"
            if column not in done:
                continue
            values = pd.to_numeric(done[column], errors="coerce")
            values = values[np.isfinite(values)]
            distinct = values.unique()
            if len(distinct) == 1:
                at = float(distinct[0])
                shown = f"{at:.1%}" if percent else f"{at:.2f}"
                ax.axvline(at, color=color, ls="--", lw=1.2, label=f"{name} {shown}")
            elif len(distinct) > 1:
                ax.ecdf(
                    values.to_numpy(dtype=float),
                    color=color,
                    ls="--",
                    lw=1.2,
                    label=f"{name} (each trial's weeks)",
                )
        ax.set_xlabel(title, fontsize=9)
        ax.set_ylabel("share of trials at or below", fontsize=9)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        if percent:
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylim(0.0, 1.02)
        ax.grid(True, color="#dddddd", lw=0.5)
        ax.tick_params(labelsize=8)
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return fig


def _short(label: str, most: int = 48) -> str:
    return label if len(label) <= most else label[: most - 1] + "\u2026"


def _seed(value: object) -> str:
    """A seed cell: the integer, or ``-`` for a trial without one (NaN in a frame)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return str(int(value))


def _grid_keys(frame: pd.DataFrame) -> list[str]:
    """The grid's keys: sweep.csv's columns between ``config`` and ``seed``."""
    columns = list(frame.columns)
    if "config" not in columns or "seed" not in columns:
        return []
    return columns[columns.index("config") + 1 : columns.index("seed")]


def trial_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The head and the cells (HTML, every value escaped) of sweep.html's table of trials:
    id, seed, grid values, period, status, then the figures, in percent where they are
    shares."""
    keys = _grid_keys(frame)
    head = ["trial", "seed", *keys, "period", "status", "total return", "Sharpe",
            "max drawdown", "1/N return", "index return", "P(beats 1/N)",
            "forecast MSE / naive"]  # fmt: skip
    pct = lambda v: num(v, ".1%")  # noqa: E731
    rows = []
    for _, r in frame.head(MAX_TRIAL_ROWS).iterrows():
        rows.append(
            [
                f"<code>{esc(r['trial'])}</code>",
                esc(_seed(r.get("seed"))),
                *(esc(r[k]) for k in keys),
                esc(r.get("period") or "") if pd.notna(r.get("period")) else "",
                esc(r.get("status", "")),
                pct(r.get("total_return")),
                num(r.get("sharpe"), ".2f"),
                pct(r.get("max_drawdown")),
                pct(r.get("equal_weight_total_return")),
                pct(r.get("benchmark_total_return")),
                pct(r.get("p_beats_equal_weight")),
                num(r.get("mse_ratio"), ".3f"),
            ]
        )
    return head, rows


def _what_ran(ran: WhatRan) -> str:
    command = (
        f"<pre><code>{esc(ran.command)}</code></pre>"
        if ran.command
        else "<p>Command: not recorded (a sweep run from Python, or made before sweeps "
        "recorded their command).</p>"
    )
    overrides = (
        "<ul>" + "".join(f"<li><code>{esc(o)}</code></li>" for o in ran.overrides) + "</ul>"
        if ran.overrides
        else "<p>none</p>"
    )
    axes = f"Axes: {esc(ran.axes)}. " if ran.axes else ""
    return f"""<h2>What ran</h2>
{command}
<p>{axes}Each trial is the config with these overrides, then its own seed
(<code>model.seed</code>), grid values and period.</p>
<h3>Overrides (<code>--set</code>), in every trial</h3>
{overrides}"""


def write_sweep_html(
    out: Path, frame: pd.DataFrame, config: Path, ran: WhatRan | None = None
) -> Path:
    """sweep.html of a sweep directory (every value escaped): what ran (the command, the
    overrides, the axes), the statistics per config, a table of every trial and the
    distribution of their returns and Sharpe ratios against 1/N's and the index's."""
    ran = ran if ran is not None else WhatRan()
    s = sweep_stats(frame)
    pct = lambda v: num(v, ".1%")  # noqa: E731
    rows = [
        [
            esc(r["config"]),
            esc(r["trials"]),
            pct(r["median return"]),
            f"{pct(r['min return'])} .. {pct(r['max return'])}",
            num(r["median Sharpe"], ".2f"),
            f"{num(r['min Sharpe'], '.2f')} .. {num(r['max Sharpe'], '.2f')}",
            pct(r["1/N median return"]),
            pct(r["index median return"]),
            pct(r["share beating 1/N"]),
            pct(r["median P(beats 1/N)"]),
            num(r["median MSE ratio"], ".3f"),
        ]
        for _, r in s.per_config.iterrows()
    ]
    head = [
        "config",
        "trials",
        "median return",
        "return range",
        "median Sharpe",
        "Sharpe range",
        "1/N median return",
        "index median return",
        "share beating 1/N",
        "median P(beats 1/N)",
        "median forecast MSE / naive",
    ]
    fig = distribution_figure(frame)
    image = (
        f'<img src="data:image/png;base64,{png(fig)}" alt="distribution (ECDF) of the '
        "trials' total returns and Sharpe ratios, with 1/N and the index\">"
        if fig is not None
        else "<p>No trial finished: no distribution to draw.</p>"
    )
    trial_head, trial_cells = trial_rows(frame)
    more = (
        f"<p>The first {MAX_TRIAL_ROWS:,} of {len(frame):,} trials; every trial is in "
        "<code>sweep.csv</code>.</p>"
        if len(frame) > MAX_TRIAL_ROWS
        else ""
    )
    dsr = (
        f"The best trial, <code>{esc(s.best_trial)}</code>, has a deflated Sharpe ratio of "
        f"<b>{num(s.dsr, '.1%')}</b>: the probability that its true Sharpe ratio beats "
        f"{num(s.sr0, '.3f')} a week, what the best of {esc(s.done)} trials "
        "would reach by luck with this spread (Bailey and L&oacute;pez de Prado 2014)."
        if s.best_trial is not None and s.dsr is not None
        else "Deflated Sharpe ratio: needs at least two trials with a Sharpe ratio."
    )
    pbo_line = (
        f"Probability of backtest overfitting over the periods: <b>{num(s.pbo, '.1%')}</b> "
        f"({esc(s.pbo_note)}; Bailey, Borwein, L&oacute;pez de Prado and Zhu 2015): how often "
        "the variant best on half of the periods ranks at or below the median on the others."
        if s.pbo is not None
        else f"Probability of backtest overfitting: n/a ({esc(s.pbo_note)})."
    )
    stopped = ("failed", "retry")
    failed = frame[frame["status"].isin(stopped)] if "status" in frame else frame.iloc[:0]
    errors = "".join(
        f"<li><code>{esc(r['trial'])}</code> ({esc(r['status'])}): {esc(r['error'])}</li>"
        for _, r in failed.iterrows()
    )
    retry = (
        f", {esc(s.retry)} stopped by the environment (a full disk, memory, a dead worker: run "
        "again when the same command runs with the same --out)"
        if s.retry
        else ""
    )
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc("foliosim sweep: " + out.name)}</title>
<style>body{{font-family:DejaVu Sans,Arial,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:6px}}</style></head><body>
<h1>Sweep {esc(out.name)}</h1>
<p>Config <code>{esc(config)}</code>; {esc(s.trials)} trials, {esc(s.failed)} failed{retry}; written
{esc(when)}. Returns are total returns over each trial's period; Sharpe ratios are annualised
with 52 weeks; 1/N and the index are measured on the same weeks as each trial.</p>
{_what_ran(ran)}
<h2>Per config</h2>
{table(head, rows, "sweep")}
<h2>Distribution over the trials</h2>
{image}
<h3>How sure</h3>
<ul><li>{dsr}</li><li>{pbo_line}</li></ul>
{"<h3>Failed trials</h3><ul>" + errors + "</ul>" if errors else ""}
<h2>Trials</h2>
{more}{table(trial_head, trial_cells, "trials")}
<p>Every trial: <code>sweep.csv</code>; each trial's files: <code>trials/&lt;id&gt;/</code>
(<code>foliosim report</code> makes its tear sheet).</p>
</body></html>
"""
    target = out / "sweep.html"
    write_atomically(target, page)
    return target
