"""Live state behind small typed interfaces: in-process memory for one process, Redis for many."""

from ivoz.state.relays import MemoryRelayOwners, RedisRelayOwners, RelayOwners

__all__ = ["MemoryRelayOwners", "RedisRelayOwners", "RelayOwners"]
