"""foliosim's application functions as a Python API, for notebooks and scripts.

Each function takes a config as a TOML file path, a ``dict`` of its tables or a
:class:`~simulator.config.Config`, applies ``set`` overrides as the command line's ``--set``
does, calls the same function the command line calls and returns its document: a backtest a
:class:`Run`, a paper account an :class:`Account` handle, a stress test a
:class:`~simulator.summary.StressFacts`. A user error raises a
:class:`~simulator.errors.FoliosimError` (a model registry's: a
:class:`~models.errors.ModelError`, one of them) whose one-line message is the command
line's.

The workspace (price cache, model registry, paper accounts) is ``$FOLIOSIM_WORKSPACE``, or
``.foliosim`` in the current directory, as for the command line. What the command line prints
as it works (data warnings, the models it trains or reuses) goes to the ``foliosim`` logger at
INFO level; a run keeps its notes in :attr:`Run.notes` too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import pandas as pd
import tomli_w

from foliosim._simulator import (
    DEFAULT_SCENARIOS,
    QS_TEMP,
    TEARSHEET_NAME,
    AccountStatus,
    BacktestResult,
    Config,
    ConfigError,
    DecisionRule,
    FoliosimError,
    Recommendation,
    RunSummary,
    Session,
    StressFacts,
    WeekExplanation,
    account_result,
    apply_overrides,
    check_out_dir,
    check_returns_vary,
    clean,
    clean_run_leftovers,
    config_from_dict,
    default_run_dir,
    explain_week,
    from_account,
    from_run,
    load_config_file,
    make_recommendation,
    open_account,
    replay_status,
    run_backtest,
    start_replay,
    step_replay,
    stress_test,
    system_temp,
    workspace_dir,
    writable_workspace,
    write_atomically,
    write_files,
    write_run,
)

if TYPE_CHECKING:
    from simulator.sweep import SweepResult

__all__ = [
    "Account",
    "ConfigLike",
    "DateLike",
    "PathLike",
    "Recommendation",
    "Run",
    "account",
    "backtest",
    "explain",
    "load_config",
    "recommend",
    "start_account",
    "stress",
    "sweep",
]

#: A config: a TOML file path, a ``dict`` of its tables (``{"backtest": {"fill": "close"}}``)
#: or a validated :class:`~simulator.config.Config`.
ConfigLike: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | Config
#: A day: a :class:`datetime.date` (a datetime or a pandas Timestamp gives its date) or an ISO
#: string ``"YYYY-MM-DD"``.
DateLike: TypeAlias = dt.date | str
#: A file or folder path.
PathLike: TypeAlias = str | os.PathLike[str]

_log = logging.getLogger("foliosim")


# --- configs ---------------------------------------------------------------------------------


def load_config(config: ConfigLike, set: Mapping[str, object] | None = None) -> Config:
    """Validate a config and apply overrides, as every foliosim function does first.

    Parameters
    ----------
    config
        A TOML file path (read as ``foliosim backtest CONFIG`` reads it), a ``dict`` of the
        config's tables, or a :class:`~simulator.config.Config` (returned as is without
        ``set``). A ``dict`` is validated by the same model, with the same messages; it is not
        changed.
    set
        ``{"section.key": value}`` overrides, applied as ``--set section.key=value`` is: a
        string is read as the command line reads it (a TOML literal when it parses as one, so
        ``"2020-01-03"`` is a date and ``"true"`` a bool, else the plain string); a number, a
        bool, a date or a list is taken as it is.

    Returns
    -------
    Config
        The validated, frozen config.

    Raises
    ------
    ConfigError
        A file that is missing or not TOML, an unknown section or field (with a "did you
        mean"), a bad value, a bad override, or a ``config`` of another type.
    """
    overrides = _overrides(set)
    if isinstance(config, Config):
        if not overrides:
            return config
        return config_from_dict(apply_overrides(config.model_dump(), overrides))
    if isinstance(config, str | os.PathLike):
        return load_config_file(Path(config), overrides)
    if isinstance(config, Mapping):
        # Copies of the tables: apply_overrides writes into them.
        raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in config.items()}
        return config_from_dict(apply_overrides(raw, overrides))
    raise ConfigError(
        f"config: expected a TOML file path, a dict of tables or a foliosim Config, got "
        f"{type(config).__name__}"
    )


def _overrides(values: Mapping[str, object] | None) -> list[str]:
    """``set`` as the command line's ``section.key=value`` items."""
    if values is None:
        return []
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"set: expected a dict of section.key to value, e.g. {{'backtest.fill': 'close'}}, "
            f"got {type(values).__name__}"
        )
    items = []
    for key, value in values.items():
        if not isinstance(key, str) or "=" in key:
            raise ConfigError(f"set: {key!r} is not a section.key name, e.g. 'backtest.fill'")
        items.append(f"{key}={_literal(key, value)}")
    return items


