"""foliosim's own exceptions.

Every error a user can cause (a bad config value, a missing file, an unknown ticker, too little
history, an unreachable network, an unknown or tampered model) is raised as a
:class:`FoliosimError` subclass whose message says what is wrong and how to fix it; the root
lives in :mod:`models.errors` (the bottom layer), so a model's errors
(:class:`models.errors.ModelError`) are FoliosimErrors too. The CLI prints the message on one
line and exits with 2.
"""

from __future__ import annotations

from models.errors import FoliosimError, did_you_mean

__all__ = [
    "AccountBusyError",
    "ConfigError",
    "DataError",
    "FoliosimError",
    "JournalError",
    "LookAheadError",
    "NetworkError",
    "RunDirError",
    "StrategyError",
    "UnknownAccountError",
    "did_you_mean",
]


class ConfigError(FoliosimError):
    """A config file or a config value is invalid."""


class DataError(FoliosimError):
    """Price data is missing, malformed or insufficient."""


class NetworkError(FoliosimError):
    """A remote data source could not be reached."""


class RunDirError(FoliosimError):
    """A run directory is missing files or holds malformed ones."""


class LookAheadError(FoliosimError):
    """Something would use information from after the decision time."""


class JournalError(FoliosimError):
    """A paper account's journal is missing, locked, damaged or from another schema."""


class StrategyError(FoliosimError):
    """A decision rule failed or answered weights the engine cannot trade."""


class UnknownAccountError(JournalError):
    """No paper account of that name in the workspace."""


class AccountBusyError(JournalError):
    """Another process (or thread) holds the account's lock: it is changing the account."""
