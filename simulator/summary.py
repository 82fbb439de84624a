"""The run summary (summary.json): one typed document, written and read by the same code.

:class:`RunSummary` is built by :func:`simulator.backtest.assemble` (and completed by the
backtest or the paper account), written by :func:`write_summary` and read back, every type
checked, by :func:`read_summary`; the tear sheet, ``foliosim report`` and the command line read
its attributes, never string keys.

The JSON layout: ``schema`` (:data:`SCHEMA`), one metrics object per return series at the top
level (``strategy``, ``equal_weight``, ``benchmark`` and each name in ``baselines``), then the
run facts. A summary written before the schema existed (no ``schema`` key) has the same layout
and is read as schema 1; a summary of a newer schema is refused with one line.

:func:`read_json_file` reads every JSON document of a run directory: a file over
:data:`MAX_JSON_BYTES`, nested deeper than Python's parser goes, or unreadable is refused
with one :class:`RunDirError` line, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.bounded import FileRefused, read_bounded
from simulator.errors import RunDirError
from simulator.metrics import SHORT_RUN_WEEKS

#: The summary.json schema this foliosim writes and reads.
SCHEMA = 2
#: The optimisers a run may set beside the strategy (``[report] baselines``).
BASELINES = ("min_variance", "mean_variance", "min_cvar")
#: The series every run has, besides the baselines.
MAIN_SERIES = ("strategy", "equal_weight", "benchmark")
REMEDY = "it is written by a backtest run: run the backtest again or pass the right run directory"
#: The largest JSON document of a run directory read (summary.json, models.json, ...): a real
#: one is tens of kilobytes, a few megabytes for hundreds of tickers; a larger file is refused
#: before it is read.
MAX_JSON_BYTES = 64 * 2**20


class _Part(BaseModel):
    # Unknown keys are ignored: a later foliosim may add facts an older report need not show.
    model_config = ConfigDict(frozen=True, extra="ignore")


class SeriesStats(_Part):
    """:func:`simulator.metrics.summarize` of one weekly return series (fractions; Sharpe and
    Sortino are null when undefined)."""

    total_return: float
    cagr: float
    volatility: float
    sharpe: float | None
    sortino: float | None
    max_drawdown: float


class Confidence(_Part):
    """:func:`simulator.metrics.probabilistic_sharpe` of a series of (excess) returns."""

    weeks: int
    sharpe: float | None
    skew: float | None
    kurtosis: float | None
    psr: float | None


class EngineRun(_Part):
    """Orders and final value of a baseline optimiser's own engine run."""

    orders_filled: int
    orders_rejected: int
    final_value: float


class StockFigures(_Part):
    """One ticker's row of the per-stock analytics (:mod:`simulator.analytics`)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    ticker: str
    weeks: int
    risk: str


class Analytics(_Part):
    """The per-stock analytics as of the last week (:func:`simulator.analytics.analytics_json`)."""

    as_of: dt.date
    window: int
    min_weeks: int
    var_level: float
    var_rule: str
    risk_rule: str
    stocks: list[StockFigures]


class RiskFigures(_Part):
    """Weekly VaR and CVaR at 95% and 99% by one method, as positive loss fractions
    (:func:`strategies.risk.risk_figures`; null below :data:`strategies.risk.MIN_WEEKS`
    returns)."""

    var_95: float | None
    cvar_95: float | None
    var_99: float | None
    cvar_99: float | None


class SeriesRisk(_Part):
    """The risk figures of one return series, by method, over its ``weeks`` returns."""

    weeks: int
    historical: RiskFigures
    gaussian: RiskFigures
    cornish_fisher: RiskFigures


class PortfolioRisk(_Part):
    """Ex-post risk of each return series of the run (``strategy``, ``equal_weight``,
    ``benchmark``, each baseline) over all its weekly returns, and the convention in words
    (:data:`strategies.risk.RULE`)."""

    rule: str
    series: dict[str, SeriesRisk]


class ProfileFacts(_Part):
    """The investor profile's limits, and in how many weeks each bound."""

    name: str
    max_weight: float
    gross: float
    allow_short: bool
    horizon_weeks: int
    vol_target: float | None
    max_drawdown: float | None
    exclude: list[str]
    weeks_bound: dict[str, int]
    max_name_vol: float | None = None
    max_cvar_95: float | None = None


