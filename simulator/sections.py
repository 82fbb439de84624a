"""Tear-sheet sections beyond Table 2: the paper side by side, predictions, honesty, profile,
exposure and turnover, stress scenarios.

- :func:`reference_html`: our Table 2 next to published figures (``report.reference``), with
  a plain sentence for every figure that differs.
- :func:`prediction_html`: the forecasts' errors over the traded weeks next to the naive
  forecast, each model's registered test record, learning curves and predicted-vs-actual plots.
- :func:`exposure_html`: gross, net, long and short exposure and weekly turnover over time.
- :func:`stress_html`: what the last week's positions would make or lose in past crises and in
  hypothetical shocks (:mod:`simulator.stress`), as a table and a bar chart.
- :func:`honesty_html`: the leakage audit (train_end against the first week each model traded,
  scaler windows, fill timing) and how sure the result is (probabilistic Sharpe ratios).

They read only the run directory's files (summary.json through its typed
:class:`~simulator.summary.RunSummary`, models.json and predictions.csv through the readers of
:mod:`simulator.rundir`), so ``foliosim report`` rebuilds them without the registry. Every value
they print is escaped (:mod:`simulator.htmlkit`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from models.metrics import MIN_IC_TICKERS, predictions_ic, predictions_quality
from models.plots import (
    IC_ROLLING_WEEKS,
    Curve,
    forecast_scatter_figure,
    forecast_scatter_grid,
    ic_figure,
    learning_curves_figure,
    learning_summary_figure,
)
from simulator.charts import attention_figure, attribution_figure, exposure_figure, stress_figure
from simulator.errors import RunDirError
from simulator.htmlkit import esc as _esc
from simulator.htmlkit import num as _num
from simulator.htmlkit import png as _png
from simulator.htmlkit import table as _table
from simulator.metrics import SHORT_RUN_WEEKS
from simulator.rundir import read_predictions
from simulator.stress import HELD_RULE, MIN_WEEKS
from simulator.summary import (
    REMEDY,
    Confidence,
    ForecastQuality,
    ICStats,
    RunSummary,
    nan_to_none,
)
from simulator.tables import STRESS_HEAD, stress_rows
from strategies.risk import FIGURES, METHOD_LABELS

#: Published figures, by ``report.reference`` name: columns benchmark, 1/N, strategy.
REFERENCES: dict[str, dict[str, Any]] = {
    "paper2023": {
        "title": "seed 001, Table 2",
        "period": "2022-07-01 to 2023-06-23 (prices of 52 weeks, 51 weekly returns)",
        "rows": {
            "Return over the period (%)": ("total_return", 100.0, (21.25, 39.77, 116.21), 1.0),
            "Volatility (%)": ("volatility", 100.0, (23.46, 24.81, 26.68), 1.0),
            "Sharpe ratio": ("sharpe", 1.0, (0.780, 1.337, 2.944), 0.05),
            "Max drawdown (%)": ("max_drawdown", 100.0, (-20.9, -19.3, -13.1), 1.0),
        },
        "notes": [
            "The paper's return is the total return over its test period (the NASDAQ's "
            "21.25% is the index close of 2023-06-23 over that of 2022-07-01), so it is set "
            "beside our total return, not our annualised one.",
            "The paper's data are weekly adjusted closes from its own source; its risk-free "
            "rate, its 1/N construction (rebalanced or bought and held) and its LSTM training "
            "seed are not given. Our LSTM result depends on the training seed: docs/paper.md lists "
            "the spread over several seeds and both fill modes.",
        ],
    }
}
_KEYS = ("benchmark", "equal_weight", "strategy")


# --- the paper side by side ----------------------------------------------------------------


def reference_rows(summary: RunSummary, name: str) -> list[dict[str, Any]]:
    """Ours next to the published figures: one dict per (metric, series).

    Keys: ``metric``, ``series`` (benchmark, equal_weight, strategy), ``ours``, ``published``,
    ``difference`` (ours - published, NaN when ours is undefined) and ``differs`` (the
    difference is beyond the row's tolerance: 1 point for percentages, 0.05 for Sharpe).
    """
    ref = REFERENCES[name]
    out = []
    for metric, (key, factor, published, tolerance) in ref["rows"].items():
        for series, paper in zip(_KEYS, published, strict=True):
            raw = getattr(summary.series[series], key)
            ours = float(raw) * factor if raw is not None else math.nan
            diff = ours - paper
            out.append(
                {
                    "metric": metric,
                    "series": series,
                    "ours": ours,
                    "published": paper,
                    "difference": diff,
                    "differs": bool(not math.isfinite(diff) or abs(diff) > tolerance),
                }
            )
    return out


def reference_html(summary: RunSummary) -> str:
    """Table 2 beside the published one, and where they differ, in words ('' if none set)."""
    name = summary.reference
    if not name:
        return ""
    if name not in REFERENCES:
        raise RunDirError(f"summary.json: unknown reference {name!r}; {REMEDY}")
    ref = REFERENCES[name]
    if summary.short:
        return (
            f"<h3>Our figures beside the paper's ({_esc(ref['title'])})</h3>\n"
            f"<p>Not compared: the paper's figures cover {_esc(ref['period'])}; this run has "
            f"{_esc(summary.weeks)} weekly returns, too few to set beside a year.</p>"
        )
    labels = {
        "benchmark": summary.benchmark_name,
        "equal_weight": "1/N",
        "strategy": summary.strategy_name,
    }
    rows = reference_rows(summary, name)
    head = ["Metric"]
    for key in _KEYS:
        head += [f"{labels[key]} (ours)", f"{labels[key]} (paper)", "difference"]
    table_rows = []
    for metric in ref["rows"]:
        spec = ".3f" if metric == "Sharpe ratio" else ".2f"
        cells = [_esc(metric)]
        for r in (r for r in rows if r["metric"] == metric):
            mark = " &#9888;" if r["differs"] else ""
            cells += [
                _num(r["ours"], spec),
                _num(r["published"], spec),
                _num(r["difference"], "+" + spec) + mark,
            ]
        table_rows.append(cells)
    sentences = []
    for r in rows:
        spec = ".3f" if r["metric"] == "Sharpe ratio" else ".2f"
        what = f"{labels[r['series']]} {r['metric'].split(' (')[0].lower()}"
        if not math.isfinite(r["ours"]):
            sentences.append(f"Our {_esc(what)} is undefined; the paper reports {r['published']}.")
        elif r["differs"]:
            side = "above" if r["difference"] > 0 else "below"
            sentences.append(
                f"Our {_esc(what)} is {_num(r['ours'], spec)}, {_num(abs(r['difference']), spec)} "
                f"{side} the paper's {_num(r['published'], spec)}."
            )
    agree = [
        f"{labels[r['series']]} {r['metric'].split(' (')[0].lower()}"
        for r in rows
        if not r["differs"]
    ]
    if agree:
        sentences.append("Within tolerance of the paper: " + _esc(", ".join(agree)) + ".")
    notes = "\n".join(f"<li>{s}</li>" for s in [*sentences, *map(_esc, ref["notes"])])
    return f"""
<h3>Our figures beside the paper's ({_esc(ref["title"])})</h3>
<p>The paper's test period: {_esc(ref["period"])}. Ours: {_esc(summary.weeks)} weekly
returns, {_esc(summary.start)} to {_esc(summary.end)}, fill mode
<code>{_esc(summary.fill)}</code>. &#9888; marks a difference beyond 1 point (0.05 for the
Sharpe ratio).</p>
{_table(head, table_rows, "reference")}
<ul>
{notes}
</ul>
"""


# --- predictions ---------------------------------------------------------------------------


def _metric_cells(m: Mapping[str, Any]) -> list[str]:
    model, naive = m["model"]["price"], m["naive"]["price"]
    cells = [str(m["n"])]
    for key, spec in (("mse", ".4g"), ("mae", ".4g"), ("rmse", ".4g"), ("mape", ".2f")):
        cells += [_num(model[key], spec), _num(naive[key], spec)]
    cells += [_num(m["model"]["return"]["hit_rate"], ".1%"), _num(m.get("mse_ratio"), ".3f")]
    return cells


_METRIC_HEAD = [
    "weeks",
    "MSE",
    "naive MSE",
    "MAE",
    "naive MAE",
    "RMSE",
    "naive RMSE",
    "MAPE %",
    "naive MAPE %",
    "hit rate",
    "MSE ratio (returns)",
]


def _curves(version: Mapping[str, Any]) -> dict[str, Curve]:
    training = version.get("training") or {}
    return {
        str(key): Curve(fit["train_loss"], fit["val_loss"], int(fit["best_epoch"]))
        for key, fit in training.items()
    }


def _img(png: str, alt: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} src="data:image/png;base64,{png}" alt="{_esc(alt)}">'


def _learning_html(versions: list[Mapping[str, Any]]) -> str:
    """One small multiple per version (median and middle half of its models), then each
    version's models one by one in a collapsed ``<details>``."""
    curves = {str(v["version"]): _curves(v) for v in versions}
    summary = learning_summary_figure(curves)
    if summary is None:
        return ""
    parts = [
        "<h4>Learning curves of every version (MSE on the scaled target per epoch: the median "
        "over its models, the middle half shaded; dotted: the median restored best epoch)</h4>",
        _img(_png(summary), "learning curves, one panel per version", "small"),
    ]
    for version, by_model in curves.items():
        fig = learning_curves_figure(by_model)
        if fig is None:
            continue
        parts.append(
            f"<details><summary>Learning curves of {_esc(version)}, model by model "
            f"({len(by_model)})</summary>\n"
            + _img(_png(fig), f"learning curves of {version}", "small")
            + "</details>"
        )
    return "\n".join(parts)


