"""Checked value types for API payloads: each names what it accepts in its error.

The schemas built from the models (``ivoz.portal.schemas``) pick one of these per
column, by column name or by an explicit override, so that a bad E.164 number, CIDR,
host name, codec or colour is a 422 that names the field, never a database error.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

INT32_MAX = 2**31 - 1

# The codecs the platform offers (seed: "The supported audio codec list").
CODECS = ("PCMA", "PCMU", "GSM", "speex", "G722", "G726", "G729", "iLBC", "opus")
Codec = Literal["PCMA", "PCMU", "GSM", "speex", "G722", "G726", "G729", "iLBC", "opus"]

# ITU-T E.164: at most 15 digits, country code first (never 0); written "+34...".
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# Internal extension numbers: digits only, 2 to 10 of them.
_EXTENSION = re.compile(r"^[0-9]{2,10}$")
# RFC 3261 25.1: user = 1*( unreserved / escaped / user-unreserved ); escapes left out.
_SIP_USER = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}$")
# RFC 1123 2.1 host names: labels of letters, digits and hyphens, 1-63 octets each.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,255}$")
_URL = re.compile(r"^https?://[^\s/\x00-\x1f]+(/[^\s\x00-\x1f]*)?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("must be an E.164 number: '+' then 2 to 15 digits, e.g. +34911234567")
    return value


def _extension(value: str) -> str:
    if not _EXTENSION.match(value):
        raise ValueError("must be 2 to 10 digits")
    return value


def _sip_user(value: str) -> str:
    if not _SIP_USER.match(value):
        raise ValueError("must be a SIP user part (RFC 3261 letters, digits and -_.!~*'()&=+$,;?/)")
    return value


def is_hostname(value: str) -> bool:
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not is_hostname(value):
            raise ValueError("must be an IP address or a host name") from None
    return value


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(
            "must be an IP address or network in CIDR form, e.g. 192.0.2.0/24"
        ) from None


def _colour(value: str) -> str:
    if not _COLOUR.match(value):
        raise ValueError("must be a colour written #rrggbb")
    return value.lower()


def _email(value: str) -> str:
    if value and not _EMAIL.match(value):
        raise ValueError("must be an e-mail address (or empty)")
    return value


def _url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _text(value: str) -> str:
    # PostgreSQL refuses NUL in text; control characters have no place in names either.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, AfterValidator(_text)]
E164 = Annotated[str, Field(max_length=16), AfterValidator(_e164)]
ExtensionNumber = Annotated[str, Field(max_length=10), AfterValidator(_extension)]
SipUser = Annotated[str, Field(max_length=64), AfterValidator(_sip_user)]
Host = Annotated[str, Field(max_length=253), AfterValidator(_host)]
Cidr = Annotated[str, Field(max_length=49), AfterValidator(_cidr)]
Colour = Annotated[str, Field(max_length=7), AfterValidator(_colour)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Url = Annotated[str, Field(max_length=255), AfterValidator(_url)]
Port = Annotated[int, Field(ge=1, le=65535)]
Id = Annotated[int, Field(ge=1, le=INT32_MAX)]
Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
Password = Annotated[str, Field(min_length=8, max_length=128), AfterValidator(_text)]