class ModelUse(_Part):
    """A registry version the run traded on."""

    version: str
    arch: str | None = None  # None in a summary written before architectures (an LSTM)
    train_start: str | None = None
    train_end: str | None
    trained_by_this_run: bool
    first_decision: str | None
    last_decision: str | None
    decisions: int
    orders: int


class ICStats(_Part):
    """A weekly information coefficient over the weeks that have one
    (:func:`models.metrics.ic_stats`): mean, standard deviation, t-statistic
    (``mean / (std / sqrt(weeks))``) and the share of weeks above 0."""

    weeks: int
    mean: float | None
    std: float | None
    t_stat: float | None
    positive: float | None


class ForecastQuality(_Part):
    """Forecast quality over the traded weeks (:func:`models.metrics.forecast_quality`): the
    IC and rank IC (Spearman) of predicted against realised returns across tickers each week,
    the share of forecasts whose direction was right, and the MSE on returns over the naive
    forecast's."""

    forecasts: int
    ic: ICStats
    rank_ic: ICStats
    hit_rate: float | None
    mse_ratio: float | None


class PredictionFacts(_Part):
    """How many forecasts the strategy made, their MSE against the naive forecast's, and
    their quality as quants measure it (absent from summaries written before it existed)."""

    weeks: int
    forecasts: int
    mse_ratio: float | None
    quality: ForecastQuality | None = None
    #: True when the model was trained on the Sharpe loss: its outputs are position scores,
    #: not forecasts, and no MSE is given.
    scores: bool = False


class ExposureFacts(_Part):
    """What the strategy held and traded (:mod:`simulator.exposure`), as fractions of the
    portfolio value: mean long (>= 0), short (<= 0), gross and net exposure over the return
    weeks, the largest gross exposure, and the weekly turnover (buys plus sells): of the first
    week (the portfolio built from cash) and on average over the weeks after it, with its
    annual rate (times 52; None for a run of one week)."""

    weeks: int
    mean_long: float
    mean_short: float
    mean_gross: float
    mean_net: float
    max_gross: float
    first_turnover: float
    mean_turnover: float | None
    annual_turnover: float | None


class CostFacts(_Part):
    """The costs of the run (``[backtest]``: rates as fractions, ``slippage`` a fraction of the
    price or an amount per share) and what the strategy paid in all (cash; None when not
    known, as in a paper account's report, whose journal keeps only each week's cash)."""

    commission: float
    slippage: float
    slippage_kind: Literal["perc", "fixed"]
    borrow_fee: float
    cash_rate: float
    margin_rate: float
    commission_paid: float | None = None
    slippage_paid: float | None = None
    borrow_fees_paid: float | None = None
    cash_interest_earned: float | None = None
    margin_interest_paid: float | None = None


class ReplayFacts(_Part):
    """A paper account's report: the account and its pinned model."""

    account: str
    model_version: str
    model_train_end: str | None
    allow_later_model: bool
    look_ahead: bool
    start_week: str
    weeks: int


class StressContributor(_Part):
    """One position's part in a stress scenario (:mod:`simulator.stress`): its weight, the
    stock's move over the scenario and ``contribution = weight * move`` (a fraction of the
    portfolio value; the contributions of every position add up to the scenario's return)."""

    ticker: str
    weight: float
    move: float
    contribution: float
    proxied: bool = False


class StressEstimate(_Part):
    """A held stock's beta to the benchmark and its sensitivity to the yield (return per
    percentage point of weekly change), estimated up to the as-of week, and the weekly returns
    each rests on (None below the minimum; :mod:`simulator.stress`)."""

    ticker: str
    beta: float | None
    beta_weeks: int
    rate_sensitivity: float | None
    rate_weeks: int