def _forecast_html(predictions: pd.DataFrame) -> str:
    """Realised against predicted returns: every forecast pooled, then per ticker (collapsed)."""
    pooled = forecast_scatter_figure(predictions)
    if pooled is None:
        return ""
    per_ticker = {str(t): part for t, part in predictions.groupby("ticker", sort=False)}
    grid = forecast_scatter_grid(per_ticker)
    details = (
        "<details><summary>Realised against predicted returns, ticker by ticker</summary>\n"
        + _img(_png(grid), "realised against predicted returns per ticker")
        + "</details>"
        if grid is not None
        else ""
    )
    return (
        "<h4>Realised against predicted weekly returns over the traded weeks</h4>\n"
        "<p>Each point is one forecast: its predicted return (next close over last close, "
        "less one) on the horizontal axis, the return that followed on the vertical one. The "
        "naive forecast (next close = last close) predicts 0: the dashed line. Points in "
        "the shaded quadrants called the direction right. The axes have their own scales: "
        "the forecasts vary far less than the returns.</p>\n"
        + _img(_png(pooled), "realised against predicted returns")
        + details
    )


def _ic_cells(label: str, stats: ICStats) -> list[str]:
    return [
        _esc(label),
        _num(stats.mean, ".3f"),
        _num(stats.std, ".3f"),
        _num(stats.t_stat, ".2f"),
        _num(stats.positive, ".1%"),
        _esc(stats.weeks),
    ]


