"""Live state behind small typed interfaces: in-process memory for one process, Redis for many."""

from ivoz.state.location import (
    Binding,
    LocationStore,
    MemoryLocationStore,
    RedisLocationStore,
)
from ivoz.state.relays import MemoryRelayOwners, RedisRelayOwners, RelayOwners

__all__ = [
    "Binding",
    "LocationStore",
    "MemoryLocationStore",
    "MemoryRelayOwners",
    "RedisLocationStore",
    "RedisRelayOwners",
    "RelayOwners",
]
