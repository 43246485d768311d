"""Writes one benchmark's figures into its own section of bench/RESULTS.md.

Each benchmark owns the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``;
running one benchmark rewrites only its section, so the table of another survives.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")

HEADER = """# Benchmark results

Written by `make bench` (or `python -m bench.NAME` for one). Figures are per core unless a
row says otherwise; the machine line under each table says where they were measured.
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    when = time.strftime("%Y-%m-%d")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {when}"


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else HEADER
    block = f"{start}\n{markdown.rstrip()}\n\n_Measured on {machine()}._\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
