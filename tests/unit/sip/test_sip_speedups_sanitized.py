"""The compiled hot path under AddressSanitizer and UndefinedBehaviorSanitizer.

Builds src/ivoz/sip/_scan.c with ``-fsanitize=address,undefined`` into a copy of the
source tree and runs the differential and conformance tests against that build in a child
process: an out-of-bounds read or write, a use after free or undefined behaviour on any
generated input aborts the child, and this test fails with the sanitizer's report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from support.tools import require_tool

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


def _runtime(gcc: str, name: str) -> str:
    found = subprocess.run(
        [gcc, f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found):
        pytest.fail(f"{gcc} has no {name} (install libasan/libubsan, e.g. Debian's gcc)")
    return found


def test_scanner_is_clean_under_sanitizers(tmp_path: Path) -> None:
    gcc = require_tool("gcc")
    tree = tmp_path / "src"
    shutil.copytree(ROOT / "src", tree, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [
            *(gcc, "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer"),
            *("-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"),
            f"-I{include}",
            str(tree / "ivoz" / "sip" / "_scan.c"),
            "-o",
            str(tree / "ivoz" / "sip" / f"_scan{suffix}"),
        ],
        check=True,
    )
    env = dict(
        os.environ,
        PYTHONPATH=str(tree),
        LD_PRELOAD=f"{_runtime(gcc, 'libasan.so')}:{_runtime(gcc, 'libubsan.so')}",
        # Every object from malloc, so that reading past one is caught (pymalloc's
        # arenas would hide it); CPython's own leaks at exit are not ours to judge.
        PYTHONMALLOC="malloc",
        ASAN_OPTIONS="detect_leaks=0",
    )
    child = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            "tests/unit/sip/test_sip_speedups.py",
            "tests/conformance",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    report = child.stdout[-3000:] + child.stderr[-6000:]
    assert child.returncode == 0, report
    assert "ERROR: AddressSanitizer" not in report
    assert "runtime error:" not in report


def test_sanitized_build_is_the_one_tested(tmp_path: Path) -> None:
    """The child imports the copied, sanitized build, not the installed one."""
    tree = tmp_path / "src"
    shutil.copytree(ROOT / "src", tree, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    child = subprocess.run(
        [sys.executable, "-c", "import ivoz.sip.message as m; print(m.__file__)"],
        env=dict(os.environ, PYTHONPATH=str(tree)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip().startswith(str(tree))