def quality_html(predictions: pd.DataFrame) -> str:
    """Forecast quality as quants measure it: IC and rank IC per week with their mean,
    t-statistic and share of positive weeks, beside the hit rate and the MSE against the naive
    forecast; and the weekly rank IC as a chart."""
    quality = ForecastQuality.model_validate(nan_to_none(predictions_quality(predictions)))
    if not quality.forecasts:
        return ""
    rows = [_ic_cells("IC (Pearson)", quality.ic), _ic_cells("rank IC (Spearman)", quality.rank_ic)]
    chart = ic_figure(predictions_ic(predictions))
    img = _img(_png(chart), "weekly rank IC") if chart is not None else ""
    t = quality.rank_ic.t_stat
    verdict = (
        "The rank IC's t-statistic is above 2: the forecasts ranked the tickers better than "
        "chance, on these weeks."
        if t is not None and t > 2
        else "The rank IC's t-statistic is not above 2: on these weeks the forecasts' ranking "
        "of the tickers cannot be told from chance."
    )
    mse = (
        f", and their MSE on returns is {_num(quality.mse_ratio, '.3f')} times the naive "
        "forecast's (below 1 is better)"
        if quality.mse_ratio is not None
        else " (position scores of a Sharpe-loss model: no MSE is given)"
    )
    return f"""
<h4>Forecast quality</h4>
<p>Each week the information coefficient (IC) is the correlation across tickers between the
predicted and the realised returns (the rank IC: the same on ranks, Spearman's); a week needs
{MIN_IC_TICKERS} tickers with a forecast. The t-statistic is the mean IC over its standard
error (the standard deviation over the square root of the number of weeks). Over
{_esc(quality.forecasts)} forecasts the direction was right
{_num(quality.hit_rate, ".1%")} of the time{mse}.
{verdict}</p>
{_table(["", "mean", "std", "t-stat", "weeks above 0", "weeks"], rows, "forecast-quality")}
{img}
<p>Bars: each week's rank IC; line: its mean over the last {IC_ROLLING_WEEKS} weeks; dashed: its
mean over the run.</p>
"""


