"""The run plan: a config resolved once into everything a run needs.

Every entry point (a backtest, a paper account's step and report, ``recommend``) turns its
config into a :class:`RunPlan` with :func:`resolve` and asks the plan for its decision rules;
none of them decides on its own which strategy to build. A plan holds:

- the strategy (:class:`StrategySpec`): a built-in name (:data:`STRATEGIES`), a user rule
  named ``"package.module:ClassName"`` in the config, or a rule object passed from Python;
- the limits its rule sizes with and is checked against (the investor profile's when there is
  one), and the profile, whose guard wraps every rule of the run the same way;
- the conventional baselines run beside it, and the 1/N column's limits (``[strategy]``'s);
- the engine settings: cash, fill, ``min_history`` and the costs (commission, slippage, a
  short borrow fee, interest on cash and margin).

Rules are built from :class:`Resources` that only the entry point knows: how to get the LSTM
rule's signal provider (walk-forward training in a backtest, a pinned version in a paper
account, the version current at the week in ``recommend``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from simulator.config import Config
from simulator.deadline import DeadlineExceeded, deadline
from simulator.engine import EngineResult, RuleRun, eligible_frame, eligible_sets, run_engine
from simulator.errors import ConfigError, FoliosimError, did_you_mean
from simulator.sight import Sight
from strategies.equal_weight import EqualWeightRule
from strategies.profile import Profile, ProfileGuard
from strategies.rebalance import Costs, Progress, Resume, WeekRecord
from strategies.rule import (
    Decision,
    DecisionRule,
    History,
    RuleError,
    State,
    as_decision,
    check_decision,
    rule_inputs,
)
from strategies.signal import SignalProvider, SignalRule
from strategies.sizing import Limits

if TYPE_CHECKING:
    from simulator.data import WeeklyData

_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Resources:
    """What an entry point lends the plan to build rules.

    Attributes
    ----------
    signal
        Called once, by the LSTM-signal rule only: its signal provider.
    decisions
        The run's decision weeks (the first week each later model decides ends a drawdown
        stop).
    """

    signal: Callable[[], SignalProvider] | None = None
    decisions: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))


@dataclass(frozen=True)
class Built:
    """A rule ready for the engine: the rule to run (the profile's guard around the strategy's
    rule when there is a profile), the guard, and the gross exposure its answers may reach."""

    rule: DecisionRule
    guard: ProfileGuard | None
    limits: Limits
    max_gross: float


#: ``build(plan, limits, resources) -> rule``.
Factory = Callable[["RunPlan", Limits, Resources], DecisionRule]


@dataclass(frozen=True)
class StrategySpec:
    """A strategy the plan can build.

    Attributes
    ----------
    name
        Its name in reports, run directories and Table 2.
    build
        The factory of its rule.
    uses_models
        Whether it trades on registry models (the LSTM signal).
    user
        A user's rule: its exceptions are reported as one line naming it and the week.
    optimiser
        One of the baseline optimisers (:mod:`strategies.optimize`): with shorts, its gross
        exposure may reach ``[baseline] max_gross``.
    one_over_n
        The 1/N rule itself: without a profile its run is the 1/N column's, run once.
    """

    name: str
    build: Factory
    uses_models: bool = False
    user: bool = False
    optimiser: bool = False
    one_over_n: bool = False

    def max_gross(self, plan: RunPlan, limits: Limits) -> float:
        """The largest ``sum(|w|)`` its answers may have (see :mod:`strategies.optimize`)."""
        if self.optimiser and limits.allow_short:
            return max(plan.config.baseline.max_gross, limits.gross)
        return limits.gross


def _equal_weight(plan: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
    return EqualWeightRule(limits)


def _lstm_signal(plan: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
    if res.signal is None:
        raise ConfigError("the lstm_signal strategy needs a model; this command cannot train one")
    return SignalRule(res.signal(), limits)


def _optimiser(kind: str) -> Factory:
    def build(plan: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
        from strategies.optimize import BaselineRule  # skfolio: only for runs that need it

        b = plan.config.baseline
        return BaselineRule(
            cast(Any, kind),
            limits,
            b.window,
            b.min_weeks,
            risk_aversion=b.risk_aversion,
            max_gross=max(b.max_gross, limits.gross) if limits.allow_short else None,
        )

    return build


#: The built-in strategies, by the name ``backtest.strategy`` gives.
STRATEGIES: dict[str, StrategySpec] = {
    "equal_weight": StrategySpec("equal_weight", _equal_weight, one_over_n=True),
    "lstm_signal": StrategySpec("lstm_signal", _lstm_signal, uses_models=True),
    **{
        kind: StrategySpec(kind, _optimiser(kind), optimiser=True)
        for kind in ("min_variance", "mean_variance", "min_cvar")
    },
}


@dataclass(frozen=True)
class EngineSettings:
    """The broker and the calendar rule of every engine run of a plan."""

    cash: float
    fill: str
    min_history: int
    costs: Costs = field(default_factory=Costs)


@dataclass(frozen=True)
class RunPlan:
    """A config resolved once (see the module docstring)."""

    config: Config
    strategy: StrategySpec
    limits: Limits
    one_over_n_limits: Limits
    profile: Profile | None
    baselines: tuple[StrategySpec, ...]
    engine: EngineSettings

    @property
    def name(self) -> str:
        """The strategy's name in reports."""
        return self.strategy.name

    def strategy_rule(self, resources: Resources | None = None) -> Built:
        """The strategy's rule, guarded by the profile when there is one."""
        res = resources or Resources()
        rule = self.strategy.build(self, self.limits, res)
        resets = None
        train_ends = getattr(rule, "train_ends", None)
        if train_ends is not None and len(train_ends) > 1:
            resets = model_switches(res.decisions, list(train_ends))
        return self._guarded(self.strategy, rule, resets)

    def baseline_rules(self) -> dict[str, Built]:
        """Each ``[report] baselines`` optimiser, under the strategy's limits and profile."""
        return {
            spec.name: self._guarded(spec, spec.build(self, self.limits, Resources()), None)
            for spec in self.baselines
        }

    @property
    def strategy_is_one_over_n(self) -> bool:
        """Whether the strategy's run is the 1/N column's (the 1/N rule, no profile)."""
        return self.strategy.one_over_n and self.profile is None

    def one_over_n_rule(self) -> Built:
        """The 1/N column: ``[strategy]``'s limits, no profile."""
        limits = self.one_over_n_limits
        return Built(EqualWeightRule(limits), None, limits, limits.gross)

    def _guarded(
        self, spec: StrategySpec, rule: DecisionRule, resets: Sequence[pd.Timestamp] | None
    ) -> Built:
        if spec.user:
            timeout = self.config.backtest.rule_timeout
            rule = _UserRule(
                rule, spec.name, self.limits, spec.max_gross(self, self.limits), timeout
            )
        guard = ProfileGuard(rule, self.profile, resets) if self.profile is not None else None
        return Built(guard or rule, guard, self.limits, spec.max_gross(self, self.limits))

    def run(
        self,
        built: Built,
        weekly: WeeklyData,
        weeks: pd.DatetimeIndex,
        decisions: pd.DatetimeIndex,
        *,
        progress: Progress | None = None,
        resume: Resume | None = None,
        on_week: Callable[[WeekRecord], None] | None = None,
        sight: Sight | None = None,
    ) -> EngineResult:
        """One engine run of ``built`` over ``weeks`` with the plan's broker settings
        (``sight``: what each decision week sees, by default cut from ``weekly``)."""
        e = self.engine
        return run_engine(
            weekly,
            weeks,
            decisions,
            built.rule,
            limits=built.limits,
            min_history=e.min_history,
            max_gross=built.max_gross,
            cash=e.cash,
            fill=e.fill,
            costs=e.costs,
            progress=progress,
            resume=resume,
            on_week=on_week,
            observe=built.guard.observe if built.guard is not None else None,
            sight=sight,
        )

    def decide_once(
        self,
        built: Built,
        weekly: WeeklyData,
        week: pd.Timestamp,
        state: State | None = None,
        sight: Sight | None = None,
    ) -> tuple[Decision, pd.DataFrame]:
        """The decision ``built`` makes at the close of ``week``, outside an engine run
        (``recommend``): the same cut history, tradable tickers and checks as in a run, for
        an account holding ``state`` (default: all cash). Returns the decision and its log."""
        weeks = pd.DatetimeIndex([week])
        eligible = eligible_sets(eligible_frame(weekly, weeks, self.engine.min_history))
        sight = sight or Sight.of(weekly)
        run = RuleRun(built.rule, sight, eligible, built.limits, built.max_gross)
        present = [t for t in weekly.tickers if week in weekly.bars[t].index]
        cash = self.engine.cash
        decision = run(week, present, state or State(cash, cash, {}))
        return decision, run.log


