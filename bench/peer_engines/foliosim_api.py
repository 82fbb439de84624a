"""foliosim through its Python API, whole process: ``load_config`` + ``run_backtest``.

``python bench/peer_engines/foliosim_api.py CONFIG [--set section.key=value ...]`` (run from
the repository root, in foliosim's venv) prints one ``PEER_RESULT`` line: the final value of
the strategy and the number of weeks, as the other peer scripts do.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.workspace import workspace_dir

RESULT_TAG = "PEER_RESULT "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    result = run_backtest(cfg, workspace_dir())
    summary = result.summary
    print(
        RESULT_TAG
        + json.dumps(
            {
                "final": float(summary.final_value),
                "weeks": int(summary.weeks) + 1,
                "last": str(summary.end),
                "timings": {k: round(v, 3) for k, v in result.timings.items()},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
