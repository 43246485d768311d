"""RTP/RTCP port pairs from the configured range.

RFC 3550 11: RTP uses an even port and RTCP the next odd one, so the pool hands out even
ports ``p`` with ``p + 1`` still in range, binds both and gives back two non-blocking
UDP sockets. Freed pairs go to the back of the queue, so a port is not reused at once
(late packets of an old call do not land in a new one). A pair that cannot be bound
(another program holds it) is skipped and retried later.
"""

from __future__ import annotations

import socket
from collections import deque
from dataclasses import dataclass

RECEIVE_BUFFER = 1 << 20  # bytes per socket: absorbs bursts between two wake-ups


class PortsExhausted(RuntimeError):
    """No free RTP port pair in the range."""


@dataclass(slots=True)
class PortPair:
    rtp_port: int
    rtp: socket.socket
    rtcp: socket.socket

    @property
    def rtcp_port(self) -> int:
        return self.rtp_port + 1

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


class PortPool:
    def __init__(self, host: str, port_min: int, port_max: int) -> None:
        first = port_min + (port_min % 2)  # RFC 3550 11: RTP on an even port
        if first + 1 > port_max:
            raise ValueError(f"RTP port range {port_min}-{port_max} holds no even/odd pair")
        self.host = host
        self._free: deque[int] = deque(range(first, port_max, 2))
        self.capacity = len(self._free)

    @property
    def available(self) -> int:
        return len(self._free)

    def allocate(self) -> PortPair:
        for _ in range(len(self._free)):
            port = self._free.popleft()
            pair = self._bind(port)
            if pair is not None:
                return pair
            self._free.append(port)
        raise PortsExhausted(f"no free RTP port pair on {self.host}")

    def release(self, pair: PortPair) -> None:
        pair.close()
        self._free.append(pair.rtp_port)

    def _bind(self, port: int) -> PortPair | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sockets: list[socket.socket] = []
        try:
            for p in (port, port + 1):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.setblocking(False)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                except OSError:
                    pass
                sock.bind((self.host, p))
        except OSError:
            for sock in sockets:
                sock.close()
            return None
        return PortPair(port, sockets[0], sockets[1])
