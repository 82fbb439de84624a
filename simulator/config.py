"""The TOML config: frozen pydantic models, loading, and ``--set section.key=value`` overrides.

Relative paths in a config (``data.path``) are relative to the current directory.

:func:`load_config` is the one place a config file is read, for every command: a file over
:data:`MAX_CONFIG_BYTES`, not UTF-8, not TOML or nested deeper than the TOML parser goes is
refused with one :class:`~simulator.errors.ConfigError` line.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.errors import SpecError
from models.features import check_features
from models.names import MODEL_NAME, TICKER_RULE, is_ticker
from models.spec import ARCHS, LIMIT_FIELDS, LOSSES, Arch, Loss, ModelSpec
from simulator.bounded import FileRefused, read_bounded
from simulator.errors import ConfigError, did_you_mean
from strategies.profile import Profile, preset
from strategies.rebalance import Costs
from strategies.sizing import Limits

#: The largest config file read: a config is a few kilobytes; a larger file is refused unread.
MAX_CONFIG_BYTES = 2**20
#: The most parts a dotted key may have (``a.b.c`` has 3): tomllib's time grows with the square
#: of a key's parts (50,000 parts: over a minute), so a longer chain is refused before parsing.
MAX_KEY_PARTS = 64
_TOO_DEEP = "nested too deeply"
_TABLES = "write [section] tables of key = value lines"
# MAX_KEY_PARTS dotted parts in a row (bare or quoted), each tried from a part's start only
# (possessive: linear time on any text); looked for outside whole-line comments.
_COMMENT_LINE = re.compile(r"^[ \t]*#.*$", flags=re.MULTILINE)
_DOTTED = re.compile(
    rf"""(?<![\w"'-])(?:(?:[\w-]++|"[^"\n]{{0,200}}+"|'[^'\n]{{0,200}}+')[ \t]*+\.[ \t]*+)"""
    rf"{{{MAX_KEY_PARTS}}}"
)


def ticker_name(value: str) -> str:
    """One ticker, benchmark or yield series name, upper-cased, an index's ``^`` dropped;
    refused unless it is in the documented character set (:mod:`models.names`)."""
    name = value.strip().upper().lstrip("^")
    if not is_ticker(name):
        raise ValueError(f"{value!r} is not a ticker name: {TICKER_RULE}")
    return name


def ticker_list(value: Any) -> Any:
    """Ticker names as an upper-case tuple; ``--set x=AAPL,MSFT`` arrives as one string.
    Anything else is returned for pydantic to reject."""
    if isinstance(value, str):
        value = [t for t in value.split(",") if t.strip()]
    if isinstance(value, list | tuple):
        return tuple(ticker_name(t) if isinstance(t, str) else t for t in value)
    return value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Section):
    """``[data]``: where prices come from, and how strictly their rows are checked
    (``check``, see :func:`simulator.data.sources.check_rows`): ``"strict"`` refuses
    impossible rows, ``"warn"`` drops them with a warning, ``"off"`` checks nothing; both
    ``strict`` and ``warn`` warn about suspicious jumps."""

    source: Literal["bundled", "csv", "yahoo"] = "bundled"
    path: str | None = None
    tickers: tuple[str, ...] | None = None
    benchmark: str = "SP500"
    start: dt.date = dt.date(2010, 1, 1)
    end: dt.date = dt.date(2022, 12, 31)
    check: Literal["strict", "warn", "off"] = "strict"

    @field_validator("tickers", mode="before")
    @classmethod
    def _split_tickers(cls, value: Any) -> Any:
        value = ticker_list(value)
        if isinstance(value, tuple):
            cleaned = list(value)
            if not cleaned:
                raise ValueError("give at least one ticker, or leave tickers out")
            dupes = sorted({t for t in cleaned if cleaned.count(t) > 1})
            if dupes:
                raise ValueError(f"duplicate tickers: {', '.join(dupes)}")
            return tuple(cleaned)
        return value

    @field_validator("benchmark")
    @classmethod
    def _upper(cls, value: str) -> str:
        if not value.strip().lstrip("^"):
            raise ValueError("name an index series, e.g. 'SP500' (bundled) or 'IXIC'")
        return ticker_name(value)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.end <= self.start:
            raise ValueError(f"data.end ({self.end}) must be after data.start ({self.start})")
        if self.source == "csv" and not self.path:
            raise ValueError("source 'csv' needs data.path, a folder of TICKER.csv files")
        return self


