"""Every name :mod:`foliosim` takes from :mod:`simulator`, imported in this one module.

When an entry point moves inside ``simulator/`` (as the paper accounts moved from
``replay.py`` to ``accounts.py``, ``stepping.py`` and ``account_report.py``), only the import
lines here change. ``simulator`` never imports ``foliosim``: the arrows point from the Python
API to the application.

The exception is :mod:`simulator.sweep`, which imports Ray (and torch) when it is imported:
:func:`foliosim.api.sweep` imports it when it runs, so that ``import foliosim`` stays light.
"""

from __future__ import annotations

from models.errors import ModelError
from simulator import __version__
from simulator.account_report import account_result, from_account
from simulator.accounts import AccountStatus, open_account
from simulator.accounts import start as start_replay
from simulator.accounts import status as replay_status
from simulator.backtest import run_backtest
from simulator.clikit import check_returns_vary
from simulator.config import Config, apply_overrides, config_from_dict
from simulator.config import load_config as load_config_file
from simulator.errors import ConfigError, FoliosimError
from simulator.explain import Traded, WeekExplanation, explain_week, from_run
from simulator.htmlkit import write_atomically
from simulator.leftovers import QS_TEMP, clean, clean_run_leftovers, system_temp
from simulator.recommend import Recommendation
from simulator.recommend import recommend as make_recommendation
from simulator.report import TEARSHEET_NAME, write_run
from simulator.results import BacktestResult
from simulator.rundir import check_out_dir, default_run_dir, write_files
from simulator.session import Session
from simulator.stepping import step as step_replay
from simulator.stress import DEFAULT_SCENARIOS
from simulator.stress_inputs import stress_test
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
    "Session",
    "StressFacts",
    "Traded",
    "WeekExplanation",
    "__version__",
    "account_result",
    "apply_overrides",
    "check_out_dir",
    "check_returns_vary",
    "clean",
    "clean_run_leftovers",
    "config_from_dict",
    "default_run_dir",
    "explain_week",
    "from_account",
    "from_run",
    "load_config_file",
    "make_recommendation",
    "open_account",
    "replay_status",
    "run_backtest",
    "start_replay",
    "step_replay",
    "stress_test",
    "system_temp",
    "workspace_dir",
    "writable_workspace",
    "write_atomically",
    "write_files",
    "write_run",
]
