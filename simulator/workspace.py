"""The workspace folder: everything foliosim writes besides run directories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from simulator.errors import ConfigError

ENV_VAR = "FOLIOSIM_WORKSPACE"


def workspace_dir() -> Path:
    """``$FOLIOSIM_WORKSPACE``, or ``.foliosim`` in the current directory (not created here).

    Refuses a path that exists but is not a folder.
    """
    path = Path(os.environ.get(ENV_VAR) or ".foliosim")
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"the workspace {path} ({ENV_VAR}) is a file, not a folder; point {ENV_VAR} at a "
            "folder (it is created if missing)"
        )
    return path


def writable_workspace(what: str, sub: str = "") -> Path:
    """The workspace, once a new folder could be made in it and in its folder ``sub`` (e.g.
    "replay") when that exists; a workspace still to be created is probed at its nearest
    existing parent. Nothing is left behind.

    ``what`` names the command's work for the error, e.g. "train": a read-only workspace is
    refused here, before any work, with one line.
    """
    path = workspace_dir()
    folders = [path / sub] if sub and (path / sub).is_dir() else []
    nearest = path.absolute()
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    for folder in [nearest, *folders]:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=folder))
        except OSError as err:
            raise ConfigError(
                f"{what} writes to the workspace {path}, but {folder} is not writable "
                f"({err.strerror}); make it writable, or point {ENV_VAR} at a writable folder"
            ) from None
    return path