#: The built-in strategies (``simulator.plan.STRATEGIES`` builds their rules).
BUILTIN_STRATEGIES = ("equal_weight", "lstm_signal", "min_variance", "mean_variance", "min_cvar")
#: A user's rule: ``package.module:ClassName``.
_USER_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


class BacktestConfig(_Section):
    """``[backtest]``: the simulated period, the strategy and the broker. ``strategy`` is a
    built-in name or a user's rule, ``"package.module:ClassName"`` (see
    :mod:`strategies.rule`)."""

    start: dt.date = dt.date(2020, 1, 1)
    end: dt.date = dt.date(2022, 12, 31)
    strategy: str = "equal_weight"
    # Finite and within what whole-share sizing can count: 1,000 .. 1e12 (a 1e400 in TOML is
    # infinity, and a cash of 1 buys no share, so the run would hold nothing).
    cash: Annotated[float, Field(ge=1_000, le=1e12, allow_inf_nan=False)] = 10_000_000.0
    fill: Literal["next_open", "close"] = "next_open"
    commission: Annotated[float, Field(ge=0, lt=0.1)] = 0.0
    min_history: Annotated[int, Field(ge=1, le=520)] = 26
    # Costs beyond commission (strategies.rebalance.Costs), all off by default.
    slippage: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    slippage_kind: Literal["perc", "fixed"] = "perc"
    borrow_fee: Annotated[float, Field(ge=0, le=1)] = 0.0
    cash_rate: Annotated[float, Field(ge=-0.05, le=0.5)] = 0.0
    margin_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    # Seconds a user's rule may take over one decision before the run stops with one line
    # (generous: a rule that solves or fetches something legitimately takes a while).
    rule_timeout: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 300.0

    @field_validator("strategy")
    @classmethod
    def _check_strategy(cls, value: str) -> str:
        value = value.strip()
        if value in BUILTIN_STRATEGIES or _USER_RULE.fullmatch(value):
            return value
        hint = did_you_mean(value, BUILTIN_STRATEGIES)
        raise ValueError(
            f"unknown strategy{hint or ''}: use one of {', '.join(BUILTIN_STRATEGIES)} or a "
            "rule of yours as 'package.module:ClassName'"
        )

    @model_validator(mode="after")
    def _check(self) -> BacktestConfig:
        if self.end <= self.start:
            raise ValueError(
                f"backtest.end ({self.end}) must be after backtest.start ({self.start})"
            )
        if self.slippage_kind == "perc" and self.slippage >= 0.1:
            raise ValueError(
                f"backtest.slippage ({self.slippage}) is a fraction of the price with "
                'slippage_kind = "perc" and must be below 0.1 (e.g. 0.0005 = 5 bp); for an '
                'amount per share set slippage_kind = "fixed"'
            )
        return self

    def costs(self) -> Costs:
        """The six cost fields as the engine takes them (:class:`strategies.rebalance.Costs`)."""
        return Costs(
            self.commission,
            self.slippage,
            self.slippage_kind,
            self.borrow_fee,
            self.cash_rate,
            self.margin_rate,
        )


class StrategyConfig(_Section):
    """``[strategy]``: limits applied by the sizing rule."""

    max_weight: Annotated[float, Field(gt=0, le=1)] = 1 / 3
    gross: Annotated[float, Field(gt=0, le=2)] = 1.0
    allow_short: bool = True

    def limits(self) -> Limits:
        """These limits as the sizing rules take them."""
        return Limits(self.max_weight, self.gross, self.allow_short)