def prediction_html(run_dir: Path, models: Mapping[str, Any]) -> str:
    """The prediction section of an LSTM run."""
    predictions = read_predictions(run_dir)
    traded = models["as_traded"]
    rows = [[_esc(t), *_metric_cells(m)] for t, m in (traded.get("per_ticker") or {}).items()]
    overall = traded.get("all") or {}
    if overall:
        rows.append(["<b>all</b>", *_metric_cells(overall)])
        ratio = overall.get("mse_ratio")
        verdict = (
            "beat the naive forecast (next close = last close)"
            if ratio is not None and ratio < 1
            else "did not beat the naive forecast (next close = last close)"
        )
        lead = (
            f"Over the traded weeks the models' forecasts {verdict}: the MSE of their "
            f"predicted returns is {_num(ratio, '.3f')} times the naive forecast's."
        )
    elif traded.get("scores"):
        lead = (
            "The model was trained on the Sharpe loss: its outputs are position scores (centred "
            "each week, in return units), not forecasts, so no forecast error is given; the "
            "forecast quality below says how well they ranked the tickers."
        )
    else:
        lead = "No forecast had a realised next close to score."
    versions = []
    for v in models["versions"]:
        test = (v.get("test") or {}).get("all") or {}
        tags = v.get("tags") or {}
        if test:
            scored = (
                f"{_esc(tags.get('test_weeks', '?'))} test weeks after its train_end: MSE "
                f"ratio {_num(test.get('mse_ratio'), '.3f')}, hit rate "
                f"{_num(test['model']['return']['hit_rate'], '.1%')}"
            )
        else:
            scored = "no test weeks after its train_end in the data it was trained with"
        versions.append(
            f"<li><code>{_esc(v['version'])}</code> ({_esc(tags.get('arch', 'lstm'))}, "
            f"{_esc(tags.get('preset', '?'))} {_esc(tags.get('mode', '?'))}, trained on "
            f"{_esc(tags.get('train_start'))} to "
            f"{_esc(tags.get('train_end'))}): {scored}.</li>"
        )
    return f"""
<h3>Predictions</h3>
<p>{lead} Metrics on prices unless marked; MAPE in percent; hit rate = share of weeks whose
predicted direction was right. Every forecast is in <code>predictions.csv</code>.</p>
{_table(["Ticker", *_METRIC_HEAD], rows, "prediction")}
<p>Each model's own test record, from the registry (weeks after its train_end up to the end of
the data it was trained with):</p>
<ul>
{"".join(versions)}
</ul>
{quality_html(predictions)}
{_forecast_html(predictions)}
{_learning_html(models["versions"])}
"""


# --- honesty -------------------------------------------------------------------------------