def _literal(key: str, value: object) -> str:
    """``value`` as ``--set`` text: a string as it is, anything else as a TOML literal."""
    if isinstance(value, str):
        return value
    text = None
    if not isinstance(value, Mapping):
        with contextlib.suppress(TypeError, ValueError):
            text = tomli_w.dumps({"v": value})
    if text is None:
        raise ConfigError(
            f"set {key!r}: {value!r} is not a config value; give a string, a number, a bool, "
            "a date or a list"
        )
    return text.partition("=")[2].strip()


def _day(value: DateLike, name: str) -> dt.date:
    """``value`` as a date; one line naming ``name`` when it is not one."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return dt.date.fromisoformat(value)
    raise FoliosimError(f"{name} {value!r}: expected a date YYYY-MM-DD")


def _note(notes: list[str]) -> Callable[[str], None]:
    """A ``note`` callback: keeps each line and logs it."""

    def note(line: str) -> None:
        notes.append(line)
        _log.info("%s", line)

    return note


# --- backtests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A finished backtest (or a paper account's report): the documents of a run directory,
    in memory.

    Attributes
    ----------
    result
        What :func:`simulator.backtest.run_backtest` returned: every file of the run
        directory as a frame or a document.
    name
        The strategy's name (``equal_weight``, ``lstm_signal``, a rule's name) or
        ``replay-<account>``: :meth:`save` names its default folder after it.
    notes
        What the run noted as it went: data warnings, the models it trained or reused.
    """

    result: BacktestResult = field(repr=False)
    name: str
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> RunSummary:
        """The run's figures, as summary.json holds them: ``summary.series["strategy"]``
        (also ``"equal_weight"``, ``"benchmark"`` and each baseline) has ``total_return``,
        ``cagr``, ``volatility``, ``sharpe``, ``sortino`` and ``max_drawdown``, as fractions."""
        return self.result.summary

    @property
    def config(self) -> Config:
        """The validated config the run ran (overrides applied)."""
        return self.result.config

    @property
    def returns(self) -> pd.DataFrame:
        """Weekly simple returns (fractions), ``(n_weeks, n_series)``: columns ``strategy``,
        ``equal_weight``, ``benchmark`` and one per baseline; each row dated on the last
        trading day of the week it was earned in. A copy: yours to change."""
        return self.result.returns.copy()

    @property
    def weights(self) -> pd.DataFrame:
        """The strategy's positions after each week's fills, as fractions of the portfolio's
        value (negative: short), ``(n_weeks, n_tickers)``; tickers never held are left out.
        weights.csv holds the same as a long table (``date, ticker, weight``)."""
        long = self.result.weights
        wide = long.pivot(index="date", columns="ticker", values="weight").fillna(0.0)
        return wide.rename_axis(index="date", columns="ticker")

    @property
    def orders(self) -> pd.DataFrame:
        """The strategy's orders, as orders.csv holds them (one row per order: when it was
        submitted and filled, ticker, side, shares, price, value, commission, status). A copy."""
        return self.result.orders.copy()

    def save(self, folder: PathLike | None = None, *, tearsheet: bool = True) -> Path:
        """Write the run directory, as ``foliosim backtest --out FOLDER`` does.

        Parameters
        ----------
        folder
            A folder that does not exist yet, or an empty one (default:
            ``runs/<name>-<time>``). Runs are never overwritten.
        tearsheet
            Also write ``tearsheet.html`` (2-6 s, nearly all in QuantStats).

        Returns
        -------
        Path
            The run directory. Its files are written into a temporary folder renamed into
            place at the end: an interrupted save leaves nothing half-written.

        Raises
        ------
        RunDirError
            ``folder`` holds files, is a link or cannot be made.
        FoliosimError
            With ``tearsheet``: the strategy never held a position (its weekly return is the
            same every week), of which no tear sheet can be drawn.
        """
        target = Path(folder) if folder is not None else default_run_dir(self.name)
        check_out_dir(target)
        clean_run_leftovers(target)
        if not tearsheet:
            return write_files(self.result, target)
        check_returns_vary(self.result.returns["strategy"], self.config.backtest.cash)
        return write_run(self.result, target)

    def tearsheet(self, path: PathLike) -> Path:
        """Write the run's HTML tear sheet (Table 2, charts, QuantStats against the benchmark,
        the run's sections; self-contained, no network) to ``path``.

        Parameters
        ----------
        path
            The HTML file to write (replaced if it exists; its folder is made if missing), or
            an existing folder to write ``tearsheet.html`` into.

        Returns
        -------
        Path
            The file written (atomically: a failure leaves any earlier file as it was).

        Raises
        ------
        FoliosimError
            The strategy never held a position (see :meth:`save`).
        """
        target = Path(path)
        if target.is_dir():
            target = target / TEARSHEET_NAME
        check_returns_vary(self.result.returns["strategy"], self.config.backtest.cash)
        target.parent.mkdir(parents=True, exist_ok=True)
        clean(system_temp(), QS_TEMP)  # what killed tear sheets left, as `foliosim report` does
        with tempfile.TemporaryDirectory(prefix="foliosim-run-") as tmp:
            folder = write_run(self.result, Path(tmp) / "run")
            write_atomically(target, (folder / TEARSHEET_NAME).read_text(encoding="utf-8"))
        return target

    def __str__(self) -> str:
        s = self.summary
        total = s.series["strategy"].total_return
        return f"Run {self.name}: {s.start}..{s.end}, {s.weeks} weeks, total return {total:+.2%}"


