"""SIP timer values (RFC 3261 section 17 and Table 4 of appendix A).

Everything here is a plain number in seconds. The transaction state machines take a
:class:`TimerConfig` so that tests and deployments can change T1/T2/T4 (RFC 3261 17.1.1.1
allows a larger T1 on high-latency networks) without touching module globals.
"""

from __future__ import annotations

from dataclasses import dataclass

T1 = 0.5  # seconds, RFC 3261 17.1.1.1: RTT estimate
T2 = 4.0  # seconds, RFC 3261 17.1.2.2: maximum retransmit interval for non-INVITE requests
T4 = 5.0  # seconds, RFC 3261 17.1.2.2: maximum duration a message will remain in the network
TRYING_DELAY = 0.2  # seconds, RFC 3261 17.2.1: send 100 Trying if the TU won't answer in 200 ms
TIMER_D_UNRELIABLE = 32.0  # seconds, RFC 3261 17.1.1.2: "at least 32 seconds for unreliable"


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """The base timer values and the durations RFC 3261 Table 4 derives from them."""

    t1: float = T1
    t2: float = T2
    t4: float = T4
    trying_delay: float = TRYING_DELAY

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2):
            raise ValueError("timers need 0 < T1 <= T2")
        if self.t4 <= 0 or self.trying_delay < 0:
            raise ValueError("T4 must be positive and the 100 Trying delay not negative")

    # RFC 3261 Table 4: Timer A, initially T1 (INVITE request retransmit, UDP only)
    def a(self) -> float:
        return self.t1

    # RFC 3261 Table 4: Timer B, 64*T1 (INVITE transaction timeout)
    def b(self) -> float:
        return 64 * self.t1

    # RFC 3261 Table 4: Timer D, > 32 s for UDP, 0 s for TCP/SCTP (wait for response retransmits)
    def d(self, reliable: bool) -> float:
        return 0.0 if reliable else max(TIMER_D_UNRELIABLE, 64 * self.t1)

    # RFC 3261 Table 4: Timer E, initially T1 (non-INVITE request retransmit, UDP only)
    def e(self) -> float:
        return self.t1

    # RFC 3261 Table 4: Timer F, 64*T1 (non-INVITE transaction timeout)
    def f(self) -> float:
        return 64 * self.t1

    # RFC 3261 Table 4: Timer G, initially T1 (INVITE response retransmit)
    def g(self) -> float:
        return self.t1

    # RFC 3261 Table 4: Timer H, 64*T1 (wait time for ACK receipt)
    def h(self) -> float:
        return 64 * self.t1

    # RFC 3261 Table 4: Timer I, T4 for UDP, 0 s for TCP/SCTP (wait time for ACK retransmits)
    def i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    # RFC 3261 Table 4: Timer J, 64*T1 for UDP, 0 s for TCP/SCTP (non-INVITE request retransmits)
    def j(self, reliable: bool) -> float:
        return 0.0 if reliable else 64 * self.t1

    # RFC 3261 Table 4: Timer K, T4 for UDP, 0 s for TCP/SCTP (wait for response retransmits)
    def k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    # RFC 6026 8.4: Timer L, 64*T1 (wait time for accepted INVITE request retransmits)
    def l(self) -> float:  # noqa: E743
        return 64 * self.t1

    # RFC 6026 8.4: Timer M, 64*T1 (wait time for retransmission of 2xx to INVITE or
    # additional 2xx from other branches of a forked INVITE)
    def m(self) -> float:
        return 64 * self.t1