def leakage_rows(models: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One audit row per model: its training window, scaler window and first traded week."""
    specs = {v["version"]: v for v in models["versions"]}
    out = []
    for used in models["used"]:
        version = specs.get(used["version"], {})
        splits = version.get("splits") or {}
        train_last = [s["train"]["last"] for s in splits.values() if s["train"]["last"]]
        val_last = [s["validation"]["last"] for s in splits.values() if s["validation"]["last"]]
        first = used.get("first_decision")
        ok = first is None or used["train_end"] < first
        out.append(
            {
                "version": used["version"],
                "train_start": used["train_start"],
                "train_end": used["train_end"],
                "scaler_last_target": max(train_last) if train_last else None,
                "validation_last_target": max(val_last) if val_last else None,
                "first_decision": first,
                "last_decision": used.get("last_decision"),
                "decisions": used.get("decisions", 0),
                "trained_by_this_run": used.get("trained_by_this_run"),
                "ok": ok,
            }
        )
    return out


def _psr_sentence(what: str, c: Confidence | None) -> str:
    """One line of "how sure"; ``what`` is plain text (escaped here)."""
    if c is None or c.psr is None:
        return f"{_esc(what)}: not defined (a constant series)."
    return (
        f"{_esc(what)}: annualised Sharpe {_num(c.sharpe, '.3f')} over {_esc(c.weeks)} weeks "
        f"(skew {_num(c.skew, '.2f')}, kurtosis {_num(c.kurtosis, '.2f')}, excess "
        f"{_num(None if c.kurtosis is None else c.kurtosis - 3.0, '.2f')}; a normal law has "
        "kurtosis 3, excess 0); the "
        f"probability that the true Sharpe ratio is above 0 is <b>{_num(c.psr, '.1%')}</b>."
    )


def honesty_html(summary: RunSummary, models: Mapping[str, Any] | None) -> str:
    """The leakage audit (LSTM runs) and the probabilistic Sharpe ratios (every run)."""
    parts = ["<h3>Honesty</h3>"]
    if models is not None:
        audit = leakage_rows(models)
        rows = [
            [
                f"<code>{_esc(r['version'])}</code>",
                f"{_esc(r['train_start'])} to {_esc(r['train_end'])}",
                _esc(r["scaler_last_target"] or "n/a"),
                _esc(r["validation_last_target"] or "n/a"),
                f"{_esc(r['first_decision'] or '-')} to {_esc(r['last_decision'] or '-')}",
                _esc(r["decisions"]),
                "yes" if r["trained_by_this_run"] else "reused",
                "ok: train_end before the first decision" if r["ok"] else "<b>LEAK</b>",
            ]
            for r in audit
        ]
        head = [
            "model",
            "trained on weeks",
            "scaler fitted on targets up to",
            "validation up to",
            "decided weeks",
            "decisions",
            "trained by this run",
            "check",
        ]
        bad = [r["version"] for r in audit if not r["ok"]]
        verdict = (
            "Every model was trained on data that ended before the first week it traded."
            if not bad
            else f"<b>Models used before their train_end: {_esc(', '.join(bad))}.</b>"
        )
        fill = summary.fill
        fill_line = (
            "orders decided at the close of week t fill at the open of week t+1, sized from that "
            "open"
            if fill == "next_open"
            else "orders decided at the close of week t fill at that same close (cheat-on-close, "
            "the paper's assumption): the decision and the fill see the same price, which is "
            "optimistic"
        )
        parts += [
            "<h4>Leakage audit</h4>",
            f"<p>{verdict} A model decides at week t only if its train_end is before t "
            "(point-in-time selection); at week t its forecast reads weekly closes up to the "
            "close of t and nothing after. Each scaler was fitted on its model's training "
            "windows only (the validation windows after them were not used for scaling). "
            f"Fill timing (<code>{_esc(fill)}</code>): {fill_line}.</p>",
            _table(head, rows, "leakage"),
        ]
    if summary.short:
        parts += [
            "<h4>How sure is the result?</h4>",
            f"<p>{_esc(summary.weeks)} weeks are too short to judge: the probabilistic Sharpe "
            f"ratio, an annualised figure, is left out below {SHORT_RUN_WEEKS} weeks.</p>",
        ]
        return "\n".join(parts)
    confidence = summary.confidence
    strategy = summary.strategy_name
    lines = [
        _psr_sentence(f"{strategy} (excess over the risk-free rate)", confidence.get("strategy"))
    ]
    others = {"equal_weight": "1/N", **{b: b for b in summary.baselines}}
    for key, label in others.items():
        if f"over_{key}" in confidence:
            lines.append(
                _psr_sentence(
                    f"{strategy} minus {label} (weekly difference of returns)",
                    confidence[f"over_{key}"],
                )
            )
    items = "\n".join(f"<li>{line}</li>" for line in lines)
    parts += [
        "<h4>How sure is the result?</h4>",
        "<p>The probabilistic Sharpe ratio (Bailey and L&oacute;pez de Prado, 2012) is the "
        "probability that the true Sharpe ratio is above 0 given the one observed, the number "
        "of weeks, and the skewness and kurtosis of the weekly returns. One year of weeks is a "
        "short record: values near 50% mean the data cannot tell.</p>",
        f"<ul>\n{items}\n</ul>",
    ]
    return "\n".join(parts)


PROFILE_REASONS = {
    "cap": "a weight reached the single-stock cap",
    "vol_target": "exposure scaled down to the volatility target",
    "cvar_limit": "exposure scaled down to the CVaR limit",
    "drawdown_stop": "in cash after the drawdown stop",
    "excluded": "an excluded ticker was left out",
    "name_vol": "a name above the per-name volatility ceiling was left out",
}


def profile_html(summary: RunSummary) -> str:
    """The investor profile: its limits, and in how many weeks each one bound."""
    p = summary.profile
    if p is None:
        return ""

    def pct(value: float | None) -> str:
        return "off" if value is None else f"{value:.0%}"

    def pct2(value: float | None) -> str:
        return "off" if value is None else f"{value:.2%}"

    limits = [
        ("single-stock cap", f"{p.max_weight:.2%}"),
        ("gross exposure", f"{p.gross:.0%}"),
        ("shorts", "allowed" if p.allow_short else "not allowed"),
        ("volatility target (annual, trailing 26 weeks)", pct(p.vol_target)),
        ("CVaR limit (weekly, 95%, historical, trailing 52 weeks)", pct2(p.max_cvar_95)),
        ("drawdown stop", pct(p.max_drawdown)),
        ("excluded tickers", ", ".join(p.exclude) or "none"),
        ("per-name volatility ceiling (annual, trailing 26 weeks)", pct(p.max_name_vol)),
        ("horizon", f"{p.horizon_weeks} weeks"),
    ]
    rows = [[_esc(k), _esc(v)] for k, v in limits]
    counts = [
        [_esc(text), _esc(p.weeks_bound.get(reason, 0)), _esc(summary.weeks)]
        for reason, text in PROFILE_REASONS.items()
    ]
    return f"""
<h3>Investor profile: {_esc(p.name)}</h3>
{_table(["limit", "value"], rows, "profile")}
<p>Weeks in which each limit bound (the limits act inside the sizing rule; bounds.csv lists
every case with its figures):</p>
{_table(["limit bound", "weeks", "of"], counts, "profile-bounds")}
"""


# --- portfolio risk -----------------------------------------------------------------------

#: The rows of the portfolio risk table: (label, method, figure).
RISK_ROWS = [
    (f"{name} {label}", method, figure)
    for method, name in METHOD_LABELS.items()
    for figure, label in FIGURES.items()
]


def risk_html(
    summary: RunSummary, labels: Mapping[str, str], sorted_cf: Collection[str] = ()
) -> str:
    """The "Portfolio risk" table: weekly VaR and CVaR of each series (columns ``labels``,
    series key -> label, in Table 2's order) by method and level ('' for a summary written
    before them). The Cornish-Fisher figures of the series in ``sorted_cf`` (keys) are
    marked: their expansion bends back and sorting it moved a printed digit
    (:func:`strategies.risk.cornish_fisher_sorted`)."""
    facts = summary.risk
    if facts is None:
        return ""
    shown = {key: label for key, label in labels.items() if key in facts.series}
    rows = []
    for text, method, figure in RISK_ROWS:
        cells = [_esc(text)]
        for key in shown:
            value = getattr(getattr(facts.series[key], method), figure)
            mark = "*" if method == "cornish_fisher" and key in sorted_cf else ""
            cells.append(_num(None if value is None else value * 100, ".2f") + mark)
        rows.append(cells)
    weeks = {facts.series[key].weeks for key in shown}
    count = f"{weeks.pop()} weekly returns" if len(weeks) == 1 else "all the weekly returns"
    marked = [label for key, label in shown.items() if key in sorted_cf]
    note = (
        f'<p id="risk-sorted">* {_esc(", ".join(marked))}: the Cornish-Fisher expansion of '
        "these returns' skewness and kurtosis is not increasing (its cubic bends back in the "
        "tails, as with a short or platykurtic sample), so its textbook formulas describe no "
        "distribution and could put the CVaR below the VaR. The figures shown are those of "
        "the distribution it does describe, its quantiles sorted; treat them with "
        "caution.</p>"
        if marked
        else ""
    )
    return f"""
<h3>Portfolio risk</h3>
<p>Weekly value at risk (VaR) and conditional value at risk (CVaR) of each series, ex post over
the run's {_esc(count)}: the loss in one week, in percent of the portfolio value, that only 5%
(1%) of the weeks exceed (VaR), and the mean loss of those worst weeks (CVaR). A negative
figure means even those weeks gained; a CVaR is never below its VaR. Conventions:
{_esc(facts.rule)}.</p>
{_table(["risk (% a week)", *shown.values()], rows, "portfolio-risk")}
{note}
"""


# --- exposure and turnover -----------------------------------------------------------------


def exposure_html(summary: RunSummary, exposure: pd.DataFrame | None) -> str:
    """The strategy's exposure and turnover per week, and their summary figures ('' for a run
    written before exposure.csv existed)."""
    facts = summary.exposure
    if exposure is None or facts is None or exposure.empty:
        return ""

    def pct(value: float | None) -> str:
        return _num(None if value is None else value * 100, ".1f")

    rows = [
        [_esc("long"), pct(facts.mean_long), pct(float(exposure["long"].max()))],
        [_esc("short"), pct(facts.mean_short), pct(float(exposure["short"].min()))],
        [_esc("gross"), pct(facts.mean_gross), pct(facts.max_gross)],
        [_esc("net"), pct(facts.mean_net), pct(float(exposure["net"].abs().max()))],
    ]
    chart = _png(exposure_figure(exposure), dpi=100)
    return f"""