def backtest(
    config: ConfigLike,
    *,
    set: Mapping[str, object] | None = None,
    rule: DecisionRule | type | None = None,
) -> Run:
    """Backtest a config, as ``foliosim backtest CONFIG --set ...`` does (nothing is written
    but the workspace's price cache and models; :meth:`Run.save` writes the run directory).

    Parameters
    ----------
    config
        A TOML file path, a ``dict`` of tables or a ``Config`` (see :func:`load_config`).
    set
        ``{"section.key": value}`` overrides (see :func:`load_config`).
    rule
        A decision rule of yours (a class or an object, see docs/strategies.md) to run
        instead of ``backtest.strategy``.

    Returns
    -------
    Run
        The run: ``summary``, ``returns``, ``weights``, ``orders``; ``save()``,
        ``tearsheet()``.

    Raises
    ------
    FoliosimError
        A bad config or override (:class:`~simulator.errors.ConfigError`), missing or bad
        data (:class:`~simulator.errors.DataError`), a rule that fails
        (:class:`~simulator.errors.StrategyError`), an unwritable workspace for a run that
        trains models or caches prices, a model that cannot be trained or loaded
        (:class:`~models.errors.ModelError`).
    """
    cfg = load_config(config, set)
    notes: list[str] = []
    note = _note(notes)
    # The run's plan and data, once; an unknown or broken user rule fails here, before work.
    session = Session.open(cfg, workspace_dir(), rule=rule, note=note)
    plan = session.plan
    if plan.strategy.uses_models or cfg.data.source == "yahoo":
        writable_workspace("a backtest that trains models or caches prices")
    result = run_backtest(session, workspace_dir(), note=note)
    return Run(result, plan.name, tuple(notes))


