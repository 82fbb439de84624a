"""foliosim from Python: the application functions of the command line, for notebooks and
scripts (docs/python.md).

- :func:`backtest` -> :class:`Run` (``summary``, ``returns``, ``weights``, ``orders``,
  ``save(folder)``, ``tearsheet(path)``); :func:`sweep` runs many on Ray.
- :func:`start_account`, :func:`account` -> :class:`Account` (``step()``, ``status()``,
  ``report()``): paper trading a week at a time.
- :func:`recommend`, :func:`stress`, :func:`explain`: next week's allocation, crises and
  shocks, why a week traded what it did.
- :func:`load_config`: a config from a path, a dict or a :class:`Config`, with ``set``
  overrides, as every function above reads it.

A user error raises :class:`FoliosimError` (the model registry's are :class:`ModelError`, a
subclass) with the command line's one-line message.
"""

from foliosim._simulator import Config, FoliosimError, ModelError, RunSummary, __version__
from foliosim.api import (
    Account,
    ConfigLike,
    DateLike,
    PathLike,
    Recommendation,
    Run,
    account,
    backtest,
    explain,
    load_config,
    recommend,
    start_account,
    stress,
    sweep,
)

__all__ = [
    "Account",
    "Config",
    "ConfigLike",
    "DateLike",
    "FoliosimError",
    "ModelError",
    "PathLike",
    "Recommendation",
    "Run",
    "RunSummary",
    "__version__",
    "account",
    "backtest",
    "explain",
    "load_config",
    "recommend",
    "start_account",
    "stress",
    "sweep",
]
