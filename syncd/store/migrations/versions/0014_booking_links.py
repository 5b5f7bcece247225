"""booking links: the public booking pages' tokens (hashed), owner, type, duration, horizon

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'booking_links',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=320), nullable=False),
        sa.Column('activity_type', sa.String(length=40), nullable=False),
        sa.Column('duration_minutes', sa.Integer(), nullable=False),
        sa.Column('horizon_days', sa.Integer(), nullable=False),
        sa.Column('created_at', syncd.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', syncd.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_booking_links_token_hash')),
    )


def downgrade() -> None:
    op.drop_table('booking_links')