def sweep(
    config: ConfigLike,
    *,
    seeds: str | Iterable[int] | None = None,
    grid: Mapping[str, str | Sequence[object]] | None = None,
    periods: str | Sequence[int | str | tuple[DateLike, DateLike]] | None = None,
    out: PathLike | None = None,
    set: Mapping[str, object] | None = None,
    address: str | None = None,
    cpus: int | None = None,
) -> SweepResult:
    """Run (or resume) a sweep on Ray, as ``foliosim sweep`` does: one trial per seed x grid
    value x period, sweep.csv and sweep.html written into ``out``.

    Parameters
    ----------
    config
        A TOML file path, a ``dict`` of tables or a ``Config``. A path is read as the
        command line reads it (its text and ``set`` make the sweep's fingerprint, so the
        command line and this function resume each other's sweeps); a dict or a Config is
        written as TOML to a temporary file for the sweep to read. Each trial's validated
        config is shipped to its worker.
    seeds
        Model seeds: ``range(10)``, ``[0, 3, 7]`` or the command line's ``"0-9"``.
    grid
        Config fields to cross: ``{"strategy.max_weight": [0.2, 0.33]}``, or the command
        line's text of values, ``{"strategy.max_weight": "0.2,0.33"}``.
    periods
        Test periods: calendar years ``[2021, 2022]``, ``("2022-01-01", "2022-06-30")``
        pairs, or the command line's ``"2021,2022"``.
    out
        The sweep directory (default ``runs/sweep-<config>-<digest>``, named by the config's
        text, ``set`` and the axes as ``foliosim sweep`` names it): the same call again
        resumes it.
    set
        ``{"section.key": value}`` overrides of every trial (see :func:`load_config`).
    address, cpus
        A running Ray cluster (``"auto"``, ``"ray://HOST:PORT"``), or the CPUs of the local
        Ray runtime started for this sweep (default: all).

    Returns
    -------
    SweepResult
        ``out``, ``table`` (sweep.csv: one row per trial) and ``ran`` (the trials run now).

    Raises
    ------
    ConfigError
        A bad config, override or axis, or no axis at all; checked before Ray starts.
    SweepError
        The environment stopped trials (a full disk, memory, a dead worker): the same call
        runs what is left.
    """
    # Imported here: simulator.sweep imports Ray, MLflow and torch, which only a sweep needs.
    from simulator.sweep import (
        Axes,
        default_out,
        parse_grid,
        parse_periods,
        parse_seeds,
        run_sweep,
    )

    axes = Axes(
        seeds=parse_seeds(_seeds_text(seeds)) if seeds is not None else (),
        grid=parse_grid([_grid_item(k, v) for k, v in (grid or {}).items()]),
        periods=parse_periods(_periods_text(periods)) if periods is not None else (),
    )
    cfg = load_config(config, set)  # a bad config or override fails before Ray starts
    workspace = writable_workspace("a sweep")
    with contextlib.ExitStack() as stack:
        if isinstance(config, str | os.PathLike):
            path, base = Path(config), _overrides(set)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="foliosim-")))
            path, base = folder / "config.toml", []
            path.write_text(cfg.to_toml(), encoding="utf-8")
        # As the command line names it: the same config, overrides and axes resume.
        target = Path(out) if out is not None else default_out(path, base, axes)
        return run_sweep(path, target, axes, workspace, base=base, address=address, cpus=cpus)


def _seeds_text(seeds: str | Iterable[int]) -> str:
    if isinstance(seeds, str):
        return seeds
    return ",".join(str(s) for s in seeds)


def _grid_item(key: str, values: str | Sequence[object]) -> str:
    if isinstance(values, str):
        return f"{key}={values}"
    return f"{key}=" + ",".join(_literal(key, v) for v in values)


