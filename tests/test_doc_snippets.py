"""The shell snippets of README.md and docs/*.md can be pasted into a shell.

Regression (issue 26): ``foliosim report runs/<the run directory>`` was a syntax error when
pasted (``<`` and ``>`` are redirections); a snippet names a real path, or a command that
finds one (``"$(ls -td runs/lstm_signal-*/ | head -1)"``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

#: A fenced block: its indentation, its language and its text.
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)
#: A ``<placeholder>``: to a shell, a redirection from and to files named after its words.
PLACEHOLDER = re.compile(r"<[A-Za-z][^<>\n]*>")
SHELLS = ("sh", "bash", "shell", "console")
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shell_blocks(text: str) -> list[str]:
    """The text of every shell block of a Markdown page, its indentation removed.

    >>> page = "a\\n```sh\\nls runs\\n```\\n  ```bash\\n  echo 1\\n  ```\\n"
    >>> shell_blocks(page + "```python\\nx\\n```\\n")
    ['ls runs\\n', 'echo 1\\n']
    """
    blocks = []
    for m in FENCE.finditer(text):
        indent, lang, body = m.groups()
        if lang in SHELLS:
            blocks.append("".join(line[len(indent) :] for line in body.splitlines(True)))
    return blocks


def test_the_pages_have_shell_blocks() -> None:
    # The parse finds what it checks: README alone has several.
    assert len(shell_blocks((REPO / "README.md").read_text())) >= 3
    assert sum(len(shell_blocks(p.read_text())) for p in PAGES) >= 15


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_shell_snippets_paste_into_a_shell(page: Path) -> None:
    for block in shell_blocks(page.read_text()):
        assert not PLACEHOLDER.findall(block), f"{page.name}: a <placeholder> in\n{block}"
        check = subprocess.run(["bash", "-n"], input=block, text=True, capture_output=True)
        assert check.returncode == 0, f"{page.name}: {check.stderr.strip()}\n{block}"


def test_a_placeholder_is_caught() -> None:
    block = shell_blocks("```sh\n.venv/bin/foliosim report runs/<the run directory>\n```\n")[0]
    assert PLACEHOLDER.findall(block) == ["<the run directory>"]
    check = subprocess.run(["bash", "-n"], input=block, text=True, capture_output=True)
    assert check.returncode == 2 and "syntax error" in check.stderr
