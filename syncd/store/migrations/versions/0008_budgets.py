"""budgets: provider budgets shared by accounts and replicas (Pipedrive's daily tokens and
2-second burst window, counted by syncd)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'budget_days',
        sa.Column('scope', sa.String(length=200), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('used', sa.BigInteger(), nullable=False),
        sa.Column('allowance', sa.BigInteger(), nullable=False),
        sa.Column('resets_at', syncd.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('throttled', sa.Integer(), nullable=False),
        sa.Column('halted_until', syncd.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('halt_reason', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('scope', 'day', name=op.f('pk_budget_days')),
    )
    op.create_table(
        'budget_bursts',
        sa.Column('scope', sa.String(length=200), nullable=False),
        sa.Column('token_key', sa.String(length=200), nullable=False),
        sa.Column('next_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'token_key', name=op.f('pk_budget_bursts')),
    )


def downgrade() -> None:
    op.drop_table('budget_bursts')
    op.drop_table('budget_days')