def _periods_text(periods: str | Sequence[int | str | tuple[DateLike, DateLike]]) -> str:
    if isinstance(periods, str):
        return periods
    parts = []
    for p in periods:
        if isinstance(p, tuple):
            first, last = p
            parts.append(f"{_day(first, 'periods')}:{_day(last, 'periods')}")
        else:
            parts.append(str(p))
    return ",".join(parts)


# --- paper accounts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A paper account of the workspace, by name (``foliosim replay``).

    The handle holds no open file: each method opens the account's journal, does its work
    and closes it, so a handle never blocks a ``foliosim`` command or the web app.

    Attributes
    ----------
    name
        The account's name.
    """

    name: str

    def step(
        self, weeks: int | None = None, *, until: DateLike | None = None, live: bool = False
    ) -> pd.DatetimeIndex:
        """Advance the account through complete weeks, as ``foliosim replay step`` does; each
        week is recorded as soon as it closes.

        Parameters
        ----------
        weeks
            Weeks to advance (default: 1, or every complete week with ``until`` or ``live``).
        until
            Advance through every complete week up to this day.
        live
            First download the newest daily prices from Yahoo (needs a network).

        Returns
        -------
        pandas.DatetimeIndex
            The weeks recorded now, oldest first (empty when no later complete week is in
            the data).

        Raises
        ------
        FoliosimError
            Both ``weeks`` and ``until``; an unknown account, a journal another process is
            changing (:class:`~simulator.errors.AccountBusyError`), data that lacks the
            account's weeks, no network with ``live``.
        """
        if weeks is not None and until is not None:
            raise FoliosimError("give weeks or until, not both")
        if weeks is not None and (
            isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1
        ):
            raise ConfigError(f"weeks: expected a whole number of at least 1 (got {weeks!r})")
        stop = _day(until, "until") if until is not None else None
        count = weeks if weeks is not None else (None if (stop or live) else 1)
        workspace = writable_workspace("replay step", "replay")
        acct, processed = step_replay(
            workspace, self.name, weeks=count, until=stop, live=live, note=_note([])
        )
        acct.close()
        return processed

    def status(self) -> AccountStatus:
        """The account now, as ``foliosim replay status --json`` prints it.

        Returns
        -------
        AccountStatus
            A typed document: ``equity``, ``cash``, ``total_return`` (a fraction of the
            start cash), ``last_week``, ``weeks_processed``, ``positions`` (shares per
            ticker), ``weights`` (fractions of the equity), ``pending`` (the targets decided
            at the last close), ``equity_curve``, the strategy and its pinned models
            (docs/replay.md); ``model_dump(mode="json")`` is the command line's JSON.
        """
        with open_account(workspace_dir(), self.name) as acct:
            return replay_status(acct)

    def report(self) -> Run:
        """The account so far as a run (its returns against 1/N and the index, its weights
        and orders), as ``foliosim replay status --html`` reports it: ``report().save()``
        writes its run directory, ``report().tearsheet(path)`` its tear sheet.

        Raises
        ------
        FoliosimError
            An account with fewer than three recorded weeks.
        """
        with open_account(workspace_dir(), self.name) as acct:
            result = account_result(acct, workspace_dir())
        return Run(result, f"replay-{self.name}")


def account(name: str) -> Account:
    """The paper account ``name`` of the workspace.

    Raises
    ------
    UnknownAccountError
        No account of that name (the message says how to start one).
    """
    with open_account(workspace_dir(), name):
        pass
    return Account(name)


def start_account(
    name: str,
    config: ConfigLike,
    *,
    set: Mapping[str, object] | None = None,
    from_date: DateLike | None = None,
    model: str | None = None,
    allow_later_model: bool = False,
    schedule: str = "off",
) -> Account:
    """Open a new paper account, as ``foliosim replay start CONFIG --account NAME`` does: the
    config frozen into its journal, cash from ``backtest.cash``, a start week, and for a model
    strategy one pinned registry version.

    Parameters
    ----------
    name
        Letters, digits, ``.``, ``_`` or ``-`` (at most 64); no account of that name may exist.
    config, set
        The config and its overrides (see :func:`load_config`).
    from_date
        The first week is the one ending on or after this day (default: ``backtest.start``).
    model
        A registry version to pin (``NAME/N``, ``NAME@ALIAS``, ``@ALIAS``); default
        ``model.version``, else the version a backtest would use first.
    allow_later_model
        Accept a model trained after the start week (look-ahead; status and report say so).
    schedule
        ``"weekly"``: ``foliosim serve`` steps it after each week closes; ``"off"``.

    Returns
    -------
    Account
        The new account, with no week recorded yet.

    Raises
    ------
    FoliosimError
        A bad config or name, an existing account, too little data for the start week.
    """
    cfg = load_config(config, set)
    begin = _day(from_date, "from_date") if from_date is not None else None
    source = str(config) if isinstance(config, str | os.PathLike) else type(config).__name__
    workspace = writable_workspace("replay start", "replay")
    acct = start_replay(
        workspace,
        name,
        cfg,
        source=source,
        from_date=begin,
        model=model,
        allow_later_model=allow_later_model,
        schedule=schedule,
        note=_note([]),
    )
    acct.close()
    return Account(name)


# --- analyses --------------------------------------------------------------------------------


def recommend(
    config: ConfigLike,
    *,
    set: Mapping[str, object] | None = None,
    profile: str | os.PathLike[str] | None = None,
    as_of: DateLike | None = None,
    model: str | None = None,
) -> Recommendation:
    """Next week's allocation for an investor profile, with each position's risk, as
    ``foliosim recommend --json`` prints it.

    Parameters
    ----------
    config, set
        The config and its overrides (see :func:`load_config`).
    profile
        ``"conservative"``, ``"moderate"``, ``"aggressive"`` or a TOML file with a
        ``[profile]`` table (default: the config's ``[profile]``, else its ``[strategy]``
        limits).
    as_of
        Decide at the close of the last complete week on or before this day (default: the
        newest complete week in the data).
    model
        A registry version to decide with (``NAME/N``, ``NAME@ALIAS``).

    Returns
    -------
    Recommendation
        ``as_of``, ``strategy``, ``profile`` (its limits), ``positions`` (per ticker:
        ``weight`` as a fraction, ``score``, ``risk`` in words, ``analytics``, ``in_words``),
        ``cash_weight``, ``expected_volatility``, ``expected_risk``, ``bounds``, ``rule`` (the
        strategy's rule as it applied that week: why names are short), ``cash_note`` (why
        cash is what it is), ``notes`` (docs/profiles.md); ``.to_json()`` is ``foliosim
        recommend --json``.
    """
    cfg = load_config(config, set)
    day = _day(as_of, "as_of") if as_of is not None else None
    chosen = str(profile) if profile is not None else None
    return make_recommendation(cfg, workspace_dir(), chosen, day, model)


@contextlib.contextmanager
def _run_folder(run: Run) -> Iterator[Path]:
    """A run in memory as a run directory (its data files, no tear sheet), for as long as
    the block runs."""
    with tempfile.TemporaryDirectory(prefix="foliosim-run-") as tmp:
        yield write_files(run.result, Path(tmp) / "run")


def stress(
    config: ConfigLike | None = None,
    *,
    run: Run | PathLike | None = None,
    account: str | None = None,
    set: Mapping[str, object] | None = None,
    scenarios: Sequence[str] | None = None,
    weights_as_of: DateLike | None = None,
) -> StressFacts:
    """Put a portfolio through past crises and hypothetical shocks, as ``foliosim stress``
    does: per scenario its return, worst week, largest fall and largest contributions.

    Give one of ``config`` (its strategy's allocation for next week, as :func:`recommend`
    decides it), ``run`` (a :class:`Run` or a run directory: its positions) or ``account``
    (a paper account's holdings).

    Parameters
    ----------
    config, set
        The config and its overrides (see :func:`load_config`); ``set`` applies to a run's
        config too, never to an account's (frozen in its journal).
    run
        A :class:`Run`, or the folder of a saved one.
    account
        A paper account's name.
    scenarios
        Scenario names (``dotcom``, ``gfc``, ``downgrade_2011``, ``covid``, ``rates_2022``,
        ``bench_down_X``, ``gap_down_X``, ``rates_up_Nbp``) or ``START:END`` windows (default:
        every named one; docs/stress.md).
    weights_as_of
        The weights of the last week on or before this day (default: the newest).

    Returns
    -------
    StressFacts
        The weights, their exposure and every scenario's figures (``.scenarios``), as
        ``foliosim stress --json`` prints them.
    """
    given = [n for n, v in (("config", config), ("run", run), ("account", account)) if v]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise FoliosimError(f"give one of config, run or account{got}")
    if account is not None and set:
        raise FoliosimError(
            "set does not apply to an account: the account's config is frozen in its journal"
        )
    names = tuple(scenarios) if scenarios is not None else DEFAULT_SCENARIOS
    day = _day(weights_as_of, "weights_as_of") if weights_as_of is not None else None
    workspace = workspace_dir()
    if account is not None:
        return stress_test(workspace, account=account, scenarios=names, as_of=day)
    if isinstance(run, Run):
        with _run_folder(run) as folder:
            facts = stress_test(
                workspace, run=folder, scenarios=names, as_of=day, overrides=_overrides(set)
            )
        return facts.model_copy(update={"source": f"run {run.name}"})
    if run is not None:
        return stress_test(
            workspace, run=Path(run), scenarios=names, as_of=day, overrides=_overrides(set)
        )
    if isinstance(config, str | os.PathLike):  # read as the command line reads it
        return stress_test(
            workspace, config=Path(config), scenarios=names, as_of=day, overrides=_overrides(set)
        )
    assert config is not None  # one of the three, checked above
    return stress_test(workspace, config=load_config(config, set), scenarios=names, as_of=day)


def explain(
    run: Run | PathLike | None = None,
    *,
    account: str | None = None,
    week: DateLike,
    ticker: str | None = None,
) -> WeekExplanation:
    """Why a model strategy traded what it did in one week, as ``foliosim explain`` says:
    each forecast behind the week's orders attributed to its input weeks (Integrated
    Gradients; imports torch).

    Parameters
    ----------
    run
        A :class:`Run` of a model strategy, or the folder of a saved one; or give ``account``.
    account
        A paper account's name.
    week
        A day of the decision week.
    ticker
        Only this ticker's trade.

    Returns
    -------
    WeekExplanation
        ``week``, ``tickers`` (one explanation per forecast: ``words()`` says it in a line)
        and ``to_json()`` (``foliosim explain --json``; docs/explain.md).

    Raises
    ------
    ConfigError
        Neither or both of ``run`` and ``account``; a run or account of a strategy without
        forecasts; no orders in that week.
    """
    if (run is None) == (account is None):
        raise ConfigError("give a run or an account (one of the two)")
    day = _day(week, "week")
    workspace = workspace_dir()
    if account is not None:
        return explain_week(from_account(account, workspace), day, ticker)
    if isinstance(run, Run):
        # Refused as the run, before its files are written to a scratch folder (whose path
        # the refusal of simulator.explain.check_models would name instead).
        if run.result.predictions is None:
            raise ConfigError(
                f"run {run.name} ran {run.config.backtest.strategy}, which makes no forecasts "
                "to explain; explain works on runs of a model strategy (lstm_signal)"
            )
        with _run_folder(run) as folder:
            traded = replace(from_run(folder, workspace), label=f"run {run.name}")
        return explain_week(traded, day, ticker)
    assert run is not None  # one of the two, checked above
    return explain_week(from_run(Path(run), workspace), day, ticker)
