"""Initial configuration model: every table of ivoz.domain.models.

Generated with Alembic's autogenerate, then checked by hand: the users <-> extensions
and users <-> ddis foreign-key cycles are closed after both tables exist, ON DELETE
rules and CHECK constraints compared with the models, downgrade breaks the cycles
before dropping. tests/unit/domain/test_domain_migrations.py proves that the result
matches the models on SQLite and PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:52:45.173920
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "application_server_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("distribute_method", sa.String(length=10), nullable=False),
        sa.CheckConstraint(
            "distribute_method IN ('hash', 'rr')",
            name=op.f("ck_application_server_sets_distribute_method"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_server_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_application_server_sets_name")),
    )
    op.create_table(
        "countries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("calling_code", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_countries")),
        sa.UniqueConstraint("code", name=op.f("uq_countries_code")),
    )
    op.create_table(
        "currencies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iden", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("symbol", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_currencies")),
        sa.UniqueConstraint("iden", name=op.f("uq_currencies_iden")),
    )
    op.create_table(
        "features",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iden", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_features")),
        sa.UniqueConstraint("iden", name=op.f("uq_features_iden")),
    )
    op.create_table(
        "languages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iden", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_languages")),
        sa.UniqueConstraint("iden", name=op.f("uq_languages_iden")),
    )
    op.create_table(
        "media_relay_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_relay_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_media_relay_sets_name")),
    )
    op.create_table(
        "proxy_trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ip", sa.String(length=50), nullable=False),
        sa.Column("advertised_ip", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxy_trunks")),
        sa.UniqueConstraint("ip", name=op.f("uq_proxy_trunks_ip")),
        sa.UniqueConstraint("name", name=op.f("uq_proxy_trunks_name")),
    )
    op.create_table(
        "proxy_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ip", sa.String(length=50), nullable=False),
        sa.Column("advertised_ip", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxy_users")),
        sa.UniqueConstraint("ip", name=op.f("uq_proxy_users_ip")),
        sa.UniqueConstraint("name", name=op.f("uq_proxy_users_name")),
    )
    op.create_table(
        "timezones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timezones")),
        sa.UniqueConstraint("tz", name=op.f("uq_timezones_tz")),
    )
    op.create_table(
        "application_servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ip", sa.String(length=50), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("application_server_set_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_server_set_id"],
            ["application_server_sets.id"],
            name=op.f("fk_application_servers_application_server_set_id_application_server_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_servers")),
        sa.UniqueConstraint("ip", name=op.f("uq_application_servers_ip")),
        sa.UniqueConstraint("name", name=op.f("uq_application_servers_name")),
    )
    with op.batch_alter_table("application_servers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_application_servers_application_server_set_id"),
            ["application_server_set_id"],
            unique=False,
        )

    op.create_table(
        "brands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("domain_users", sa.String(length=190), nullable=True),
        sa.Column("max_calls", sa.Integer(), nullable=False),
        sa.Column("recordings_limit_mb", sa.Integer(), nullable=False),
        sa.Column("recordings_limit_email", sa.String(length=190), nullable=False),
        sa.Column("language_id", sa.Integer(), nullable=True),
        sa.Column("timezone_id", sa.Integer(), nullable=True),
        sa.Column("currency_id", sa.Integer(), nullable=True),
        sa.Column("country_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("max_calls >= 0", name=op.f("ck_brands_max_calls")),
        sa.CheckConstraint("recordings_limit_mb >= 0", name=op.f("ck_brands_recordings_limit_mb")),
        sa.ForeignKeyConstraint(
            ["country_id"],
            ["countries.id"],
            name=op.f("fk_brands_country_id_countries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["currency_id"],
            ["currencies.id"],
            name=op.f("fk_brands_currency_id_currencies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["language_id"],
            ["languages.id"],
            name=op.f("fk_brands_language_id_languages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["timezone_id"],
            ["timezones.id"],
            name=op.f("fk_brands_timezone_id_timezones"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brands")),
        sa.UniqueConstraint("domain_users", name=op.f("uq_brands_domain_users")),
        sa.UniqueConstraint("name", name=op.f("uq_brands_name")),
    )
    with op.batch_alter_table("brands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_brands_country_id"), ["country_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_brands_currency_id"), ["currency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_brands_language_id"), ["language_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_brands_timezone_id"), ["timezone_id"], unique=False)

    op.create_table(
        "media_relays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("media_relay_set_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ng_host", sa.String(length=100), nullable=False),
        sa.Column("ng_port", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.CheckConstraint("weight >= 0", name=op.f("ck_media_relays_weight")),
        sa.ForeignKeyConstraint(
            ["media_relay_set_id"],
            ["media_relay_sets.id"],
            name=op.f("fk_media_relays_media_relay_set_id_media_relay_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_relays")),
        sa.UniqueConstraint("ng_host", "ng_port", name=op.f("uq_media_relays_ng_host_ng_port")),
    )
    with op.batch_alter_table("media_relays", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_media_relays_media_relay_set_id"), ["media_relay_set_id"], unique=False
        )

    op.create_table(
        "brand_features",
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_brand_features_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name=op.f("fk_brand_features_feature_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("brand_id", "feature_id", name=op.f("pk_brand_features")),
    )
    op.create_table(
        "routing_pattern_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_routing_pattern_groups_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_pattern_groups")),
        sa.UniqueConstraint(
            "brand_id", "name", name=op.f("uq_routing_pattern_groups_brand_id_name")
        ),
    )
    with op.batch_alter_table("routing_pattern_groups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_pattern_groups_brand_id"), ["brand_id"], unique=False
        )

    op.create_table(
        "routing_patterns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("prefix", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_routing_patterns_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_patterns")),
        sa.UniqueConstraint("brand_id", "prefix", name=op.f("uq_routing_patterns_brand_id_prefix")),
    )
    with op.batch_alter_table("routing_patterns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_patterns_brand_id"), ["brand_id"], unique=False
        )

    op.create_table(
        "transformation_rule_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("country_id", sa.Integer(), nullable=True),
        sa.Column("international_code", sa.String(length=10), nullable=False),
        sa.Column("trunk_prefix", sa.String(length=5), nullable=False),
        sa.Column("area_code", sa.String(length=5), nullable=False),
        sa.Column("national_len", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_transformation_rule_sets_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["country_id"],
            ["countries.id"],
            name=op.f("fk_transformation_rule_sets_country_id_countries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transformation_rule_sets")),
        sa.UniqueConstraint(
            "brand_id", "name", name=op.f("uq_transformation_rule_sets_brand_id_name")
        ),
    )
    with op.batch_alter_table("transformation_rule_sets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transformation_rule_sets_brand_id"), ["brand_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transformation_rule_sets_country_id"), ["country_id"], unique=False
        )

    op.create_table(
        "carriers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("transformation_rule_set_id", sa.Integer(), nullable=True),
        sa.Column("media_relay_set_id", sa.Integer(), nullable=True),
        sa.Column("currency_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_carriers_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["currency_id"],
            ["currencies.id"],
            name=op.f("fk_carriers_currency_id_currencies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["media_relay_set_id"],
            ["media_relay_sets.id"],
            name=op.f("fk_carriers_media_relay_set_id_media_relay_sets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transformation_rule_set_id"],
            ["transformation_rule_sets.id"],
            name=op.f("fk_carriers_transformation_rule_set_id_transformation_rule_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carriers")),
        sa.UniqueConstraint("brand_id", "name", name=op.f("uq_carriers_brand_id_name")),
    )
    with op.batch_alter_table("carriers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carriers_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_carriers_currency_id"), ["currency_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_carriers_media_relay_set_id"), ["media_relay_set_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_carriers_transformation_rule_set_id"),
            ["transformation_rule_set_id"],
            unique=False,
        )

    op.create_table(
        "companies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("domain", sa.String(length=190), nullable=True),
        sa.Column("max_calls", sa.Integer(), nullable=False),
        sa.Column("max_daily_usage", sa.Integer(), nullable=False),
        sa.Column("recordings_limit_mb", sa.Integer(), nullable=False),
        sa.Column("language_id", sa.Integer(), nullable=True),
        sa.Column("timezone_id", sa.Integer(), nullable=True),
        sa.Column("currency_id", sa.Integer(), nullable=True),
        sa.Column("country_id", sa.Integer(), nullable=True),
        sa.Column("ip_filter", sa.Boolean(), nullable=False),
        sa.Column("allowed_cidrs", sa.JSON(), nullable=False),
        sa.Column("media_relay_set_id", sa.Integer(), nullable=True),
        sa.Column("application_server_set_id", sa.Integer(), nullable=True),
        sa.Column("transformation_rule_set_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "type IN ('vpbx', 'residential', 'retail', 'wholesale')", name=op.f("ck_companies_type")
        ),
        sa.CheckConstraint("max_calls >= 0", name=op.f("ck_companies_max_calls")),
        sa.CheckConstraint(
            "recordings_limit_mb >= 0", name=op.f("ck_companies_recordings_limit_mb")
        ),
        sa.ForeignKeyConstraint(
            ["application_server_set_id"],
            ["application_server_sets.id"],
            name=op.f("fk_companies_application_server_set_id_application_server_sets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_companies_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["country_id"],
            ["countries.id"],
            name=op.f("fk_companies_country_id_countries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["currency_id"],
            ["currencies.id"],
            name=op.f("fk_companies_currency_id_currencies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["language_id"],
            ["languages.id"],
            name=op.f("fk_companies_language_id_languages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["media_relay_set_id"],
            ["media_relay_sets.id"],
            name=op.f("fk_companies_media_relay_set_id_media_relay_sets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["timezone_id"],
            ["timezones.id"],
            name=op.f("fk_companies_timezone_id_timezones"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["transformation_rule_set_id"],
            ["transformation_rule_sets.id"],
            name=op.f("fk_companies_transformation_rule_set_id_transformation_rule_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("brand_id", "name", name=op.f("uq_companies_brand_id_name")),
        sa.UniqueConstraint("domain", name=op.f("uq_companies_domain")),
    )
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_companies_application_server_set_id"),
            ["application_server_set_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_companies_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_companies_country_id"), ["country_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_companies_currency_id"), ["currency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_companies_language_id"), ["language_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_companies_media_relay_set_id"), ["media_relay_set_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_companies_timezone_id"), ["timezone_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_companies_transformation_rule_set_id"),
            ["transformation_rule_set_id"],
            unique=False,
        )

    op.create_table(
        "ddi_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("transformation_rule_set_id", sa.Integer(), nullable=True),
        sa.Column("media_relay_set_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_ddi_providers_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["media_relay_set_id"],
            ["media_relay_sets.id"],
            name=op.f("fk_ddi_providers_media_relay_set_id_media_relay_sets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transformation_rule_set_id"],
            ["transformation_rule_sets.id"],
            name=op.f("fk_ddi_providers_transformation_rule_set_id_transformation_rule_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ddi_providers")),
        sa.UniqueConstraint("brand_id", "name", name=op.f("uq_ddi_providers_brand_id_name")),
    )
    with op.batch_alter_table("ddi_providers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ddi_providers_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ddi_providers_media_relay_set_id"), ["media_relay_set_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ddi_providers_transformation_rule_set_id"),
            ["transformation_rule_set_id"],
            unique=False,
        )

    op.create_table(
        "routing_pattern_group_members",
        sa.Column("routing_pattern_group_id", sa.Integer(), nullable=False),
        sa.Column("routing_pattern_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["routing_pattern_group_id"],
            ["routing_pattern_groups.id"],
            name=op.f(
                "fk_routing_pattern_group_members_routing_pattern_group_id_routing_pattern_groups"
            ),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["routing_pattern_id"],
            ["routing_patterns.id"],
            name=op.f("fk_routing_pattern_group_members_routing_pattern_id_routing_patterns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "routing_pattern_group_id",
            "routing_pattern_id",
            name=op.f("pk_routing_pattern_group_members"),
        ),
    )
    op.create_table(
        "administrators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=65), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=190), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("lastname", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("can_impersonate", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("language_id", sa.Integer(), nullable=True),
        sa.Column("timezone_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(level = 'platform' AND brand_id IS NULL AND company_id IS NULL) OR (level = 'brand' AND brand_id IS NOT NULL AND company_id IS NULL) OR (level = 'client' AND brand_id IS NOT NULL AND company_id IS NOT NULL)",
            name=op.f("ck_administrators_level_owner"),
        ),
        sa.CheckConstraint(
            "level IN ('platform', 'brand', 'client')", name=op.f("ck_administrators_level")
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_administrators_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_administrators_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["language_id"],
            ["languages.id"],
            name=op.f("fk_administrators_language_id_languages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["timezone_id"],
            ["timezones.id"],
            name=op.f("fk_administrators_timezone_id_timezones"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_administrators")),
        sa.UniqueConstraint(
            "brand_id", "username", name=op.f("uq_administrators_brand_id_username")
        ),
    )
    with op.batch_alter_table("administrators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_administrators_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_administrators_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_administrators_language_id"), ["language_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_administrators_timezone_id"), ["timezone_id"], unique=False
        )
        batch_op.create_index(
            "uq_administrators_platform_username",
            ["username"],
            unique=True,
            sqlite_where=sa.text("brand_id IS NULL"),
            postgresql_where=sa.text("brand_id IS NULL"),
        )

    op.create_table(
        "carrier_servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=190), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("transport", sa.String(length=5), nullable=False),
        sa.Column("uri_scheme", sa.String(length=4), nullable=False),
        sa.Column("auth_needed", sa.Boolean(), nullable=False),
        sa.Column("auth_user", sa.String(length=100), nullable=False),
        sa.Column("auth_password", sa.String(length=100), nullable=False),
        sa.Column("outbound_proxy", sa.String(length=190), nullable=True),
        sa.Column("from_user", sa.String(length=100), nullable=True),
        sa.Column("from_domain", sa.String(length=190), nullable=True),
        sa.Column("send_pai", sa.Boolean(), nullable=False),
        sa.Column("send_rpid", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name=op.f("ck_carrier_servers_transport"),
        ),
        sa.CheckConstraint(
            "uri_scheme IN ('sip', 'sips')", name=op.f("ck_carrier_servers_uri_scheme")
        ),
        sa.CheckConstraint(
            "port IS NULL OR (port > 0 AND port < 65536)", name=op.f("ck_carrier_servers_port")
        ),
        sa.CheckConstraint("weight >= 0", name=op.f("ck_carrier_servers_weight")),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_carrier_servers_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["carrier_id"],
            ["carriers.id"],
            name=op.f("fk_carrier_servers_carrier_id_carriers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carrier_servers")),
    )
    with op.batch_alter_table("carrier_servers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carrier_servers_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_carrier_servers_carrier_id"), ["carrier_id"], unique=False
        )

    op.create_table(
        "company_features",
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_company_features_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name=op.f("fk_company_features_feature_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "feature_id", name=op.f("pk_company_features")),
    )
    op.create_table(
        "ddi_provider_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ddi_provider_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_ddi_provider_addresses_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ddi_provider_id"],
            ["ddi_providers.id"],
            name=op.f("fk_ddi_provider_addresses_ddi_provider_id_ddi_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ddi_provider_addresses")),
        sa.UniqueConstraint("brand_id", "ip", name=op.f("uq_ddi_provider_addresses_brand_id_ip")),
    )
    with op.batch_alter_table("ddi_provider_addresses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ddi_provider_addresses_brand_id"), ["brand_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ddi_provider_addresses_ddi_provider_id"),
            ["ddi_provider_id"],
            unique=False,
        )

    op.create_table(
        "ddi_provider_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ddi_provider_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("domain", sa.String(length=190), nullable=False),
        sa.Column("realm", sa.String(length=190), nullable=False),
        sa.Column("auth_username", sa.String(length=100), nullable=False),
        sa.Column("auth_password", sa.String(length=100), nullable=False),
        sa.Column("auth_proxy", sa.String(length=190), nullable=False),
        sa.Column("expires", sa.Integer(), nullable=False),
        sa.Column("contact_username", sa.String(length=100), nullable=False),
        sa.Column("multi_ddi", sa.Boolean(), nullable=False),
        sa.CheckConstraint("expires > 0", name=op.f("ck_ddi_provider_registrations_expires")),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_ddi_provider_registrations_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ddi_provider_id"],
            ["ddi_providers.id"],
            name=op.f("fk_ddi_provider_registrations_ddi_provider_id_ddi_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ddi_provider_registrations")),
    )
    with op.batch_alter_table("ddi_provider_registrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ddi_provider_registrations_brand_id"), ["brand_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ddi_provider_registrations_ddi_provider_id"),
            ["ddi_provider_id"],
            unique=False,
        )

    op.create_table(
        "friends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("auth_mode", sa.String(length=10), nullable=False),
        sa.Column("ip", sa.String(length=50), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("transport", sa.String(length=5), nullable=True),
        sa.Column("sip_username", sa.String(length=100), nullable=True),
        sa.Column("sip_password", sa.String(length=100), nullable=True),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("allowed_codecs", sa.JSON(), nullable=False),
        sa.Column("from_domain", sa.String(length=190), nullable=True),
        sa.Column("transformation_rule_set_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "auth_mode = 'register' OR ip IS NOT NULL", name=op.f("ck_friends_ip_needed")
        ),
        sa.CheckConstraint("auth_mode IN ('ip', 'register')", name=op.f("ck_friends_auth_mode")),
        sa.CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name=op.f("ck_friends_transport"),
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_friends_brand_id_brands"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_friends_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transformation_rule_set_id"],
            ["transformation_rule_sets.id"],
            name=op.f("fk_friends_transformation_rule_set_id_transformation_rule_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_friends")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_friends_company_id_name")),
        sa.UniqueConstraint(
            "company_id", "sip_username", name=op.f("uq_friends_company_id_sip_username")
        ),
    )
    with op.batch_alter_table("friends", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_friends_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_friends_company_id"), ["company_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_friends_transformation_rule_set_id"),
            ["transformation_rule_set_id"],
            unique=False,
        )

    op.create_table(
        "outgoing_routings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("routing_pattern_id", sa.Integer(), nullable=True),
        sa.Column("routing_pattern_group_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("blocking", sa.Boolean(), nullable=False),
        sa.Column("stopper", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "(type = 'pattern' AND routing_pattern_id IS NOT NULL) OR (type = 'group' AND routing_pattern_group_id IS NOT NULL) OR type = 'fax'",
            name=op.f("ck_outgoing_routings_type_target"),
        ),
        sa.CheckConstraint(
            "type IN ('pattern', 'group', 'fax')", name=op.f("ck_outgoing_routings_type")
        ),
        sa.CheckConstraint("weight >= 0", name=op.f("ck_outgoing_routings_weight")),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_outgoing_routings_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_outgoing_routings_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["routing_pattern_group_id"],
            ["routing_pattern_groups.id"],
            name=op.f("fk_outgoing_routings_routing_pattern_group_id_routing_pattern_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["routing_pattern_id"],
            ["routing_patterns.id"],
            name=op.f("fk_outgoing_routings_routing_pattern_id_routing_patterns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_routings")),
    )
    with op.batch_alter_table("outgoing_routings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outgoing_routings_brand_id"), ["brand_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outgoing_routings_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outgoing_routings_routing_pattern_group_id"),
            ["routing_pattern_group_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_outgoing_routings_routing_pattern_id"),
            ["routing_pattern_id"],
            unique=False,
        )

    op.create_table(
        "residential_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("sip_password", sa.String(length=100), nullable=False),
        sa.Column("ip", sa.String(length=50), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("transport", sa.String(length=5), nullable=True),
        sa.Column("allowed_codecs", sa.JSON(), nullable=False),
        sa.Column("language_id", sa.Integer(), nullable=True),
        sa.Column("do_not_disturb", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name=op.f("ck_residential_devices_transport"),
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_residential_devices_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_residential_devices_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["language_id"],
            ["languages.id"],
            name=op.f("fk_residential_devices_language_id_languages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residential_devices")),
        sa.UniqueConstraint("brand_id", "name", name=op.f("uq_residential_devices_brand_id_name")),
    )
    with op.batch_alter_table("residential_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_residential_devices_brand_id"), ["brand_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_residential_devices_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_residential_devices_language_id"), ["language_id"], unique=False
        )

    op.create_table(
        "retail_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("sip_password", sa.String(length=100), nullable=False),
        sa.Column("ip", sa.String(length=50), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("transport", sa.String(length=5), nullable=True),
        sa.Column("allowed_codecs", sa.JSON(), nullable=False),
        sa.Column("transformation_rule_set_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name=op.f("ck_retail_accounts_transport"),
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_retail_accounts_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_retail_accounts_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transformation_rule_set_id"],
            ["transformation_rule_sets.id"],
            name=op.f("fk_retail_accounts_transformation_rule_set_id_transformation_rule_sets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retail_accounts")),
        sa.UniqueConstraint("brand_id", "name", name=op.f("uq_retail_accounts_brand_id_name")),
    )
    with op.batch_alter_table("retail_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retail_accounts_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_retail_accounts_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_retail_accounts_transformation_rule_set_id"),
            ["transformation_rule_set_id"],
            unique=False,
        )

    op.create_table(
        "terminals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("sip_username", sa.String(length=100), nullable=False),
        sa.Column("sip_password", sa.String(length=100), nullable=False),
        sa.Column("allowed_codecs", sa.JSON(), nullable=False),
        sa.Column("transport", sa.String(length=5), nullable=True),
        sa.Column("direct_media", sa.Boolean(), nullable=False),
        sa.Column("nat_force_rport", sa.Boolean(), nullable=False),
        sa.Column("nat_comedia", sa.Boolean(), nullable=False),
        sa.Column("srtp", sa.Boolean(), nullable=False),
        sa.Column("t38_passthrough", sa.Boolean(), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.CheckConstraint(
            "transport IS NULL OR transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')",
            name=op.f("ck_terminals_transport"),
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_terminals_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_terminals_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminals")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_terminals_company_id_name")),
        sa.UniqueConstraint(
            "company_id", "sip_username", name=op.f("uq_terminals_company_id_sip_username")
        ),
    )
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_terminals_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_terminals_company_id"), ["company_id"], unique=False)

    op.create_table(
        "web_portals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("colour", sa.String(length=20), nullable=False),
        sa.Column("logo_path", sa.String(length=255), nullable=True),
        sa.Column("logo", sa.LargeBinary(), nullable=True),
        sa.Column("logo_mime", sa.String(length=50), nullable=True),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(level = 'platform' AND brand_id IS NULL AND company_id IS NULL) OR (level IN ('brand', 'user') AND brand_id IS NOT NULL) OR (level = 'client' AND brand_id IS NOT NULL)",
            name=op.f("ck_web_portals_level_owner"),
        ),
        sa.CheckConstraint(
            "level IN ('platform', 'brand', 'client', 'user')", name=op.f("ck_web_portals_level")
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_web_portals_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_web_portals_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_portals")),
        sa.UniqueConstraint("url", name=op.f("uq_web_portals_url")),
    )
    with op.batch_alter_table("web_portals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_portals_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_portals_company_id"), ["company_id"], unique=False)

    op.create_table(
        "administrator_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("administrator_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("can_read", sa.Boolean(), nullable=False),
        sa.Column("can_write", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["administrator_id"],
            ["administrators.id"],
            name=op.f("fk_administrator_grants_administrator_id_administrators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_administrator_grants")),
        sa.UniqueConstraint(
            "administrator_id",
            "entity",
            name=op.f("uq_administrator_grants_administrator_id_entity"),
        ),
    )
    with op.batch_alter_table("administrator_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_administrator_grants_administrator_id"),
            ["administrator_id"],
            unique=False,
        )

    op.create_table(
        "outgoing_routing_carriers",
        sa.Column("outgoing_routing_id", sa.Integer(), nullable=False),
        sa.Column("carrier_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["carrier_id"],
            ["carriers.id"],
            name=op.f("fk_outgoing_routing_carriers_carrier_id_carriers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outgoing_routing_id"],
            ["outgoing_routings.id"],
            name=op.f("fk_outgoing_routing_carriers_outgoing_routing_id_outgoing_routings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "outgoing_routing_id", "carrier_id", name=op.f("pk_outgoing_routing_carriers")
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("lastname", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=190), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("extension_id", sa.Integer(), nullable=True),
        sa.Column("terminal_id", sa.Integer(), nullable=True),
        sa.Column("outgoing_ddi_id", sa.Integer(), nullable=True),
        sa.Column("do_not_disturb", sa.Boolean(), nullable=False),
        sa.Column("call_waiting_limit", sa.Integer(), nullable=False),
        sa.Column("language_id", sa.Integer(), nullable=True),
        sa.Column("timezone_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("call_waiting_limit >= 0", name=op.f("ck_users_call_waiting_limit")),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_users_brand_id_brands"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_users_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["language_id"],
            ["languages.id"],
            name=op.f("fk_users_language_id_languages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_users_terminal_id_terminals"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["timezone_id"],
            ["timezones.id"],
            name=op.f("fk_users_timezone_id_timezones"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("brand_id", "email", name=op.f("uq_users_brand_id_email")),
        sa.UniqueConstraint("terminal_id", name=op.f("uq_users_terminal_id")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_extension_id"), ["extension_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_language_id"), ["language_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_users_outgoing_ddi_id"), ["outgoing_ddi_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_users_timezone_id"), ["timezone_id"], unique=False)

    op.create_table(
        "ddis",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("ddi_e164", sa.String(length=25), nullable=False),
        sa.Column("country_id", sa.Integer(), nullable=True),
        sa.Column("ddi_provider_id", sa.Integer(), nullable=True),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("route_type", sa.String(length=20), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("friend_id", sa.Integer(), nullable=True),
        sa.Column("retail_account_id", sa.Integer(), nullable=True),
        sa.Column("residential_device_id", sa.Integer(), nullable=True),
        sa.Column("record_calls", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "route_type IS NULL OR route_type IN ('user', 'ivr', 'hunt_group', 'queue', 'conference', 'fax', 'friend', 'conditional', 'residential', 'retail', 'prompt')",
            name=op.f("ck_ddis_route_type"),
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_ddis_brand_id_brands"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_ddis_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["country_id"],
            ["countries.id"],
            name=op.f("fk_ddis_country_id_countries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ddi_provider_id"],
            ["ddi_providers.id"],
            name=op.f("fk_ddis_ddi_provider_id_ddi_providers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["friend_id"],
            ["friends.id"],
            name=op.f("fk_ddis_friend_id_friends"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["residential_device_id"],
            ["residential_devices.id"],
            name=op.f("fk_ddis_residential_device_id_residential_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["retail_account_id"],
            ["retail_accounts.id"],
            name=op.f("fk_ddis_retail_account_id_retail_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ddis_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ddis")),
        sa.UniqueConstraint("brand_id", "ddi_e164", name=op.f("uq_ddis_brand_id_ddi_e164")),
    )
    with op.batch_alter_table("ddis", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ddis_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ddis_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ddis_country_id"), ["country_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ddis_ddi_provider_id"), ["ddi_provider_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ddis_friend_id"), ["friend_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ddis_residential_device_id"), ["residential_device_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ddis_retail_account_id"), ["retail_account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ddis_user_id"), ["user_id"], unique=False)

    op.create_table(
        "extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=10), nullable=False),
        sa.Column("route_type", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("friend_id", sa.Integer(), nullable=True),
        sa.Column("number_value", sa.String(length=25), nullable=True),
        sa.Column("friend_value", sa.String(length=25), nullable=True),
        sa.CheckConstraint(
            "route_type IN ('user', 'number', 'friend', 'ivr', 'hunt_group', 'queue', 'conference', 'conditional')",
            name=op.f("ck_extensions_route_type"),
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_extensions_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_extensions_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["friend_id"],
            ["friends.id"],
            name=op.f("fk_extensions_friend_id_friends"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_extensions_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extensions")),
        sa.UniqueConstraint("company_id", "number", name=op.f("uq_extensions_company_id_number")),
    )
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_extensions_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_extensions_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_extensions_friend_id"), ["friend_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_extensions_user_id"), ["user_id"], unique=False)

    # users <-> extensions and users <-> ddis point at each other: the users side of
    # each cycle is added once both tables exist (a batch operation, so that SQLite,
    # which cannot ALTER constraints, recreates the still empty table).
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_users_extension_id_extensions"),
            "extensions",
            ["extension_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_users_outgoing_ddi_id_ddis"),
            "ddis",
            ["outgoing_ddi_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    # Break the users <-> extensions/ddis cycles first (see upgrade).
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_users_outgoing_ddi_id_ddis"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_users_extension_id_extensions"), type_="foreignkey")
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_extensions_user_id"))
        batch_op.drop_index(batch_op.f("ix_extensions_friend_id"))
        batch_op.drop_index(batch_op.f("ix_extensions_company_id"))
        batch_op.drop_index(batch_op.f("ix_extensions_brand_id"))

    op.drop_table("extensions")
    with op.batch_alter_table("ddis", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ddis_user_id"))
        batch_op.drop_index(batch_op.f("ix_ddis_retail_account_id"))
        batch_op.drop_index(batch_op.f("ix_ddis_residential_device_id"))
        batch_op.drop_index(batch_op.f("ix_ddis_friend_id"))
        batch_op.drop_index(batch_op.f("ix_ddis_ddi_provider_id"))
        batch_op.drop_index(batch_op.f("ix_ddis_country_id"))
        batch_op.drop_index(batch_op.f("ix_ddis_company_id"))
        batch_op.drop_index(batch_op.f("ix_ddis_brand_id"))

    op.drop_table("ddis")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_timezone_id"))
        batch_op.drop_index(batch_op.f("ix_users_outgoing_ddi_id"))
        batch_op.drop_index(batch_op.f("ix_users_language_id"))
        batch_op.drop_index(batch_op.f("ix_users_extension_id"))
        batch_op.drop_index(batch_op.f("ix_users_company_id"))
        batch_op.drop_index(batch_op.f("ix_users_brand_id"))

    op.drop_table("users")
    op.drop_table("outgoing_routing_carriers")
    with op.batch_alter_table("administrator_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_administrator_grants_administrator_id"))

    op.drop_table("administrator_grants")
    with op.batch_alter_table("web_portals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_portals_company_id"))
        batch_op.drop_index(batch_op.f("ix_web_portals_brand_id"))

    op.drop_table("web_portals")
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terminals_company_id"))
        batch_op.drop_index(batch_op.f("ix_terminals_brand_id"))

    op.drop_table("terminals")
    with op.batch_alter_table("retail_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retail_accounts_transformation_rule_set_id"))
        batch_op.drop_index(batch_op.f("ix_retail_accounts_company_id"))
        batch_op.drop_index(batch_op.f("ix_retail_accounts_brand_id"))

    op.drop_table("retail_accounts")
    with op.batch_alter_table("residential_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_residential_devices_language_id"))
        batch_op.drop_index(batch_op.f("ix_residential_devices_company_id"))
        batch_op.drop_index(batch_op.f("ix_residential_devices_brand_id"))

    op.drop_table("residential_devices")
    with op.batch_alter_table("outgoing_routings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outgoing_routings_routing_pattern_id"))
        batch_op.drop_index(batch_op.f("ix_outgoing_routings_routing_pattern_group_id"))
        batch_op.drop_index(batch_op.f("ix_outgoing_routings_company_id"))
        batch_op.drop_index(batch_op.f("ix_outgoing_routings_brand_id"))

    op.drop_table("outgoing_routings")
    with op.batch_alter_table("friends", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_friends_transformation_rule_set_id"))
        batch_op.drop_index(batch_op.f("ix_friends_company_id"))
        batch_op.drop_index(batch_op.f("ix_friends_brand_id"))

    op.drop_table("friends")
    with op.batch_alter_table("ddi_provider_registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ddi_provider_registrations_ddi_provider_id"))
        batch_op.drop_index(batch_op.f("ix_ddi_provider_registrations_brand_id"))

    op.drop_table("ddi_provider_registrations")
    with op.batch_alter_table("ddi_provider_addresses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ddi_provider_addresses_ddi_provider_id"))
        batch_op.drop_index(batch_op.f("ix_ddi_provider_addresses_brand_id"))

    op.drop_table("ddi_provider_addresses")
    op.drop_table("company_features")
    with op.batch_alter_table("carrier_servers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_carrier_servers_carrier_id"))
        batch_op.drop_index(batch_op.f("ix_carrier_servers_brand_id"))

    op.drop_table("carrier_servers")
    with op.batch_alter_table("administrators", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_administrators_platform_username",
            sqlite_where=sa.text("brand_id IS NULL"),
            postgresql_where=sa.text("brand_id IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_administrators_timezone_id"))
        batch_op.drop_index(batch_op.f("ix_administrators_language_id"))
        batch_op.drop_index(batch_op.f("ix_administrators_company_id"))
        batch_op.drop_index(batch_op.f("ix_administrators_brand_id"))

    op.drop_table("administrators")
    op.drop_table("routing_pattern_group_members")
    with op.batch_alter_table("ddi_providers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ddi_providers_transformation_rule_set_id"))
        batch_op.drop_index(batch_op.f("ix_ddi_providers_media_relay_set_id"))
        batch_op.drop_index(batch_op.f("ix_ddi_providers_brand_id"))

    op.drop_table("ddi_providers")
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_companies_transformation_rule_set_id"))
        batch_op.drop_index(batch_op.f("ix_companies_timezone_id"))
        batch_op.drop_index(batch_op.f("ix_companies_media_relay_set_id"))
        batch_op.drop_index(batch_op.f("ix_companies_language_id"))
        batch_op.drop_index(batch_op.f("ix_companies_currency_id"))
        batch_op.drop_index(batch_op.f("ix_companies_country_id"))
        batch_op.drop_index(batch_op.f("ix_companies_brand_id"))
        batch_op.drop_index(batch_op.f("ix_companies_application_server_set_id"))

    op.drop_table("companies")
    with op.batch_alter_table("carriers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_carriers_transformation_rule_set_id"))
        batch_op.drop_index(batch_op.f("ix_carriers_media_relay_set_id"))
        batch_op.drop_index(batch_op.f("ix_carriers_currency_id"))
        batch_op.drop_index(batch_op.f("ix_carriers_brand_id"))

    op.drop_table("carriers")
    with op.batch_alter_table("transformation_rule_sets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transformation_rule_sets_country_id"))
        batch_op.drop_index(batch_op.f("ix_transformation_rule_sets_brand_id"))

    op.drop_table("transformation_rule_sets")
    with op.batch_alter_table("routing_patterns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_patterns_brand_id"))

    op.drop_table("routing_patterns")
    with op.batch_alter_table("routing_pattern_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_pattern_groups_brand_id"))

    op.drop_table("routing_pattern_groups")
    op.drop_table("brand_features")
    with op.batch_alter_table("media_relays", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_relays_media_relay_set_id"))

    op.drop_table("media_relays")
    with op.batch_alter_table("brands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_brands_timezone_id"))
        batch_op.drop_index(batch_op.f("ix_brands_language_id"))
        batch_op.drop_index(batch_op.f("ix_brands_currency_id"))
        batch_op.drop_index(batch_op.f("ix_brands_country_id"))

    op.drop_table("brands")
    with op.batch_alter_table("application_servers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_servers_application_server_set_id"))

    op.drop_table("application_servers")
    op.drop_table("timezones")
    op.drop_table("proxy_users")
    op.drop_table("proxy_trunks")
    op.drop_table("media_relay_sets")
    op.drop_table("languages")
    op.drop_table("features")
    op.drop_table("currencies")
    op.drop_table("countries")
    op.drop_table("application_server_sets")