class _UserRule:
    """A user's rule, its exceptions turned into a :class:`RuleError` (one line, its name),
    and its own answer checked against the limits before a profile's guard scales it (a
    volatility target must not hide a weight over the cap).

    The history it is handed is already its own copy (the engine's cut, or a profile guard's
    ``restrict``, which copies again for the guard's later reads); it has ``timeout`` seconds
    per decision (``backtest.rule_timeout``; in the main thread, see
    :mod:`simulator.deadline`), and may not end the process: ``sys.exit`` in a rule is a
    failure of the rule.
    """

    def __init__(
        self, inner: DecisionRule, name: str, limits: Limits, max_gross: float, timeout: float
    ) -> None:
        self.inner = inner
        self.name = name  # the spec's: a rule's own ``name`` may be missing or raise
        self.limits = limits
        self.max_gross = max_gross
        self.timeout = timeout

    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs the user's rule reads (:func:`strategies.rule.rule_inputs`)."""
        return rule_inputs(self.inner)

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        try:
            with deadline(self.timeout):
                answer = self.inner.decide(week, history, state)
            decision = as_decision(answer)
        except (RuleError, FoliosimError):
            raise
        except DeadlineExceeded:
            raise RuleError(
                f"gave no answer within {self.timeout:g} s (backtest.rule_timeout); make it "
                "faster, or raise the limit"
            ) from None
        except SystemExit as err:
            raise RuleError(
                f"called sys.exit({err.code!r}); a rule returns its weights, it does not end "
                "the run"
            ) from None
        except Exception as err:  # a user's code: any failure is reported, never a traceback
            raise RuleError(f"raised {type(err).__name__}: {err}") from None
        check_decision(
            decision,
            history.tradable,
            max_weight=self.limits.max_weight,
            max_gross=self.max_gross,
            allow_short=self.limits.allow_short,
        )
        return decision


