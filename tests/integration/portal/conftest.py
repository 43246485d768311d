"""The portal tests again, on a real PostgreSQL server (tests/support/database.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "portal"))

from portal_harness import portal  # noqa: F401 - fixture


@pytest.fixture
def db_kind() -> str:
    return "postgresql"
