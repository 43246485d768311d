"""Frozen views of the configuration rows the SIP roles route by.

They are plain values (no ORM objects, no lazy loading), so that a proxy or an
application server can keep them, compare them and hand them around without touching
the database. The ``Directory`` builds them from query rows and replaces a view with a
new one when its row changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ForwardKind = Literal["unconditional", "busy", "noanswer", "unregistered"]
ForwardTarget = Literal["extension", "number"]


@dataclass(frozen=True, slots=True)
class CompanyView:
    """A client: ``domain`` (lower case) is the SIP domain of a vPBX client."""

    id: int
    brand_id: int
    name: str
    type: str
    domain: str | None
    max_calls: int
    media_relay_set_id: int | None
    application_server_set_id: int | None


@dataclass(frozen=True, slots=True)
class TerminalView:
    """A SIP endpoint's credentials; ``user_id`` is the user it serves, if any."""

    id: int
    company_id: int
    name: str
    sip_username: str
    sip_password: str
    allowed_codecs: tuple[str, ...]
    transport: str | None
    user_id: int | None
    direct_media: bool = False
    nat_force_rport: bool = True
    nat_comedia: bool = True


@dataclass(frozen=True, slots=True)
class UserView:
    """A user; ``extension_number`` is the number of its own extension (None if unset)."""

    id: int
    company_id: int
    name: str
    extension_number: str | None
    terminal_id: int | None
    do_not_disturb: bool
    call_waiting_limit: int  # 0 = unlimited
    extension_id: int | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class ExtensionView:
    """A dialable extension of a client: route_type says which target field applies."""

    id: int
    company_id: int
    number: str
    route_type: str
    user_id: int | None
    number_value: str | None


@dataclass(frozen=True, slots=True)
class ForwardView:
    """A user's call forward setting."""

    id: int
    user_id: int
    company_id: int
    kind: ForwardKind
    target_type: ForwardTarget
    target: str
    no_answer_timeout: int  # seconds
    enabled: bool


@dataclass(frozen=True, slots=True)
class ServerView:
    """An application server: where the users proxy sends a client's calls."""

    id: int
    host: str
    port: int
    transport: str = "udp"
    set_id: int | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class RelayView:
    """A media relay's ng control address and its weight within its set."""

    id: int
    set_id: int
    host: str
    port: int
    weight: int
    name: str = ""
