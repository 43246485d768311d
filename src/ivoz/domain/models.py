"""The configuration model: every entity the four levels configure, as SQLAlchemy 2 models.

Ownership is carried by columns and is what ``ivoz.domain.tenancy`` scopes on:

- platform rows (infrastructure, reference data) have no tenant column;
- brand-owned rows have ``brand_id``;
- client-owned rows have ``company_id`` *and* ``brand_id`` (the company's brand), so a
  brand-level query needs no join. A ``before_flush`` hook copies the company's brand
  into ``brand_id`` so the two can never disagree (see ``_sync_brand_ids``).

Constraints live in the database (unique SIP usernames per company, DDIs per brand,
extensions per company, e-mails per brand, administrator usernames per brand and on the
platform; CHECKs for enumerations; foreign keys with explicit ON DELETE rules), so that
two racing requests cannot both succeed. Names follow ``NAMING`` so that Alembic
migrations and error messages can refer to constraints by a stable name.

Delete rules (docs/configuration-model.md has the table): deleting a brand cascades to
everything it owns; deleting a company cascades to its terminals, users, extensions,
DDIs, friends, accounts, devices, administrators and portals; deleting something a row
merely *points at* (a terminal used by a user, a user an extension or DDI routes to, a
language, a media relay set) sets the pointer to NULL; reference data (languages,
countries...) and infrastructure sets in use by a company are never cascaded away.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    event,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

# Stable constraint names: Alembic needs them to alter constraints (and SQLite batch mode
# needs them to recreate tables); the API maps IntegrityErrors by name.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Enumerations, checked by CHECK constraints (and by the API's validation).
ADMIN_LEVELS = ("platform", "brand", "client")
PORTAL_LEVELS = ("platform", "brand", "client", "user")
COMPANY_TYPES = ("vpbx", "residential", "retail", "wholesale")
TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")
URI_SCHEMES = ("sip", "sips")
# The seed's codec list (FEATURES.md row 35).
CODECS = ("PCMA", "PCMU", "GSM", "speex", "G722", "G726", "G729", "iLBC", "opus")
EXTENSION_ROUTES = (
    "user",
    "number",
    "friend",
    "ivr",
    "hunt_group",
    "queue",
    "conference",
    "conditional",
)
DDI_ROUTES = (
    "user",
    "ivr",
    "hunt_group",
    "queue",
    "conference",
    "fax",
    "friend",
    "conditional",
    "residential",
    "retail",
    "prompt",
)
FRIEND_AUTH = ("ip", "register")
CALL_FORWARD_KINDS = ("unconditional", "busy", "noanswer", "unregistered")
CALL_FORWARD_TARGETS = ("extension", "number")
ROUTING_TYPES = ("pattern", "group", "fax")
DISTRIBUTE_METHODS = ("hash", "rr")


def _in(column: str, values: tuple[str, ...]) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


# Foreign-key helpers: the ON DELETE rule is always explicit.
def _fk(target: str, ondelete: str, *, nullable: bool = False, index: bool = True) -> Any:
    return mapped_column(
        Integer, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index
    )


def _brand_fk(*, nullable: bool = False) -> Any:
    return _fk("brands.id", "CASCADE", nullable=nullable)


def _company_fk(*, nullable: bool = False) -> Any:
    return _fk("companies.id", "CASCADE", nullable=nullable)


# --------------------------------------------------------------------------- reference data


class Language(Base):
    __tablename__ = "languages"
    id: Mapped[int] = mapped_column(primary_key=True)
    iden: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(100))


class Timezone(Base):
    __tablename__ = "timezones"
    id: Mapped[int] = mapped_column(primary_key=True)
    tz: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")


class Currency(Base):
    __tablename__ = "currencies"
    id: Mapped[int] = mapped_column(primary_key=True)
    iden: Mapped[str] = mapped_column(String(3), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(5), default="")


class Country(Base):
    __tablename__ = "countries"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(2), unique=True)  # ISO 3166-1 alpha-2
    name: Mapped[str] = mapped_column(String(100))
    calling_code: Mapped[str] = mapped_column(String(5))  # E.164 country code, digits only


class Feature(Base):
    __tablename__ = "features"
    id: Mapped[int] = mapped_column(primary_key=True)
    iden: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))


brand_features = Table(
    "brand_features",
    Base.metadata,
    Column("brand_id", ForeignKey("brands.id", ondelete="CASCADE"), primary_key=True),
    Column("feature_id", ForeignKey("features.id", ondelete="CASCADE"), primary_key=True),
)

company_features = Table(
    "company_features",
    Base.metadata,
    Column("company_id", ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True),
    Column("feature_id", ForeignKey("features.id", ondelete="CASCADE"), primary_key=True),
)

# --------------------------------------------------------------------------- infrastructure


class ApplicationServerSet(Base):
    __tablename__ = "application_server_sets"
    __table_args__ = (_in("distribute_method", DISTRIBUTE_METHODS),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(300), default="")
    distribute_method: Mapped[str] = mapped_column(String(10), default="hash")


class ApplicationServer(Base):
    __tablename__ = "application_servers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    ip: Mapped[str] = mapped_column(String(50), unique=True)
    port: Mapped[int] = mapped_column(default=5060)
    application_server_set_id: Mapped[int | None] = _fk(
        "application_server_sets.id", "SET NULL", nullable=True
    )


class MediaRelaySet(Base):
    __tablename__ = "media_relay_sets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(300), default="")


class MediaRelay(Base):
    __tablename__ = "media_relays"
    __table_args__ = (
        UniqueConstraint("ng_host", "ng_port"),
        CheckConstraint("weight >= 0", name="weight"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    media_relay_set_id: Mapped[int] = _fk("media_relay_sets.id", "CASCADE")
    name: Mapped[str] = mapped_column(String(100), default="")
    # The relay's ng control socket (rtpengine's ng protocol over UDP).
    ng_host: Mapped[str] = mapped_column(String(100))
    ng_port: Mapped[int] = mapped_column(default=22222)
    weight: Mapped[int] = mapped_column(default=1)


class ProxyUsers(Base):
    __tablename__ = "proxy_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    ip: Mapped[str] = mapped_column(String(50), unique=True)
    advertised_ip: Mapped[str | None] = mapped_column(String(50))


class ProxyTrunks(Base):
    __tablename__ = "proxy_trunks"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    ip: Mapped[str] = mapped_column(String(50), unique=True)
    advertised_ip: Mapped[str | None] = mapped_column(String(50))


# Trunk-side signalling addresses a brand uses (FEATURES.md row 15): several per brand.
brand_proxy_trunks = Table(
    "brand_proxy_trunks",
    Base.metadata,
    Column("brand_id", ForeignKey("brands.id", ondelete="CASCADE"), primary_key=True),
    Column("proxy_trunks_id", ForeignKey("proxy_trunks.id", ondelete="CASCADE"), primary_key=True),
)

# --------------------------------------------------------------------------- tenancy


class Brand(Base):
    __tablename__ = "brands"
    __table_args__ = (
        CheckConstraint("max_calls >= 0", name="max_calls"),
        CheckConstraint("recordings_limit_mb >= 0", name="recordings_limit_mb"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # SIP domain shared by the brand's retail accounts and residential devices.
    domain_users: Mapped[str | None] = mapped_column(String(190), unique=True)
    max_calls: Mapped[int] = mapped_column(default=0)  # 0 = unlimited
    recordings_limit_mb: Mapped[int] = mapped_column(default=0)  # 0 = unlimited
    recordings_limit_email: Mapped[str] = mapped_column(String(190), default="")
    language_id: Mapped[int | None] = _fk("languages.id", "SET NULL", nullable=True)
    timezone_id: Mapped[int | None] = _fk("timezones.id", "SET NULL", nullable=True)
    currency_id: Mapped[int | None] = _fk("currencies.id", "SET NULL", nullable=True)
    country_id: Mapped[int | None] = _fk("countries.id", "SET NULL", nullable=True)
    features: Mapped[list[Feature]] = relationship(secondary=brand_features, lazy="selectin")
    proxy_trunks: Mapped[list[ProxyTrunks]] = relationship(
        secondary=brand_proxy_trunks, lazy="selectin"
    )


class Company(Base):
    __tablename__ = "companies"
    __table_args__ = (
        UniqueConstraint("brand_id", "name"),
        _in("type", COMPANY_TYPES),
        CheckConstraint("max_calls >= 0", name="max_calls"),
        CheckConstraint("recordings_limit_mb >= 0", name="recordings_limit_mb"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20), default="vpbx")
    # SIP domain of a vPBX client; unique on the whole platform (NULL for the others).
    domain: Mapped[str | None] = mapped_column(String(190), unique=True)
    max_calls: Mapped[int] = mapped_column(default=0)  # 0 = unlimited
    max_daily_usage: Mapped[int] = mapped_column(default=0)  # currency units; 0 = none
    recordings_limit_mb: Mapped[int] = mapped_column(default=0)
    language_id: Mapped[int | None] = _fk("languages.id", "SET NULL", nullable=True)
    timezone_id: Mapped[int | None] = _fk("timezones.id", "SET NULL", nullable=True)
    currency_id: Mapped[int | None] = _fk("currencies.id", "SET NULL", nullable=True)
    country_id: Mapped[int | None] = _fk("countries.id", "SET NULL", nullable=True)
    ip_filter: Mapped[bool] = mapped_column(Boolean, default=False)
    # CIDRs allowed when ip_filter is on, e.g. ["192.0.2.0/24", "198.51.100.7/32"].
    allowed_cidrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Infrastructure sets are never cascaded away while a company uses them.
    media_relay_set_id: Mapped[int | None] = _fk("media_relay_sets.id", "RESTRICT", nullable=True)
    application_server_set_id: Mapped[int | None] = _fk(
        "application_server_sets.id", "RESTRICT", nullable=True
    )
    transformation_rule_set_id: Mapped[int | None] = _fk(
        "transformation_rule_sets.id", "SET NULL", nullable=True
    )
    features: Mapped[list[Feature]] = relationship(secondary=company_features, lazy="selectin")


class Administrator(Base):
    __tablename__ = "administrators"
    __table_args__ = (
        # Brand and client administrators log in on their brand's portal URL.
        UniqueConstraint("brand_id", "username"),
        # Platform administrators (brand_id NULL) have their own namespace.
        Index(
            "uq_administrators_platform_username",
            "username",
            unique=True,
            sqlite_where=Column("brand_id").is_(None),
            postgresql_where=Column("brand_id").is_(None),
        ),
        _in("level", ADMIN_LEVELS),
        CheckConstraint(
            "(level = 'platform' AND brand_id IS NULL AND company_id IS NULL)"
            " OR (level = 'brand' AND brand_id IS NOT NULL AND company_id IS NULL)"
            " OR (level = 'client' AND brand_id IS NOT NULL AND company_id IS NOT NULL)",
            name="level_owner",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(65))
    password_hash: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(190), default="")
    name: Mapped[str] = mapped_column(String(100), default="")
    lastname: Mapped[str] = mapped_column(String(100), default="")
    level: Mapped[str] = mapped_column(String(10))
    brand_id: Mapped[int | None] = _brand_fk(nullable=True)
    company_id: Mapped[int | None] = _company_fk(nullable=True)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    can_impersonate: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language_id: Mapped[int | None] = _fk("languages.id", "SET NULL", nullable=True)
    timezone_id: Mapped[int | None] = _fk("timezones.id", "SET NULL", nullable=True)
    grants: Mapped[list[AdministratorGrant]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", passive_deletes=True
    )


class AdministratorGrant(Base):
    """What a restricted administrator may do on one entity (a model class name)."""

    __tablename__ = "administrator_grants"
    __table_args__ = (UniqueConstraint("administrator_id", "entity"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    administrator_id: Mapped[int] = _fk("administrators.id", "CASCADE")
    entity: Mapped[str] = mapped_column(String(64))
    can_read: Mapped[bool] = mapped_column(Boolean, default=True)
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)


class WebPortal(Base):
    __tablename__ = "web_portals"
    __table_args__ = (
        _in("level", PORTAL_LEVELS),
        CheckConstraint(
            "(level = 'platform' AND brand_id IS NULL AND company_id IS NULL)"
            " OR (level IN ('brand', 'user') AND brand_id IS NOT NULL)"
            " OR (level = 'client' AND brand_id IS NOT NULL)",
            name="level_owner",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # Scheme, host and optional port, e.g. "http://127.0.0.1:8000"; the Host decides the theme.
    url: Mapped[str] = mapped_column(String(255), unique=True)
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100), default="")
    colour: Mapped[str] = mapped_column(String(20), default="#2f6fb0")
    logo_path: Mapped[str | None] = mapped_column(String(255))
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_mime: Mapped[str | None] = mapped_column(String(50))
    brand_id: Mapped[int | None] = _brand_fk(nullable=True)
    company_id: Mapped[int | None] = _company_fk(nullable=True)


# --------------------------------------------------------------------------- endpoints and numbers


class TransformationRuleSet(Base):
    """Number normalisation to and from E.164; brand_id NULL = a generic platform set."""

    __tablename__ = "transformation_rule_sets"
    __table_args__ = (UniqueConstraint("brand_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int | None] = _brand_fk(nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    country_id: Mapped[int | None] = _fk("countries.id", "SET NULL", nullable=True)
    international_code: Mapped[str] = mapped_column(String(10), default="00")
    trunk_prefix: Mapped[str] = mapped_column(String(5), default="")
    area_code: Mapped[str] = mapped_column(String(5), default="")
    national_len: Mapped[int] = mapped_column(default=9)
    # Extra rules: [{"direction": "caller_in"|"callee_in"|"caller_out"|"callee_out",
    #                "priority": int, "match": regex, "replace": template}, ...]
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Terminal(Base):
    __tablename__ = "terminals"
    __table_args__ = (
        # RFC 3261 22: a user name is unique within its realm, i.e. the company's domain.
        UniqueConstraint("company_id", "sip_username"),
        UniqueConstraint("company_id", "name"),
        CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name="transport",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = _company_fk()
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    sip_username: Mapped[str] = mapped_column(String(100))
    sip_password: Mapped[str] = mapped_column(String(100))
    allowed_codecs: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["PCMA", "PCMU"])
    transport: Mapped[str | None] = mapped_column(String(5))  # NULL = any
    direct_media: Mapped[bool] = mapped_column(Boolean, default=False)
    # NAT: answer to the source port (RFC 3581) and latch media to the source (comedia).
    nat_force_rport: Mapped[bool] = mapped_column(Boolean, default=True)
    nat_comedia: Mapped[bool] = mapped_column(Boolean, default=True)
    srtp: Mapped[bool] = mapped_column(Boolean, default=False)
    t38_passthrough: Mapped[bool] = mapped_column(Boolean, default=False)
    mac: Mapped[str | None] = mapped_column(String(17))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("brand_id", "email"),
        # One terminal serves at most one user.
        UniqueConstraint("terminal_id"),
        CheckConstraint("call_waiting_limit >= 0", name="call_waiting_limit"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = _company_fk()
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    lastname: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(190))  # portal login
    password_hash: Mapped[str | None] = mapped_column(String(255))  # NULL = no portal access
    # users <-> extensions/ddis reference each other: these FKs are added after both tables
    # exist (use_alter), see the initial migration.
    extension_id: Mapped[int | None] = mapped_column(
        ForeignKey("extensions.id", ondelete="SET NULL", use_alter=True), index=True
    )
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminals.id", ondelete="SET NULL"))
    outgoing_ddi_id: Mapped[int | None] = mapped_column(
        ForeignKey("ddis.id", ondelete="SET NULL", use_alter=True), index=True
    )
    do_not_disturb: Mapped[bool] = mapped_column(Boolean, default=False)
    call_waiting_limit: Mapped[int] = mapped_column(default=0)  # 0 = unlimited
    language_id: Mapped[int | None] = _fk("languages.id", "SET NULL", nullable=True)
    timezone_id: Mapped[int | None] = _fk("timezones.id", "SET NULL", nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Friend(Base):
    """A client's own PBX: reached by IP or registering, for numbers matching its patterns."""

    __tablename__ = "friends"
    __table_args__ = (
        UniqueConstraint("company_id", "name"),
        UniqueConstraint("company_id", "sip_username"),
        _in("auth_mode", FRIEND_AUTH),
        CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name="transport",
        ),
        CheckConstraint("auth_mode = 'register' OR ip IS NOT NULL", name="ip_needed"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = _company_fk()
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    auth_mode: Mapped[str] = mapped_column(String(10), default="register")
    ip: Mapped[str | None] = mapped_column(String(50))
    port: Mapped[int | None] = mapped_column()
    transport: Mapped[str | None] = mapped_column(String(5))
    sip_username: Mapped[str | None] = mapped_column(String(100))
    sip_password: Mapped[str | None] = mapped_column(String(100))
    # Numbers routed to this friend: regular expressions over the dialled number.
    patterns: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[int] = mapped_column(default=1)
    allowed_codecs: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["PCMA", "PCMU"])
    from_domain: Mapped[str | None] = mapped_column(String(190))
    transformation_rule_set_id: Mapped[int | None] = _fk(
        "transformation_rule_sets.id", "SET NULL", nullable=True
    )


