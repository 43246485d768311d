"""asyncio SIP transports (UDP, TCP, TLS, WS, WSS): the only SIP socket code.

``Layer`` owns the listeners and connections; ``Origin`` says where a message came
from; ``Address`` and connection ids say where to send. ``via`` holds the sans-IO
server-side Via rules (received, rport) and where responses go; ``tls`` makes and
loads certificates.
"""

from ivoz.transport.address import Address, Kind, Origin
from ivoz.transport.layer import Layer, Receiver, TransportError

__all__ = ["Address", "Kind", "Layer", "Origin", "Receiver", "TransportError"]