class BaselineConfig(_Section):
    """``[baseline]``: the conventional optimisers (``strategy = "min_variance"``,
    ``"mean_variance"`` or ``"min_cvar"``, :mod:`strategies.optimize`), re-estimated every
    week on a trailing window. With shorts allowed, ``gross`` is their net exposure and
    ``max_gross`` bounds ``sum(|w|)``."""

    window: Annotated[int, Field(ge=8, le=1040)] = 104
    min_weeks: Annotated[int, Field(ge=4, le=1040)] = 26
    risk_aversion: Annotated[float, Field(gt=0)] = 1.0
    max_gross: Annotated[float, Field(gt=0, le=4)] = 1.6

    @model_validator(mode="after")
    def _check(self) -> BaselineConfig:
        if self.min_weeks > self.window:
            raise ValueError(
                f"baseline.min_weeks ({self.min_weeks}) must not exceed window ({self.window})"
            )
        return self


class ProfileConfig(_Section):
    """``[profile]``: an investor profile (``strategies.profile``). ``name`` picks a preset
    (``conservative``, ``moderate``, ``aggressive``) or ``custom`` (starting from
    ``[strategy]``'s limits); any field given here overrides it. Left empty with no field set,
    there is no profile and ``[strategy]``'s limits apply."""

    name: Literal["", "conservative", "moderate", "aggressive", "custom"] = ""
    horizon_weeks: Annotated[int, Field(ge=1, le=1040)] | None = None
    allow_short: bool | None = None
    max_weight: Annotated[float, Field(gt=0, le=1)] | None = None
    gross: Annotated[float, Field(gt=0, le=2)] | None = None
    vol_target: Annotated[float, Field(ge=0, le=2)] | None = None  # 0 turns a preset's off
    max_drawdown: Annotated[float, Field(ge=0, lt=1)] | None = None  # 0 = no stop
    max_name_vol: Annotated[float, Field(ge=0, le=5)] | None = None  # 0 turns a preset's off
    max_cvar_95: Annotated[float, Field(ge=0, le=1)] | None = None  # weekly loss; 0 = off
    exclude: tuple[str, ...] = ()

    _split = field_validator("exclude", mode="before")(ticker_list)

    def is_set(self) -> bool:
        return bool(self.name) or any(
            v not in (None, ()) for k, v in self.model_dump().items() if k != "name"
        )


#: The conventional optimisers a report can set beside the strategy (``[report] baselines``).
Baseline = Literal["min_variance", "mean_variance", "min_cvar"]


