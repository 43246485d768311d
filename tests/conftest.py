import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# tests/support is importable as `support` from every test package.
sys.path.insert(0, str(Path(__file__).parent))

# Property tests judge correctness, never speed: a busy CI machine must not turn a slow
# example into a failure (no per-example deadline, no "too slow" health check).
settings.register_profile("ivoz", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ivoz")


@pytest.fixture(scope="module", params=["compiled", "python"])
def sip_core(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests with the compiled sip hot path, then in Python only.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("sip_core")``. Without
    the extension the compiled run is skipped, except under CI, where it fails.
    """
    from ivoz.sip import speedups

    if request.param == "compiled" and not speedups.available():
        if os.environ.get("CI") == "true":
            pytest.fail("the compiled sip core (src/ivoz/sip/_scan.c) was not built")
        pytest.skip("the compiled sip core was not built (no C compiler?)")
    speedups.use_compiled(request.param == "compiled")
    yield request.param
    speedups.use_compiled(True)