<h3>Exposure and turnover</h3>
<p>Long and short are the sums of the positive and negative weights held over each week, gross
their absolute sum and net their sum, as percentages of the portfolio value. Turnover is the
value traded to set up the week's positions (buys plus sells) over the portfolio value at the
close that decided it: {pct(facts.first_turnover)}% in the first week, which builds the
portfolio from cash, then {pct(facts.mean_turnover)}% a week on average, or
{pct(facts.annual_turnover)}% a year (52 weeks). Every week is in <code>exposure.csv</code>.</p>
{_table(["exposure (%)", "mean", "extreme"], rows, "exposure")}
<img src="data:image/png;base64,{chart}" alt="exposure and turnover per week">
"""


# --- explanations --------------------------------------------------------------------------


def explanations_html(doc: Mapping[str, Any] | None) -> str:
    """Why the model strategy traded: Integrated Gradients of the last decision's largest
    positions (a heatmap of input weeks x features) and each feature's permutation importance
    (explanations.json, :func:`simulator.explain.run_explanations`)."""
    if doc is None:
        return ""
    features = [str(f) for f in doc["features"]]
    positions = list(doc["positions"])
    parts = ["<h3>Explanations</h3>"]
    if positions:
        rows = [
            [
                _esc(p["ticker"]),
                _num(p["target"], "+.1%"),
                _num(p["prediction"], "+.3%"),
                _num(p["baseline_prediction"], "+.3%"),
                _num(p["prediction"] - p["baseline_prediction"], "+.3%"),
            ]
            for p in positions
        ]
        chart = _png(attribution_figure(positions, features), dpi=100)
        parts.append(
            f"""<p>The {len(positions)} largest positions of the last decision
