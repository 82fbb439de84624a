"""Every name :mod:`foliosim` takes from :mod:`simulator`, imported in this one module.

When an entry point moves inside ``simulator/`` (``replay.py`` splitting into accounts,
stepping and the account report, for one), only the import line here changes. ``simulator``
never imports ``foliosim``: the arrows point from the Python API to the application.

The sweep module is the exception: it imports Ray, MLflow and torch, so
:func:`foliosim.api.sweep` imports it when a sweep runs, not when ``foliosim`` is imported.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from models.errors import ModelError
from simulator import __version__
from simulator.backtest import BacktestResult, run_backtest
from simulator.clikit import check_returns_vary
from simulator.config import Config, apply_overrides, config_from_dict
from simulator.config import load_config as load_config_file
from simulator.errors import ConfigError, FoliosimError
from simulator.explain import Traded, WeekExplanation, check_models, explain_week, from_run
from simulator.htmlkit import write_atomically
from simulator.leftovers import QS_TEMP, clean, clean_run_leftovers, system_temp
from simulator.plan import resolve
from simulator.recommend import config_weights
from simulator.recommend import recommend as make_recommendation
from simulator.replay import account_result, from_account, held_weights, open_account
from simulator.replay import start as start_replay
from simulator.replay import status as replay_status
from simulator.replay import step as step_replay
from simulator.report import TEARSHEET_NAME, write_run
from simulator.rundir import check_out_dir, check_run_dir, default_run_dir, write_files
from simulator.stress import DEFAULT_SCENARIOS, parse_scenarios
from simulator.stress_inputs import run_weights, stress_of
from simulator.summary import RunSummary, StressFacts
from simulator.workspace import workspace_dir, writable_workspace
from strategies.rule import DecisionRule

__all__ = [
    "DEFAULT_SCENARIOS",
    "QS_TEMP",
    "TEARSHEET_NAME",
    "AccountStatus",
    "BacktestResult",
    "Config",
    "ConfigError",
    "DecisionRule",
    "FoliosimError",
    "ModelError",
    "Recommendation",
    "RunSummary",
    "StressFacts",
    "Traded",
    "WeekExplanation",
    "__version__",
    "account_result",
    "apply_overrides",
    "check_models",
    "check_out_dir",
    "check_returns_vary",
    "check_run_dir",
    "clean",
    "clean_run_leftovers",
    "config_from_dict",
    "config_weights",
    "default_run_dir",
    "explain_week",
    "from_account",
    "from_run",
    "held_weights",
    "load_config_file",
    "make_recommendation",
    "open_account",
    "parse_scenarios",
    "replay_status",
    "resolve",
    "run_backtest",
    "run_weights",
    "start_replay",
    "step_replay",
    "stress_of",
    "system_temp",
    "workspace_dir",
    "writable_workspace",
    "write_atomically",
    "write_files",
    "write_run",
]

#: A paper account's status document (``foliosim replay status --json``).
AccountStatus: TypeAlias = dict[str, Any]
#: A recommendation document (``foliosim recommend --json``).
Recommendation: TypeAlias = dict[str, Any]
