"""The workspace folder: everything foliosim writes besides run directories."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FOLIOSIM_WORKSPACE"


def workspace_dir() -> Path:
    """``$FOLIOSIM_WORKSPACE``, or ``.foliosim`` in the current directory (not created here)."""
    return Path(os.environ.get(ENV_VAR) or ".foliosim")
