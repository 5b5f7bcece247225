"""calendar discovery: a CalDAV server's principal, calendar home and collection URL
per account, kept between runs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'calendar_discovery',
        sa.Column('account', sa.String(length=200), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('found', sa.JSON(), nullable=False),
        sa.Column('updated_at', syncd.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('account', name=op.f('pk_calendar_discovery')),
    )


def downgrade() -> None:
    op.drop_table('calendar_discovery')
