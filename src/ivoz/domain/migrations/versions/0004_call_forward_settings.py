"""Call forward settings: a user's unconditional, busy, no-answer and unregistered forwards.

Written by hand to match ``models.CallForwardSetting`` (the migration test compares
them): client-owned like the other user rows (company_id and brand_id cascade), and
deleted with its user.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_forward_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=15), nullable=False),
        sa.Column("target_type", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=25), nullable=False),
        sa.Column("no_answer_timeout", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('unconditional', 'busy', 'noanswer', 'unregistered')",
            name=op.f("ck_call_forward_settings_kind"),
        ),
        sa.CheckConstraint(
            "target_type IN ('extension', 'number')",
            name=op.f("ck_call_forward_settings_target_type"),
        ),
        sa.CheckConstraint(
            "no_answer_timeout > 0 AND no_answer_timeout <= 300",
            name=op.f("ck_call_forward_settings_timeout"),
        ),
        sa.CheckConstraint("length(target) > 0", name=op.f("ck_call_forward_settings_target")),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_call_forward_settings_brand_id_brands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_call_forward_settings_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_call_forward_settings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_forward_settings")),
    )
    with op.batch_alter_table("call_forward_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_call_forward_settings_brand_id"), ["brand_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_call_forward_settings_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_call_forward_settings_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("call_forward_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_forward_settings_user_id"))
        batch_op.drop_index(batch_op.f("ix_call_forward_settings_company_id"))
        batch_op.drop_index(batch_op.f("ix_call_forward_settings_brand_id"))
    op.drop_table("call_forward_settings")