class RetailAccount(Base):
    """SIP trunking for a retail client; registers in the brand's users domain."""

    __tablename__ = "retail_accounts"
    __table_args__ = (
        UniqueConstraint("brand_id", "name"),
        CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name="transport",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = _company_fk()
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))  # SIP username
    description: Mapped[str] = mapped_column(String(300), default="")
    sip_password: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(50))  # direct connectivity when set
    port: Mapped[int | None] = mapped_column()
    transport: Mapped[str | None] = mapped_column(String(5))
    allowed_codecs: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["PCMA", "PCMU"])
    transformation_rule_set_id: Mapped[int | None] = _fk(
        "transformation_rule_sets.id", "SET NULL", nullable=True
    )


class ResidentialDevice(Base):
    """A single-line residential service; registers in the brand's users domain."""

    __tablename__ = "residential_devices"
    __table_args__ = (
        UniqueConstraint("brand_id", "name"),
        CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name="transport",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = _company_fk()
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))  # SIP username
    description: Mapped[str] = mapped_column(String(300), default="")
    sip_password: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(50))
    port: Mapped[int | None] = mapped_column()
    transport: Mapped[str | None] = mapped_column(String(5))
    allowed_codecs: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["PCMA", "PCMU"])
    language_id: Mapped[int | None] = _fk("languages.id", "SET NULL", nullable=True)
    do_not_disturb: Mapped[bool] = mapped_column(Boolean, default=False)


