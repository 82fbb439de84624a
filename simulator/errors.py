"""foliosim's own exceptions.

Every error a user can cause (a bad config value, a missing file, an unknown ticker, too little
history, an unreachable network) is raised as a :class:`FoliosimError` subclass whose message
says what is wrong and how to fix it. The CLI prints the message on one line and exits with 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FoliosimError(Exception):
    """Base class of every user-facing foliosim error."""


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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'X'?)"`` for the closest choice, or ``""``.

    >>> did_you_mean("APPL", ["AAPL", "MSFT"])
    " (did you mean 'AAPL'?)"
    >>> did_you_mean("ZZZZ", ["AAPL"])
    ''
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
