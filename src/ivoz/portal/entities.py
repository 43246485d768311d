"""Which entities each level's API offers, and how: the access table of the portal.

One ``EntitySpec`` per (level, entity). Reading is further confined by
``tenancy.scope_query``; this table decides what a level may *write*. Column types
that the name rules in ``schemas`` cannot guess (enumerations, extension numbers,
E.164 prefixes) are given here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ivoz.domain import models as m
from ivoz.portal import fields as f
from ivoz.portal.errors import FieldError
from ivoz.portal.schemas import EntitySpec
from ivoz.portal.tokens import Level


def _lit(values: tuple[str, ...]) -> Any:
    return Literal[values]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


def _prefix(value: str) -> str:
    # An E.164 prefix: "+" and up to 15 digits ("+34", "+3491").
    if not re.fullmatch(r"\+[0-9]{1,15}", value):
        raise ValueError("must be an E.164 prefix: '+' then 1 to 15 digits, e.g. +34")
    return value


def _mac(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}", value):
        raise ValueError("must be a MAC address, e.g. 00:11:22:aa:bb:cc")
    return value.lower()


def _digits(value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,10}", value):
        raise ValueError("must be digits")
    return value


Regex = Annotated[f.Text, Field(max_length=200), AfterValidator(_regex)]
Prefix = Annotated[str, Field(max_length=16), AfterValidator(_prefix)]
Mac = Annotated[str, Field(max_length=17), AfterValidator(_mac)]
Digits = Annotated[str, Field(max_length=10), AfterValidator(_digits)]
NonNegative = Annotated[int, Field(ge=0, le=f.INT32_MAX)]
Priority = Annotated[int, Field(ge=0, le=1_000_000)]


class TransformationRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    direction: Literal["caller_in", "callee_in", "caller_out", "callee_out"]
    priority: Priority = 1
    match: Regex
    replace: Annotated[f.Text, Field(max_length=200)]


TRANSPORT = {"transport": _lit(m.TRANSPORTS)}
TRANSPORT_OPT = {"transport": _lit(m.TRANSPORTS)}
LIMITS = {
    "max_calls": NonNegative,
    "recordings_limit_mb": NonNegative,
    "max_daily_usage": NonNegative,
    "weight": NonNegative,
    "priority": Priority,
    "call_waiting_limit": NonNegative,
    "national_len": Annotated[int, Field(ge=0, le=15)],
    "expires": Annotated[int, Field(ge=1, le=86400)],
}


def _spec(path: str, model: type[m.Base], **kwargs: Any) -> EntitySpec:
    types = {**LIMITS, **kwargs.pop("types", {})}
    return EntitySpec(path=path, model=model, entity=model.__name__, types=types, **kwargs)


READ_ONLY = {"can_create": False, "can_update": False, "can_delete": False}


def _reference(write: bool) -> list[EntitySpec]:
    access = {} if write else READ_ONLY
    return [
        _spec("languages", m.Language, **access),
        _spec("timezones", m.Timezone, **access),
        _spec("currencies", m.Currency, **access),
        _spec(
            "countries",
            m.Country,
            types={"code": Annotated[str, Field(pattern=r"^[A-Z]{2}$")], "calling_code": Digits},
            **access,
        ),
        _spec("features", m.Feature, **access),
        _spec(
            "application-server-sets",
            m.ApplicationServerSet,
            types={"distribute_method": _lit(m.DISTRIBUTE_METHODS)},
            **access,
        ),
        _spec("media-relay-sets", m.MediaRelaySet, **access),
    ]


async def _admin_levels(work: Any, values: dict[str, Any], row: Any) -> None:
    """A brand creates brand or client administrators; a client only client ones."""
    level = values.get("level", row.level if row is not None else None)
    company = values.get("company_id", row.company_id if row is not None else None)
    if level == "client" and company is None:
        raise FieldError("company_id", "a client administrator needs its client")
    if level in ("platform", "brand") and company is not None:
        raise FieldError("company_id", f"a {level} administrator has no client")
    if level == "platform":
        values["brand_id"] = None


def _administrators(level: Level) -> EntitySpec:
    allowed = {
        "platform": m.ADMIN_LEVELS,
        "brand": ("brand", "client"),
        "client": ("client",),
    }[level]
    return _spec(
        "administrators",
        m.Administrator,
        types={
            "level": _lit(allowed),
            "username": Annotated[f.Text, Field(min_length=1, max_length=65)],
        },
        passwords={"password": "password_hash"},
        check=_admin_levels,
        fixed={"level": "client"} if level == "client" else {},
        readonly=frozenset({"level"}) if level == "client" else frozenset(),
        unrestricted_only=True,
    )


# Grants name entities by model class name (ivoz.domain.tenancy).
GRANTABLE = tuple(sorted(mapper.class_.__name__ for mapper in m.Base.registry.mappers))


def _grants() -> EntitySpec:
    return _spec(
        "administrator-grants",
        m.AdministratorGrant,
        types={"entity": _lit(GRANTABLE)},
        unrestricted_only=True,
    )


async def _brand_features(work: Any, values: dict[str, Any], row: Any) -> None:
    """A brand hands its clients only features the brand itself has."""
    features = values.get("features")
    if features is None:
        return
    brand = await work.session.get(m.Brand, work.actor.brand_id)
    allowed = {feature.id for feature in brand.features} if brand is not None else set()
    extra = sorted(feature.id for feature in features if feature.id not in allowed)
    if extra:
        raise FieldError("feature_ids", f"features {extra} are not enabled for the brand")


PORTAL_TYPES = {"level": _lit(m.PORTAL_LEVELS)}
COMPANY_TYPES = {"type": _lit(m.COMPANY_TYPES)}
EXCLUDE_LOGO = frozenset({"logo"})
FEATURES = {"feature_ids": ("features", m.Feature)}


async def _forward_target(work: Any, values: dict[str, Any], row: Any) -> None:
    """An extension target is 2-10 digits; a number is E.164 or digits to dial."""
    kind = values.get("target_type", row.target_type if row is not None else "extension")
    target = values.get("target", row.target if row is not None else None)
    if target is None:
        return
    if kind == "extension" and not re.fullmatch(r"[0-9]{2,10}", target):
        raise FieldError("target", "an extension target must be 2 to 10 digits")
    if kind == "number" and not re.fullmatch(r"\+?[0-9]{1,15}", target):
        raise FieldError("target", "a number target must be E.164 (+34...) or digits")


FORWARD_TYPES = {
    "kind": _lit(m.CALL_FORWARD_KINDS),
    "target_type": _lit(m.CALL_FORWARD_TARGETS),
    "target": Annotated[str, Field(min_length=1, max_length=16)],
    "no_answer_timeout": Annotated[int, Field(ge=1, le=300)],
}


def _forwards(path: str) -> EntitySpec:
    return _spec(path, m.CallForwardSetting, types=FORWARD_TYPES, check=_forward_target)


def platform() -> list[EntitySpec]:
    return [
        _spec(
            "brands",
            m.Brand,
            relations={**FEATURES, "proxy_trunks_ids": ("proxy_trunks", m.ProxyTrunks)},
        ),
        _spec("companies", m.Company, types=COMPANY_TYPES, relations=FEATURES),
        _administrators("platform"),
        _grants(),
        _spec("web-portals", m.WebPortal, types=PORTAL_TYPES, exclude=EXCLUDE_LOGO),
        *_reference(write=True),
        _spec("application-servers", m.ApplicationServer),
        _spec("media-relays", m.MediaRelay),
        _spec("proxy-users", m.ProxyUsers),
        _spec("proxy-trunks", m.ProxyTrunks),
        _spec(
            "transformation-rule-sets",
            m.TransformationRuleSet,
            types={"rules": list[TransformationRule]},
        ),
    ]


def brand() -> list[EntitySpec]:
    return [
        _spec(
            "companies",
            m.Company,
            types=COMPANY_TYPES,
            relations=FEATURES,
            check=_brand_features,
        ),
        _administrators("brand"),
        _grants(),
        _spec(
            "web-portals",
            m.WebPortal,
            types={"level": _lit(("brand", "client", "user"))},
            exclude=EXCLUDE_LOGO,
        ),
        _spec("carriers", m.Carrier),
        _spec(
            "carrier-servers",
            m.CarrierServer,
            types={**TRANSPORT, "uri_scheme": _lit(m.URI_SCHEMES)},
        ),
        _spec("ddi-providers", m.DdiProvider),
        _spec("ddi-provider-addresses", m.DdiProviderAddress),
        _spec(
            "ddi-provider-registrations", m.DdiProviderRegistration, types={"username": f.SipUser}
        ),
        _spec("routing-patterns", m.RoutingPattern, types={"prefix": Prefix}),
        _spec(
            "routing-pattern-groups",
            m.RoutingPatternGroup,
            relations={"routing_pattern_ids": ("patterns", m.RoutingPattern)},
        ),
        _spec(
            "outgoing-routings",
            m.OutgoingRouting,
            types={"type": _lit(m.ROUTING_TYPES)},
            relations={"carrier_ids": ("carriers", m.Carrier)},
        ),
        _spec("ddis", m.Ddi, types={"route_type": _lit(m.DDI_ROUTES)}),
        _spec(
            "transformation-rule-sets",
            m.TransformationRuleSet,
            types={"rules": list[TransformationRule]},
        ),
        *_reference(write=False),
    ]


ENDPOINT_TYPES = {**TRANSPORT_OPT, "mac": Mac}


def client() -> list[EntitySpec]:
    return [
        _spec("users", m.User, passwords={"password": "password_hash"}),
        _spec("terminals", m.Terminal, types=ENDPOINT_TYPES),
        _spec(
            "extensions",
            m.Extension,
            types={
                "number": f.ExtensionNumber,
                "route_type": _lit(m.EXTENSION_ROUTES),
                "number_value": f.E164,
            },
        ),
        _spec(
            "friends",
            m.Friend,
            types={**ENDPOINT_TYPES, "auth_mode": _lit(m.FRIEND_AUTH), "patterns": list[Regex]},
        ),
        _spec("retail-accounts", m.RetailAccount, types={**ENDPOINT_TYPES, "name": f.SipUser}),
        _spec(
            "residential-devices", m.ResidentialDevice, types={**ENDPOINT_TYPES, "name": f.SipUser}
        ),
        # A client routes the numbers its brand gave it; it neither adds nor removes them.
        _spec(
            "ddis",
            m.Ddi,
            types={"route_type": _lit(m.DDI_ROUTES)},
            can_create=False,
            can_delete=False,
            writable=frozenset(
                {
                    "display_name",
                    "route_type",
                    "user_id",
                    "friend_id",
                    "retail_account_id",
                    "residential_device_id",
                    "record_calls",
                }
            ),
        ),
        _forwards("call-forward-settings"),
        _administrators("client"),
        _grants(),
        _spec("transformation-rule-sets", m.TransformationRuleSet, **READ_ONLY),
        *_reference(write=False),
    ]


def for_level(level: Level) -> list[EntitySpec]:
    if level == "platform":
        return platform()
    if level == "brand":
        return brand()
    if level == "client":
        return client()
    # A user manages its own call forwards (user_id, company and brand are its own).
    return [_forwards("call-forwards")]