({_esc(doc["week"])}), each forecast attributed to its input weeks with Integrated Gradients
(Captum): the forecast minus the forecast for a flat price history (every input week at the
window's last close) is split over the input weeks and features, and the parts add up to it.
Attributions say what moved this network's forecast, not what moves the stock; a forecast
close to its baseline's was driven by the network's bias, not by the prices.
<code>foliosim explain RUN_DIR --week DATE</code> explains any week in words.</p>
{
                _table(
                    ["ticker", "target", "forecast", "flat-history forecast", "attributed"],
                    rows,
                    "explained-positions",
                )
            }
{_img(chart, "Integrated Gradients of the largest positions, input weeks by features")}"""
        )
        attending = [p for p in positions if p.get("attention") is not None]
        if attending:
            weights = _png(attention_figure(attending), dpi=100)
            parts.append(
                f"""<p>The network has attention: its weights over the input weeks, for the same
positions. They say where the network looked, not what moved its forecast; they are not an
attribution (the heatmap above is).</p>
{_img(weights, "attention weights of the largest positions over their input weeks")}"""
            )
    perm = doc["permutation"]
    rows = [
        [
            _esc(f["feature"]),
            _num(f["mse"], ".3g"),
            _num(f["mse_shuffled"], ".3g"),
            _num(_ratio(f["mse_shuffled"], f["mse"]), ".3f"),
            _num(f["strategy_return"], "+.1%"),
            _num(f["strategy_return_shuffled"], "+.1%"),
        ]
        for f in perm["features"]
    ]
    parts.append(
        f"""<p>Permutation importance over the {_esc(perm["weeks"])} decision weeks: each
feature's inputs are shuffled across the weeks (week d's forecast is made by week d's model
from the inputs of another week, every ticker with the same permutation, seed
{_esc(perm["seed"])}), and the forecast MSE on next-week returns and the strategy, run again on
the shuffled forecasts through the same engine and limits, are set beside the real ones. A
feature whose shuffling leaves both unchanged was not used; one shuffle is one draw.</p>
{
            _table(
                ["feature", "forecast MSE", "shuffled", "ratio", "strategy return", "shuffled"],
                rows,
                "permutation-importance",
            )
        }"""
    )
    return "\n".join(parts)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# --- stress scenarios ----------------------------------------------------------------------


def stress_html(summary: RunSummary) -> str:
    """The stress test of the positions held at the run's last week: a bar chart of each
    scenario's return and drawdown, the table, and what was proxied or unavailable, and why."""
    facts = summary.stress
    if facts is None:
        return (
            "<h3>Stress</h3>\n<p>No stress test in this run's summary (written by a foliosim "
            "before it had one): <code>foliosim stress --run RUN_DIR</code> computes it, and a "
            "new run has it here.</p>"
        )
    notes = "".join(f"<li>{_esc(n)}</li>" for n in facts.notes)
    if not facts.scenarios:
        return f"<h3>Stress</h3>\n<ul>\n{notes}\n</ul>"
    shown = {s.name: (s.return_, s.max_drawdown) for s in facts.scenarios if s.available}
    chart = ""
    if shown:
        figure = stress_figure({k: (v[0] or 0.0, v[1] or 0.0) for k, v in shown.items()})
        chart = f'<img src="data:image/png;base64,{_png(figure, dpi=100)}" alt="stress scenarios">'
    rows = [[_esc(cell) for cell in row] for row in stress_rows(facts)]
    described = "".join(
        f"<li><b>{_esc(s.name)}</b>: {_esc(s.description)}.</li>" for s in facts.scenarios
    )
    history = (
        f"{_esc(facts.history_start)} to {_esc(facts.history_end)}"
        if facts.history_start is not None
        else "the run's data"
    )
    return f"""
<h3>Stress</h3>
<p>The positions held at the close of {_esc(facts.as_of)} (gross {_num(facts.gross, ".0%")},
net {_num(facts.net, ".0%")}, cash {_num(facts.cash, ".0%")}) put through past crises and
hypothetical shocks: {_esc(HELD_RULE)}. A historical window uses each stock's own weekly closes
({history}), from the close of the last week on or before the window's start through every week
that ends after it and on or before its end; a stock not yet listed then moves with its beta to
{_esc(facts.benchmark)} each week and is marked *. A hypothetical shock is one instant move. Beta
and rate sensitivity are OLS slopes of the weekly returns up to {_esc(facts.as_of)} only (at
least {MIN_WEEKS} weeks). Contributions are weight times the stock's move, in points of the
portfolio's return; they add up to it.</p>
{chart}
{_table(list(STRESS_HEAD), rows, "stress")}
<ul>
{described}
{notes}
</ul>
"""
