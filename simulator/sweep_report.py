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
    result = pbo(matrix.to_numpy(dtype=float))
    return (
        result.pbo,
        f"{result.splits} splits of {len(periods)} periods, {matrix.shape[1]} variants",
    )


def _strip_png(frame: pd.DataFrame) -> str | None:
    """Every trial's Sharpe ratio and total return per config, beside 1/N's and the index's."""
    done = frame[frame["status"] == "done"]
    if done.empty:
        return None
    labels = list(dict.fromkeys(done["config"]))
    fig = Figure(figsize=(11, 1.4 + 0.45 * len(labels)), dpi=100, layout="constrained")
    panels = (("sharpe", "Sharpe ratio (annualised, 52 weeks)"), ("total_return", "total return"))
    for k, (metric, title) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        for y, label in enumerate(labels):
            part = done[done["config"] == label]
            jitter = np.linspace(-0.12, 0.12, len(part)) if len(part) > 1 else np.zeros(1)
            for column, marker, color, name in (
                (metric, "o", "#1f77b4", "strategy"),
                (f"equal_weight_{metric}", "x", "#ff7f0e", "1/N"),
                (f"benchmark_{metric}", "|", "#555555", "index"),
            ):
                ax.scatter(
                    part[column],
                    y + jitter,
                    s=18,
                    marker=marker,
                    color=color,
                    label=name if y == 0 else None,
                )
        ax.set_yticks(range(len(labels)), labels=labels if k == 0 else [""] * len(labels))
        ax.tick_params(labelsize=8)
        ax.set_xlabel(f"{title} of each trial", fontsize=9)
        ax.axvline(0.0, color="#999999", lw=0.8, ls="--")
        if k == 0:
            ax.legend(loc="best", fontsize=8, frameon=False)
    return png(fig)


def write_sweep_html(out: Path, frame: pd.DataFrame, config: Path) -> Path:
    """sweep.html of a sweep directory (every value escaped)."""
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
    strip = _strip_png(frame)
    image = (
        f'<img src="data:image/png;base64,{strip}" alt="Sharpe and return of each trial">'
        if strip
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
td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>Sweep {esc(out.name)}</h1>
<p>Config <code>{esc(config)}</code>; {esc(s.trials)} trials, {esc(s.failed)} failed{retry}; written
{esc(when)}. Returns are total returns over each trial's period; Sharpe ratios are annualised
with 52 weeks; 1/N and the index are measured on the same weeks as each trial.</p>
{table(head, rows, "sweep")}
{image}
<h3>How sure</h3>
<ul><li>{dsr}</li><li>{pbo_line}</li></ul>
{"<h3>Failed trials</h3><ul>" + errors + "</ul>" if errors else ""}
<p>Every trial: <code>sweep.csv</code>; each trial's files: <code>trials/&lt;id&gt;/</code>
(<code>foliosim report</code> makes its tear sheet).</p>
</body></html>
"""
    target = out / "sweep.html"
    write_atomically(target, page)
    return target
