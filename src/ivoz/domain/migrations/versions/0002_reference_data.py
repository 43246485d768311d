"""Reference data: languages, timezones, currencies, countries, features.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ivoz.domain import reference

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Lightweight tables: a migration must not depend on the models of a later day.
languages = sa.table("languages", sa.column("iden"), sa.column("name"))
timezones = sa.table("timezones", sa.column("tz"), sa.column("label"))
currencies = sa.table("currencies", sa.column("iden"), sa.column("name"), sa.column("symbol"))
countries = sa.table("countries", sa.column("code"), sa.column("name"), sa.column("calling_code"))
features = sa.table("features", sa.column("iden"), sa.column("name"))


def upgrade() -> None:
    op.bulk_insert(languages, [{"iden": i, "name": n} for i, n in reference.LANGUAGES])
    op.bulk_insert(timezones, [{"tz": t, "label": label} for t, label in reference.TIMEZONES])
    op.bulk_insert(
        currencies,
        [{"iden": i, "name": n, "symbol": s} for i, n, s in reference.CURRENCIES],
    )
    op.bulk_insert(
        countries,
        [{"code": c, "name": n, "calling_code": cc} for c, n, cc in reference.COUNTRIES],
    )
    op.bulk_insert(features, [{"iden": i, "name": n} for i, n in reference.FEATURES])


def downgrade() -> None:
    op.execute(features.delete().where(features.c.iden.in_([i for i, _ in reference.FEATURES])))
    op.execute(
        countries.delete().where(countries.c.code.in_([c for c, _, _ in reference.COUNTRIES]))
    )
    op.execute(
        currencies.delete().where(currencies.c.iden.in_([i for i, _, _ in reference.CURRENCIES]))
    )
    op.execute(timezones.delete().where(timezones.c.tz.in_([t for t, _ in reference.TIMEZONES])))
    op.execute(languages.delete().where(languages.c.iden.in_([i for i, _ in reference.LANGUAGES])))