class StressScenario(_Part):
    """One stress scenario's figures (:mod:`simulator.stress`). In JSON the portfolio's return
    over the scenario is ``return`` (negative for a loss); an unavailable scenario has
    ``available = false``, a ``reason`` and no figures."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
    name: str
    kind: Literal["historical", "hypothetical"]
    description: str
    available: bool
    reason: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    base_week: dt.date | None = None
    first_week: dt.date | None = None
    last_week: dt.date | None = None
    weeks: int = 0
    return_: float | None = Field(default=None, alias="return")
    worst_week: dt.date | None = None
    worst_week_return: float | None = None
    max_drawdown: float | None = None
    contributors: list[StressContributor] = Field(default_factory=list)
    proxied: list[str] = Field(default_factory=list)


class StressFacts(_Part):
    """The stress test of the weights held at ``as_of`` (:func:`simulator.stress.stress`):
    the weights and their exposure, the estimates behind the hypothetical shocks, every
    scenario, and notes (an empty portfolio has no scenario and says so in ``notes``)."""

    as_of: dt.date
    source: str
    benchmark: str
    yield_series: str | None = None
    history_start: dt.date | None = None
    history_end: dt.date | None = None
    weights: dict[str, float] = Field(default_factory=dict)
    gross: float = 0.0
    net: float = 0.0
    cash: float = 1.0
    estimates: list[StressEstimate] = Field(default_factory=list)
    scenarios: list[StressScenario] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RunSummary(_Part):
    """summary.json (see the module docstring).

    Facts a summary written by an older foliosim may lack are optional; what the tear sheet
    needs is required.

    Attributes
    ----------
    series
        Metrics per return series: ``strategy``, ``equal_weight``, ``benchmark`` and each
        baseline (in JSON: top-level keys).
    strategy_name, benchmark_name
        The labels of the strategy and the index.
    confidence
        Probabilistic Sharpe ratios: ``strategy`` (excess over the risk-free rate) and
        ``over_<series>`` (active returns over 1/N and each baseline).
    baselines
        The baseline optimisers run beside the strategy, with their engine facts.
    data_warnings
        What the data check (``data.check``) warned about: dropped impossible rows, suspicious
        jumps; one line each.
    delisted
        The tickers whose data ended while the strategy held them, and the week each position
        was closed at its last close (orders.csv status ``Delisted``).
    costs
        The cost settings and the strategy's totals (None in a summary written before them).
    risk
        Weekly VaR and CVaR of every series (None in a summary written before them).
    stress
        The stress test of the weights held at the last week (None in a summary written
        before it existed).
    """

    schema_version: int = SCHEMA
    series: dict[str, SeriesStats]
    weeks: int = Field(ge=1)
    start: dt.date
    end: dt.date
    first_decision: dt.date | None = None
    fill: Literal["next_open", "close"]
    risk_free: float | str
    risk_free_annual_mean: float | None = None
    strategy_name: str = Field(min_length=1)
    benchmark_name: str = Field(min_length=1)
    data_source: str = ""
    data_note: str
    tickers: list[str] = Field(default_factory=list)
    orders_filled: int | None = None
    orders_rejected: int
    final_value: float | None = None
    cash: float | None = None
    confidence: dict[str, Confidence] = Field(default_factory=dict)
    reference: Literal["", "paper2023"] = ""
    analytics: Analytics | None = None
    baselines: dict[str, EngineRun] = Field(default_factory=dict)
    profile: ProfileFacts | None = None
    models: list[ModelUse] = Field(default_factory=list)
    prediction: PredictionFacts | None = None
    replay: ReplayFacts | None = None
    data_warnings: list[str] = Field(default_factory=list)
    delisted: dict[str, dt.date] = Field(default_factory=dict)
    costs: CostFacts | None = None
    exposure: ExposureFacts | None = None
    risk: PortfolioRisk | None = None
    stress: StressFacts | None = None

    @model_validator(mode="before")
    @classmethod
    def _gather_series(cls, raw: Any) -> Any:
        """JSON keeps each series' metrics at the top level; gather them into ``series``."""
        if not isinstance(raw, dict) or "series" in raw:
            return raw
        schema = raw.get("schema", 1)
        raw = {k: v for k, v in raw.items() if k != "schema"} | {"schema_version": schema}
        baselines = raw.get("baselines") or {}
        names = [*MAIN_SERIES, *(baselines if isinstance(baselines, dict) else [])]
        missing = [n for n in names if n not in raw]
        if missing:
            raise ValueError(f"no metrics for series {', '.join(map(str, missing))}")
        return {**raw, "series": {n: raw[n] for n in names}}

    @model_validator(mode="after")
    def _check(self) -> RunSummary:
        if self.schema_version > SCHEMA:
            raise ValueError(
                f"schema {self.schema_version} is newer than this foliosim reads ({SCHEMA}); "
                "upgrade foliosim"
            )
        for name in MAIN_SERIES:
            if name not in self.series:
                raise ValueError(f"no metrics for series {name}")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"baselines {', '.join(unknown)}: not one of {', '.join(BASELINES)}")
        if isinstance(self.risk_free, str) and self.risk_free_annual_mean is None:
            raise ValueError("a named risk-free series needs risk_free_annual_mean")
        return self

    @property
    def baseline_names(self) -> list[str]:
        return list(self.baselines)

    @property
    def short(self) -> bool:
        """Fewer weekly returns than :data:`simulator.metrics.SHORT_RUN_WEEKS`: figures are
        shown for the period, never annualised."""
        return self.weeks < SHORT_RUN_WEEKS

    def to_json(self) -> dict[str, Any]:
        """The JSON document (series at the top level, NaN as null)."""
        doc = self.model_dump(mode="json", exclude={"series", "schema_version"})
        for section in _OPTIONAL_SECTIONS:  # a run without a profile has no profile object
            if not doc.get(section):
                doc.pop(section, None)
        ordered = {"schema": SCHEMA, **{n: s.model_dump() for n, s in self.series.items()}}
        return nan_to_none({**ordered, **doc})


