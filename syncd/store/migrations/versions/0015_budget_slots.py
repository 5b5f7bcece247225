"""budget slots: concurrency slots every replica shares (Graph's requests per mailbox)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'budget_slots',
        sa.Column('scope', sa.String(length=200), nullable=False),
        sa.Column('slot', sa.Integer(), nullable=False),
        sa.Column('ticket', sa.String(length=64), nullable=True),
        sa.Column('until', syncd.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('scope', 'slot', name=op.f('pk_budget_slots')),
    )


def downgrade() -> None:
    op.drop_table('budget_slots')
