"""Run every benchmark: ``python -m bench`` (``make bench``), or ``python -m bench NAME...``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

SKIP = {"results", "__main__"}


def main(argv: list[str]) -> int:
    names = argv or sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name not in SKIP and not m.name.startswith("_")
    )
    for name in names:
        print(f"== bench.{name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        module.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