def model_switches(decisions: pd.DatetimeIndex, train_ends: list[pd.Timestamp]) -> list[Any]:
    """The first decision week of each model after the first (a drawdown stop ends there)."""
    weeks = []
    for end in sorted(train_ends)[1:]:
        later = decisions[decisions > end]
        if len(later):
            weeks.append(later[0])
    return weeks


# --- user rules ----------------------------------------------------------------------------


def user_strategy(target: str | DecisionRule | type) -> StrategySpec:
    """The spec of a user rule: ``"package.module:ClassName"``, a rule class, or a rule object.

    A class is instantiated for each run, with ``limits=`` the plan's limits when its
    ``__init__`` takes that keyword, else with no argument. An object is used as it is.
    """
    where = f"backtest.strategy {target!r}" if isinstance(target, str) else "the rule"
    obj: Any = _import_rule(target) if isinstance(target, str) else target
    if isinstance(obj, type):
        cls = obj

        def build(plan: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
            return _instantiate(cls, limits, where)

        probe_name = _probe_name(cls)
        _check_has_decide(cls, where)
    else:
        instance = obj

        def build(plan: RunPlan, limits: Limits, res: Resources) -> DecisionRule:
            return cast(DecisionRule, instance)

        probe_name = _probe_name(instance)
        _check_has_decide(type(instance), where)
    default = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    name = probe_name if isinstance(probe_name, str) and probe_name else default
    if not _RULE_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: its name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it names run directories and report columns)"
        )
    if name in STRATEGIES or name in ("1/N", "benchmark"):
        raise ConfigError(f"{where}: its name {name!r} is taken by a built-in; rename the rule")
    return StrategySpec(name, build, user=True)


def _probe_name(obj: object) -> object:
    """``obj.name``, or None when it has none or reading it fails (a property that raises): the
    rule is then named after its class."""
    try:
        return getattr(obj, "name", None)
    except Exception:  # a user's property: any failure means "no usable name"
        return None


def _import_rule(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    # As uvicorn and gunicorn do: a module beside the current directory can be named.
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"backtest.strategy {ref!r}: cannot import {module_name!r} ({err}); run foliosim "
            "from the folder that holds it, or install it"
        ) from None
    except Exception as err:  # a user's module failing at import: one line, its name
        raise ConfigError(
            f"backtest.strategy {ref!r}: importing {module_name!r} failed "
            f"({type(err).__name__}: {err})"
        ) from None
    if not hasattr(module, attr):
        names = [n for n in vars(module) if not n.startswith("_")]
        raise ConfigError(
            f"backtest.strategy {ref!r}: {module_name} has no {attr!r}{did_you_mean(attr, names)}"
        )
    return getattr(module, attr)


def _check_has_decide(cls: type, where: str) -> None:
    if not callable(getattr(cls, "decide", None)):
        raise ConfigError(
            f"{where}: {cls.__name__} has no decide(week, history, state) method (see "
            "strategies.rule.DecisionRule)"
        )


def _instantiate(cls: type, limits: Limits, where: str) -> DecisionRule:
    try:
        takes_limits = "limits" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes_limits = False
    try:
        return cast(DecisionRule, cls(limits=limits) if takes_limits else cls())
    except Exception as err:  # a user's constructor
        raise ConfigError(
            f"{where}: {cls.__name__}() failed ({type(err).__name__}: {err})"
        ) from None


# --- resolving a config --------------------------------------------------------------------


def resolve(
    cfg: Config,
    *,
    rule: DecisionRule | type | None = None,
    profile: Profile | None = None,
) -> RunPlan:
    """The plan of ``cfg``.

    Parameters
    ----------
    rule
        A user rule (class or object) to run instead of ``backtest.strategy`` (from Python).
    profile
        An investor profile to use instead of the config's ``[profile]`` (``recommend
        --profile``).
    """
    if rule is not None:
        spec = user_strategy(rule)
    elif cfg.backtest.strategy in STRATEGIES:
        spec = STRATEGIES[cfg.backtest.strategy]
    else:
        spec = user_strategy(cfg.backtest.strategy)
    chosen = profile if profile is not None else cfg.investor_profile()
    base = cfg.strategy.limits()
    b = cfg.backtest
    return RunPlan(
        config=cfg,
        strategy=spec,
        limits=chosen.limits if chosen is not None else base,
        one_over_n_limits=base,
        profile=chosen,
        baselines=tuple(STRATEGIES[name] for name in cfg.report.baselines),
        engine=EngineSettings(b.cash, b.fill, b.min_history, b.costs()),
    )
