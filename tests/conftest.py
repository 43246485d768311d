import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# tests/support is importable as `support` from every test package.
sys.path.insert(0, str(Path(__file__).parent))

# Property tests judge correctness, never speed: a busy CI machine must not turn a slow
# example into a failure (no per-example deadline, no "too slow" health check).
settings.register_profile("ivoz", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ivoz")
