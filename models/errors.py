"""Errors of the models package, and the root of every user-facing foliosim error.

``models`` never imports ``simulator`` (the dependency runs one way), so the root,
:class:`FoliosimError`, lives here, at the bottom, and :mod:`simulator.errors` builds on it.
Every error a user can cause in models (a bad parameter, too little history, an unknown
model name or version, a tampered or missing artifact file) is a :class:`ModelError` whose
message says what is wrong and how to fix it; the CLI prints it on one line and exits with 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FoliosimError(Exception):
    """The root of every user-facing foliosim error: its message says what is wrong and how
    to fix it, on one line (``simulator.errors`` and :class:`ModelError` build on it)."""


class ModelError(FoliosimError):
    """Base class of every user-facing error raised by :mod:`models`."""


class SpecError(ModelError):
    """A model parameter is out of range or inconsistent."""


class TrainingDataError(ModelError):
    """The prices given for training or prediction are unusable (too short, NaN, ...)."""


class RegistryError(ModelError):
    """An unknown model name, version or alias, or an unreachable registry."""


class IntegrityError(RegistryError):
    """A registered version's files are missing, altered, or of another schema."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'X'?)"`` for the closest choice, or ``""``.

    >>> did_you_mean("paper12-lsmt", ["paper12-lstm"])
    " (did you mean 'paper12-lstm'?)"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
