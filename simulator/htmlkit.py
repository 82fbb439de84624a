"""HTML helpers of the tear sheet and its sections: escaping, numbers, tables, images, files.

Every value a section prints goes through :func:`esc` (or :func:`num`, which prints only
numbers), so a string from a run directory or a config never reaches the page as markup.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from models.plots import png_bytes


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too).

    >>> esc('<svg onload="x">')
    '&lt;svg onload=&quot;x&quot;&gt;'
    """
    return html.escape(str(value))


def num(value: Any, spec: str) -> str:
    """A number with a format spec; ``"n/a"`` for None, NaN and anything not a number; never
    ``-0.00``.

    >>> num(-0.0001, ".2f"), num(None, ".2f"), num("<b>", ".2f")
    ('0.00', 'n/a', 'n/a')
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "n/a"
    if not math.isfinite(value):
        return "n/a"
    text = format(value, spec)
    return text[1:] if text.startswith("-") and float(text.rstrip("%")) == 0 else text


def format_number(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, ``"n/a"`` for NaN, never ``-0.00``."""
    if math.isnan(value):
        return "n/a"
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def table(head: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    """An HTML table: ``head`` is escaped here, ``rows`` are cells already made HTML."""
    top = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row in rows)
    return (
        f'<table id="{esc(table_id)}">\n<thead><tr>{top}</tr></thead>\n<tbody>\n{body}</tbody>\n'
        "</table>"
    )


def png(fig: Figure, dpi: int = 90) -> str:
    """``fig`` as a base64 PNG for an ``<img src="data:image/png;base64,...">``."""
    return base64.b64encode(png_bytes(fig, dpi)).decode("ascii")


def write_atomically(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` via a temporary file in the same folder and a rename."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.chmod(0o644)  # mkstemp makes the file private; a report is an ordinary file
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