#: Parts of the summary only some runs have; absent from the JSON when a run has none.
_OPTIONAL_SECTIONS = ("profile", "replay", "prediction", "models", "exposure", "risk", "stress")


def nan_to_none(value: Any) -> Any:
    """JSON-safe, as the summary holds numbers: NaN and infinities become None (null)."""
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary(summary: RunSummary, path: Path) -> None:
    """Write ``summary`` as JSON to ``path``."""
    text = json.dumps(summary.to_json(), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def read_json_file(path: Path, remedy: str = REMEDY) -> Any:
    """The JSON document in ``path``, a regular file of a run directory.

    Raises
    ------
    RunDirError
        One line (ending with ``remedy``): the file is missing, not a regular file, larger than
        :data:`MAX_JSON_BYTES`, unreadable, not UTF-8, not JSON, or nested too deeply for
        Python's parser (a hostile ``[[[...]]]`` raises RecursionError there).
    """
    try:
        data = read_bounded(path, MAX_JSON_BYTES)
    except FileRefused as why:
        limit = f"the limit of {MAX_JSON_BYTES // 2**20} MB"
        what = {
            "missing": "not found",
            "too large": (
                f"is too large ({why.size / 2**20:,.1f} MB, over {limit})"
                if why.size is not None
                else f"is too large (over {MAX_JSON_BYTES // 2**20} MB)"
            ),
            "unreadable": f"cannot be read ({why.detail})",
        }.get(why.reason, "is not a regular file")
        raise RunDirError(f"{path} {what}; {remedy}") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is not valid JSON (not UTF-8 text); {remedy}") from None
    except RecursionError:
        raise RunDirError(f"{path} is not valid JSON (nested too deeply); {remedy}") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of over 4300 digits
        reason = " ".join(str(exc).split())
        raise RunDirError(f"{path} is not valid JSON ({reason}); {remedy}") from None


def read_summary(path: Path) -> RunSummary:
    """Read and check summary.json; one :class:`RunDirError` line for anything wrong
    (see :func:`read_json_file`)."""
    raw = read_json_file(path)
    if not isinstance(raw, dict):
        raise RunDirError(f"{path} must hold a JSON object; {REMEDY}")
    raw.setdefault("schema", 1)  # written before the schema existed: the same layout
    return parse_summary(raw, str(path))


def parse_summary(raw: dict[str, Any], where: str = "summary.json") -> RunSummary:
    """Validate a summary document; one :class:`RunDirError` line naming the bad field."""
    try:
        return RunSummary.model_validate(nan_to_none(raw))
    except RecursionError:  # parsed, but too deep for the validation's recursion
        raise RunDirError(f"{where}: a value is nested too deeply; {REMEDY}") from None
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if p != "series")
        got = first.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float | bool) else ""
        field = f"'{loc}': " if loc else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise RunDirError(f"{where}: {field}{msg}{shown}; {REMEDY}") from None