class Extension(Base):
    __tablename__ = "extensions"
    __table_args__ = (
        UniqueConstraint("company_id", "number"),
        _in("route_type", EXTENSION_ROUTES),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = _company_fk()
    brand_id: Mapped[int] = _brand_fk()
    number: Mapped[str] = mapped_column(String(10))
    route_type: Mapped[str] = mapped_column(String(20), default="user")
    # Targets: the one named by route_type is used. A deleted target leaves NULL here
    # (the extension then routes nowhere until edited), never a dangling id.
    user_id: Mapped[int | None] = _fk("users.id", "SET NULL", nullable=True)
    friend_id: Mapped[int | None] = _fk("friends.id", "SET NULL", nullable=True)
    number_value: Mapped[str | None] = mapped_column(String(25))  # E.164 for route "number"
    friend_value: Mapped[str | None] = mapped_column(String(25))  # number dialled via friend


class CallForwardSetting(Base):
    """A user's call forward (FEATURES.md row 55): when to divert, and where to.

    ``target`` is an extension number of the same client (``target_type`` "extension")
    or a number dialled out (``target_type`` "number": E.164 "+34..." or plain digits).
    ``no_answer_timeout`` (seconds) is how long a "noanswer" forward lets the user ring.
    """

    __tablename__ = "call_forward_settings"
    __table_args__ = (
        _in("kind", CALL_FORWARD_KINDS),
        _in("target_type", CALL_FORWARD_TARGETS),
        CheckConstraint("no_answer_timeout > 0 AND no_answer_timeout <= 300", name="timeout"),
        CheckConstraint("length(target) > 0", name="target"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _fk("users.id", "CASCADE")
    company_id: Mapped[int] = _company_fk()
    brand_id: Mapped[int] = _brand_fk()
    kind: Mapped[str] = mapped_column(String(15))
    target_type: Mapped[str] = mapped_column(String(10), default="extension")
    target: Mapped[str] = mapped_column(String(25))
    no_answer_timeout: Mapped[int] = mapped_column(default=10)  # seconds
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class DdiProvider(Base):
    __tablename__ = "ddi_providers"
    __table_args__ = (UniqueConstraint("brand_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    transformation_rule_set_id: Mapped[int | None] = _fk(
        "transformation_rule_sets.id", "SET NULL", nullable=True
    )
    media_relay_set_id: Mapped[int | None] = _fk("media_relay_sets.id", "RESTRICT", nullable=True)


class DdiProviderAddress(Base):
    """A source address from which the provider's calls are accepted (IP authentication)."""

    __tablename__ = "ddi_provider_addresses"
    # One address identifies one provider within a brand: inbound matching is unambiguous.
    __table_args__ = (UniqueConstraint("brand_id", "ip"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ddi_provider_id: Mapped[int] = _fk("ddi_providers.id", "CASCADE")
    brand_id: Mapped[int] = _brand_fk()
    ip: Mapped[str] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(String(300), default="")


class DdiProviderRegistration(Base):
    """An outbound registration the trunks proxy keeps with a DDI provider (RFC 3261 10)."""

    __tablename__ = "ddi_provider_registrations"
    __table_args__ = (CheckConstraint("expires > 0", name="expires"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ddi_provider_id: Mapped[int] = _fk("ddi_providers.id", "CASCADE")
    brand_id: Mapped[int] = _brand_fk()
    username: Mapped[str] = mapped_column(String(100))
    domain: Mapped[str] = mapped_column(String(190))
    realm: Mapped[str] = mapped_column(String(190), default="")
    auth_username: Mapped[str] = mapped_column(String(100), default="")
    auth_password: Mapped[str] = mapped_column(String(100), default="")
    auth_proxy: Mapped[str] = mapped_column(String(190), default="")
    expires: Mapped[int] = mapped_column(default=3600)  # seconds
    contact_username: Mapped[str] = mapped_column(String(100), default="")
    multi_ddi: Mapped[bool] = mapped_column(Boolean, default=False)


class Ddi(Base):
    __tablename__ = "ddis"
    __table_args__ = (
        UniqueConstraint("brand_id", "ddi_e164"),
        CheckConstraint(
            "route_type IS NULL OR route_type IN (" + ", ".join(f"'{r}'" for r in DDI_ROUTES) + ")",
            name="route_type",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = _brand_fk()
    # NULL while the brand has not given the number to a client.
    company_id: Mapped[int | None] = _company_fk(nullable=True)
    ddi_e164: Mapped[str] = mapped_column(String(25))  # "+34911234567"
    country_id: Mapped[int | None] = _fk("countries.id", "SET NULL", nullable=True)
    ddi_provider_id: Mapped[int | None] = _fk("ddi_providers.id", "SET NULL", nullable=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    route_type: Mapped[str | None] = mapped_column(String(20))  # NULL = outbound only
    user_id: Mapped[int | None] = _fk("users.id", "SET NULL", nullable=True)
    friend_id: Mapped[int | None] = _fk("friends.id", "SET NULL", nullable=True)
    retail_account_id: Mapped[int | None] = _fk("retail_accounts.id", "SET NULL", nullable=True)
    residential_device_id: Mapped[int | None] = _fk(
        "residential_devices.id", "SET NULL", nullable=True
    )
    record_calls: Mapped[bool] = mapped_column(Boolean, default=False)


# --------------------------------------------------------------------------- interconnection


class Carrier(Base):
    __tablename__ = "carriers"
    __table_args__ = (UniqueConstraint("brand_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    transformation_rule_set_id: Mapped[int | None] = _fk(
        "transformation_rule_sets.id", "SET NULL", nullable=True
    )
    media_relay_set_id: Mapped[int | None] = _fk("media_relay_sets.id", "RESTRICT", nullable=True)
    currency_id: Mapped[int | None] = _fk("currencies.id", "SET NULL", nullable=True)


class CarrierServer(Base):
    __tablename__ = "carrier_servers"
    __table_args__ = (
        _in("transport", TRANSPORTS),
        _in("uri_scheme", URI_SCHEMES),
        CheckConstraint("port IS NULL OR (port > 0 AND port < 65536)", name="port"),
        CheckConstraint("weight >= 0", name="weight"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    carrier_id: Mapped[int] = _fk("carriers.id", "CASCADE")
    brand_id: Mapped[int] = _brand_fk()
    host: Mapped[str] = mapped_column(String(190))  # IP address or host name
    port: Mapped[int | None] = mapped_column()  # NULL = scheme default / DNS SRV
    transport: Mapped[str] = mapped_column(String(5), default="udp")
    uri_scheme: Mapped[str] = mapped_column(String(4), default="sip")
    auth_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    auth_user: Mapped[str] = mapped_column(String(100), default="")
    auth_password: Mapped[str] = mapped_column(String(100), default="")
    outbound_proxy: Mapped[str | None] = mapped_column(String(190))
    # From rewriting: replace user and/or domain of the From URI sent to the carrier.
    from_user: Mapped[str | None] = mapped_column(String(100))
    from_domain: Mapped[str | None] = mapped_column(String(190))
    send_pai: Mapped[bool] = mapped_column(Boolean, default=False)  # RFC 3325
    send_rpid: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(default=1)  # lower first (failover)
    weight: Mapped[int] = mapped_column(default=1)  # share within a priority


class RoutingPattern(Base):
    __tablename__ = "routing_patterns"
    __table_args__ = (UniqueConstraint("brand_id", "prefix"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    prefix: Mapped[str] = mapped_column(String(80))  # E.164 prefix, e.g. "+34"


routing_pattern_group_members = Table(
    "routing_pattern_group_members",
    Base.metadata,
    Column(
        "routing_pattern_group_id",
        ForeignKey("routing_pattern_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "routing_pattern_id",
        ForeignKey("routing_patterns.id", ondelete="CASCADE"),
        primary_key=True,
    ),
)


class RoutingPatternGroup(Base):
    __tablename__ = "routing_pattern_groups"
    __table_args__ = (UniqueConstraint("brand_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = _brand_fk()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    patterns: Mapped[list[RoutingPattern]] = relationship(
        secondary=routing_pattern_group_members, lazy="selectin"
    )


outgoing_routing_carriers = Table(
    "outgoing_routing_carriers",
    Base.metadata,
    Column(
        "outgoing_routing_id",
        ForeignKey("outgoing_routings.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("carrier_id", ForeignKey("carriers.id", ondelete="CASCADE"), primary_key=True),
)


class OutgoingRouting(Base):
    __tablename__ = "outgoing_routings"
    __table_args__ = (
        _in("type", ROUTING_TYPES),
        CheckConstraint(
            "(type = 'pattern' AND routing_pattern_id IS NOT NULL)"
            " OR (type = 'group' AND routing_pattern_group_id IS NOT NULL)"
            " OR type = 'fax'",
            name="type_target",
        ),
        CheckConstraint("weight >= 0", name="weight"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = _brand_fk()
    company_id: Mapped[int | None] = _company_fk(nullable=True)  # NULL = all clients
    type: Mapped[str] = mapped_column(String(10), default="pattern")
    routing_pattern_id: Mapped[int | None] = _fk("routing_patterns.id", "CASCADE", nullable=True)
    routing_pattern_group_id: Mapped[int | None] = _fk(
        "routing_pattern_groups.id", "CASCADE", nullable=True
    )
    priority: Mapped[int] = mapped_column(default=1)  # lower first (failover)
    weight: Mapped[int] = mapped_column(default=1)  # share among equal priority
    blocking: Mapped[bool] = mapped_column(Boolean, default=False)  # forbidden destination
    stopper: Mapped[bool] = mapped_column(Boolean, default=False)  # no lower-priority fallback
    carriers: Mapped[list[Carrier]] = relationship(
        secondary=outgoing_routing_carriers, lazy="selectin"
    )


# --------------------------------------------------------------------------- consistency

# Models whose brand_id mirrors their company's brand.
COMPANY_OWNED: tuple[type[Base], ...] = (
    Terminal,
    User,
    Friend,
    RetailAccount,
    ResidentialDevice,
    Extension,
    CallForwardSetting,
)


@event.listens_for(Session, "before_flush")
def _sync_brand_ids(session: Session, _context: object, _instances: object) -> None:
    """Fill or correct ``brand_id`` from the owning company/carrier/provider before writing.

    Runs inside the flush (in the AsyncSession's greenlet, so the lookup is allowed).
    """
    for obj in list(session.new) + list(session.dirty):
        parent_brand: int | None = None
        if isinstance(obj, (*COMPANY_OWNED, Ddi, OutgoingRouting, WebPortal, Administrator)):
            company_id = getattr(obj, "company_id", None)
            if company_id is not None:
                parent_brand = session.execute(
                    select(Company.brand_id).where(Company.id == company_id)
                ).scalar_one_or_none()
        elif isinstance(obj, CarrierServer):
            parent_brand = session.execute(
                select(Carrier.brand_id).where(Carrier.id == obj.carrier_id)
            ).scalar_one_or_none()
        elif isinstance(obj, (DdiProviderAddress, DdiProviderRegistration)):
            parent_brand = session.execute(
                select(DdiProvider.brand_id).where(DdiProvider.id == obj.ddi_provider_id)
            ).scalar_one_or_none()
        if parent_brand is not None:
            obj.brand_id = parent_brand
