"""write log: every calendar write syncd made (event, etag left, when), for syncd verify

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sync_writes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account', sa.String(length=200), nullable=False),
        sa.Column('event_id', sa.String(length=1100), nullable=False),
        sa.Column('etag', sa.Text(), nullable=True),
        sa.Column('op', sa.String(length=10), nullable=False),
        sa.Column('at', syncd.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_writes')),
    )
    op.create_index(op.f('ix_sync_writes_account'), 'sync_writes', ['account'], unique=False)
    op.create_index(op.f('ix_sync_writes_at'), 'sync_writes', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sync_writes_at'), table_name='sync_writes')
    op.drop_index(op.f('ix_sync_writes_account'), table_name='sync_writes')
    op.drop_table('sync_writes')
