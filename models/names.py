"""The character sets of names that reach files, the registry and HTML reports.

Names are checked where they enter (a config, a CSV file's stem, a command-line option, a
frame of prices handed to :func:`models.forecaster.train`), so that nothing downstream has to
quote them: a name can never hold markup, a path separator, a newline or a quote.

- A **ticker** (also a benchmark index or a yield series): upper-case letters, digits, ``.``,
  ``_`` and ``-``, starting with a letter or digit, at most 20 characters (``AAPL``,
  ``BRK-B``, ``BF.B``, ``0700.HK``). Configs are upper-cased first, and an index's leading
  ``^`` is dropped (``^IXIC`` -> ``IXIC``).
- A **model name** or **account name**: letters (either case), digits, ``.``, ``_`` and ``-``,
  starting with a letter or digit (model names at most 100 characters, account names 64).

Every check matches the whole string (``fullmatch``): a trailing newline is refused.
"""

from __future__ import annotations

import re

TICKER = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,19}")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
TICKER_RULE = (
    "use upper-case letters, digits, '.', '_' or '-', starting with a letter or digit, "
    "at most 20 characters (e.g. AAPL, BRK-B)"
)


def is_ticker(name: object) -> bool:
    """Whether ``name`` is a valid ticker (already upper-cased).

    >>> is_ticker("BRK-B"), is_ticker("AAPL\\n"), is_ticker("<svg onload=x>"), is_ticker("aapl")
    (True, False, False, False)
    """
    return isinstance(name, str) and TICKER.fullmatch(name) is not None


def bad_ticker(names: object) -> str | None:
    """The first name of ``names`` that is not a valid ticker, or None.

    >>> bad_ticker(["AAPL", "A/B"]), bad_ticker(["AAPL"])
    ('A/B', None)
    """
    for name in names if isinstance(names, list | tuple) else [names]:
        if not is_ticker(name):
            return str(name)
    return None