class ReportConfig(_Section):
    """``[report]``: the risk-free rate (annual fraction, or a yield series name in percent),
    published figures to set beside ours (``reference = "paper2023"``: seed 001's Table 2),
    and the conventional baselines run beside the strategy as extra Table 2 columns
    (``baselines = ["min_variance", "mean_variance", "min_cvar"]``, sized by ``[baseline]``).
    """

    risk_free: float | str = 0.0
    reference: Literal["", "paper2023"] = ""
    baselines: tuple[Baseline, ...] = ()

    @field_validator("baselines", mode="before")
    @classmethod
    def _split_baselines(cls, value: Any) -> Any:
        if isinstance(value, str):  # --set report.baselines=min_variance,mean_variance
            value = [b.strip() for b in value.split(",") if b.strip()]
        if isinstance(value, list | tuple) and len(set(value)) < len(value):
            raise ValueError(f"{list(value)} names a baseline twice")
        return value

    @field_validator("risk_free")
    @classmethod
    def _check_rf(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            if not value.strip().lstrip("^"):
                raise ValueError("give an annual fraction such as 0.02 or a series name")
            value = ticker_name(value)
        elif not -0.05 <= value <= 0.5:
            raise ValueError(f"{value} is not an annual fraction (e.g. 0.02 for 2%)")
        return value


class ModelConfig(_Section):
    """``[model]``: the forecasters trained by ``foliosim train``.

    ``arch`` is the network: ``lstm``, ``lstm_attention`` or ``transformer``
    (:mod:`models.net`). ``features`` are its inputs (``close``, ``volume``, ``index``,
    ``rate``, ``range``; :mod:`models.features`); ``loss`` is ``mse`` (forecasts) or
    ``sharpe`` (one pooled network sized into a portfolio; ``mode`` then defaults to
    ``pooled``, :mod:`models.portfolio`); left out with ``mse``, ``mode`` is
    ``per_ticker``. Architecture fields left out take the preset's value (``paper``: 2 x 256,
    Adam, lr 1e-3, a transformer's d_model 128; ``small``: 2 x 32, AdamW).
    ``train_end`` is the last week the model may see; left out, it is the last week before
    ``backtest.start``. A backtest of ``lstm_signal`` trains (or reuses)
    a model up to ``train_end`` and, with ``retrain_every = K``, one more every K weeks;
    ``version`` (``NAME/V`` or ``NAME@alias``) pins one registered version instead.
    """

    name: str = "foliosim-lstm"
    preset: Literal["paper", "small"] = "paper"
    mode: Literal["per_ticker", "pooled"] | None = None
    scaling: Literal["window", "ticker"] = "window"
    window: Annotated[int, Field(ge=2, le=520)] = 24
    arch: Arch = "lstm"
    features: list[str] = Field(default_factory=lambda: ["close"])
    loss: Loss = "mse"
    hidden: Annotated[int, Field(ge=1, le=4096)] | None = None
    layers: Annotated[int, Field(ge=1, le=8)] | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    optimizer: Literal["adam", "adamw"] | None = None
    lr: Annotated[float, Field(gt=0, le=1)] | None = None
    weight_decay: Annotated[float, Field(ge=0, le=1)] | None = None
    batch: Annotated[int, Field(ge=1, le=65536)] | None = None
    train_end: dt.date | None = None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    max_epochs: Annotated[int, Field(ge=1, le=100_000)] = 200
    patience: Annotated[int, Field(ge=1, le=100_000)] = 10
    seed: Annotated[int, Field(ge=0)] = 0
    retrain_every: Annotated[int, Field(ge=0, le=520)] = 0
    version: str | None = None
    threads: Annotated[int, Field(ge=0, le=1024)] = 0
    registry_uri: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not MODEL_NAME.fullmatch(value):
            raise ValueError(
                "use letters, digits, '_', '.' or '-', starting with a letter or digit, at most "
                "100 characters (e.g. 'paper12-lstm')"
            )
        return value

    @field_validator("arch", "loss", mode="before")
    @classmethod
    def _check_choice(cls, value: Any, info: ValidationInfo) -> Any:
        what, choices = {"arch": ("architecture", ARCHS), "loss": ("loss", LOSSES)}[
            str(info.field_name)
        ]
        if isinstance(value, str) and value not in choices:
            raise ValueError(
                f"unknown {what} {value!r}{did_you_mean(value, choices)}: use one of "
                f"{', '.join(choices)}"
            )
        return value

    @field_validator("features", mode="before")
    @classmethod
    def _check_features(cls, value: Any) -> Any:
        if isinstance(value, str):  # --set model.features=close,volume
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            try:
                return list(check_features(value))
            except SpecError as err:
                raise ValueError(str(err).removeprefix("model.features ")) from None
        return value

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.version and self.retrain_every:
            raise ValueError(
                f"model.version ({self.version}) pins one version, so model.retrain_every "
                f"must be 0 (got {self.retrain_every}); drop one of them"
            )
        try:  # the spec's own checks, e.g. a transformer's d_model against its heads
            self.spec()
        except SpecError as err:
            raise ValueError(str(err)) from None
        return self

    def spec(self) -> ModelSpec:
        """This section as a :class:`~models.spec.ModelSpec` (its preset filled in), the
        Sharpe loss's limits at their default: :func:`simulator.training.model_spec` gives a
        run's spec, with the run's limits."""
        # Every spec field this section has (all but name and preset, given first, and the
        # Sharpe loss's limits, which the run's limits give: simulator.training.model_spec);
        # a field left out (None) takes the preset's value.
        skip = ("name", "preset", *LIMIT_FIELDS)
        shared = [f.name for f in fields(ModelSpec) if f.name not in skip]
        return ModelSpec.from_preset(
            self.name, self.preset, **{name: getattr(self, name) for name in shared}
        )


#: The ``[profile]`` limits that 0 turns off.
_OFF_AT_ZERO = ("vol_target", "max_drawdown", "max_name_vol", "max_cvar_95")


class Config(_Section):
    """A whole foliosim config."""

    data: DataConfig = DataConfig()
    backtest: BacktestConfig = BacktestConfig()
    strategy: StrategyConfig = StrategyConfig()
    report: ReportConfig = ReportConfig()
    model: ModelConfig = ModelConfig()
    profile: ProfileConfig = ProfileConfig()
    baseline: BaselineConfig = BaselineConfig()

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.backtest.start < self.data.start or self.backtest.start > self.data.end:
            raise ValueError(
                f"backtest.start ({self.backtest.start}) must lie within the data range "
                f"{self.data.start}..{self.data.end}"
            )
        if self.backtest.end > self.data.end:
            raise ValueError(
                f"backtest.end ({self.backtest.end}) is after data.end ({self.data.end}); "
                "extend data.end or shorten the backtest"
            )
        if self.backtest.strategy in self.report.baselines:
            raise ValueError(
                f"report.baselines lists {self.backtest.strategy}, the strategy itself; "
                "remove it from the baselines"
            )
        end = self.model.train_end
        if end is not None and not self.data.start < end <= self.data.end:
            raise ValueError(
                f"model.train_end ({end}) must lie within the data range "
                f"{self.data.start}..{self.data.end}"
            )
        return self

    def investor_profile(self) -> Profile | None:
        """The ``[profile]`` as a :class:`~strategies.profile.Profile`, or None without one."""
        p = self.profile
        if not p.is_set():
            return None
        changes: dict[str, Any] = {
            k: (None if k in _OFF_AT_ZERO and v == 0 else v)
            for k, v in p.model_dump().items()
            if k not in ("name", "exclude") and v is not None
        }
        s = self.strategy
        if p.name in ("", "custom"):
            limit_keys = ("max_weight", "gross", "allow_short")
            limits = Limits(**{k: changes.pop(k, getattr(s, k)) for k in limit_keys})
            base = Profile("custom", limits)
            profile = replace(base, **changes)
        else:
            profile = preset(p.name, **changes)
        return replace(profile, exclude=frozenset(p.exclude))

    def decision_profile(self) -> Profile:
        """The profile a one-off decision (``recommend``, a config's stress weights) is sized
        and guarded by: the ``[profile]``, else ``[strategy]``'s limits as a custom one."""
        return self.investor_profile() or Profile("custom", self.strategy.limits())

    def model_train_end(self) -> dt.date:
        """``model.train_end``, or the day before ``backtest.start`` when it is left out."""
        return self.model.train_end or self.backtest.start - dt.timedelta(days=1)

    def to_toml(self) -> str:
        """The resolved config as TOML (every field, defaults included)."""
        raw = self.model_dump(mode="json", exclude_none=True)
        return tomli_w.dumps(raw)


def _parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal when it parses as one, else the plain string."""
    try:
        return _loads(f"v = {text}", f"--set value {text[:20]!r}", "give a plain value")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _loads(text: str, where: str, remedy: str = _TABLES) -> dict[str, Any]:
    """``tomllib.loads(text)``; a key of over :data:`MAX_KEY_PARTS` parts, or nesting deeper
    than the parser's recursion goes, is one :class:`ConfigError` line naming ``where``.
    (tomllib.TOMLDecodeError is left to the caller.)"""
    found = _DOTTED.search(_COMMENT_LINE.sub("", text))
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise ConfigError(
            f"{where}: line {line}: a dotted key of more than {MAX_KEY_PARTS} parts is "
            f"{_TOO_DEEP}; {remedy}"
        )
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"{where}: not valid TOML: a value is {_TOO_DEEP}; {remedy}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``section.key=value`` applied."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, field = key.strip().partition(".")
        if not sep or not dot or not section or not field:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. data.source=csv")
        model = Config.model_fields.get(section)
        if model is None:
            hint = did_you_mean(section, Config.model_fields)
            raise ConfigError(f"--set {item!r}: unknown section '{section}'{hint}")
        fields = model.annotation.model_fields  # type: ignore[union-attr]
        if field not in fields:
            hint = did_you_mean(field, fields)
            raise ConfigError(f"--set {item!r}: unknown field '{section}.{field}'{hint}")
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(
                f"--set {item!r}: the config sets {section} = {table!r}, not a [{section}] "
                f"table; write [{section}] with key = value lines"
            )
        table[field] = _parse_value(value.strip())
    return out


def _format_error(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
        sections = ", ".join(f"[{name}]" for name in Config.model_fields)
        hint = did_you_mean(loc, Config.model_fields)
        return f"{where}: unknown section [{loc}]{hint}; the sections are {sections}{more}"
    if first["type"] == "model_type" and len(first["loc"]) == 1:
        return (
            f"{where}: {loc} must be a [{loc}] table of key = value lines "
            f"(got {first.get('input')!r}){more}"
        )
    if first["type"] == "extra_forbidden":
        section, _, field = loc.rpartition(".")
        known = Config.model_fields if not section else _section_fields(section)
        msg = f"unknown field{did_you_mean(field, known)}"
    got = first.get("input")
    shown = first["type"] == "extra_forbidden" or (isinstance(got, str) and repr(got) in msg)
    if isinstance(got, str | int | float | bool) and not shown:
        msg = f"{msg} (got {got!r})"
    # Model-level checks name their fields in the message already.
    label = f"{loc}: " if loc and "." in loc else ""
    return f"{where}: {label}{msg}{more}"


def _section_fields(section: str) -> list[str]:
    info = Config.model_fields.get(section)
    return list(info.annotation.model_fields) if info is not None else []  # type: ignore[union-attr]


def config_from_dict(raw: dict[str, Any], where: str = "config") -> Config:
    """Validate a raw mapping; errors name the offending field."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        try:
            message = _format_error(err, where)
        except RecursionError:  # a deep value (dotted keys nest without limit) to show
            message = f"{where}: a value is {_TOO_DEEP}; {_TABLES}"
        raise ConfigError(message) from None
    except RecursionError:
        raise ConfigError(f"{where}: a value is {_TOO_DEEP}; {_TABLES}") from None


def load_config(path: Path | None, overrides: list[str] | None = None) -> Config:
    """Read a TOML config (or the defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    where = "config"
    if path is not None:
        where = str(path)
        raw = read_toml(path)
    return config_from_dict(apply_overrides(raw, overrides or []), where)


def _refusal(why: FileRefused) -> str:
    """What :func:`read_toml` says when a config file is refused unread."""
    if why.reason == "missing":
        return "no such config file; pass a TOML file, see examples/"
    if why.reason == "too large":
        size = f"{why.size / 2**20:,.1f} MB, over" if why.size is not None else "over"
        return (
            f"too large for a config ({size} the limit of {MAX_CONFIG_BYTES / 2**20:g} MB); "
            "pass a TOML config, see examples/"
        )
    if why.reason == "unreadable":
        return f"cannot be read ({why.detail})"
    return "not a regular file; pass a TOML file, see examples/"


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document in the config file ``path``; one :class:`ConfigError` line (with its
    remedy) when it is missing, too large, not UTF-8, not TOML or nested too deeply (the
    parser's RecursionError)."""
    try:
        data = read_bounded(path, MAX_CONFIG_BYTES)
    except FileRefused as why:
        raise ConfigError(f"{path}: {_refusal(why)}") from None
    try:
        # Newlines as Path.read_text reads them (a lone CR is a line end too).
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    try:
        return _loads(text, str(path))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
