"""deletion budget: propagated deletions per account over a day, and the hold they trip

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sync_deletions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account', sa.String(length=200), nullable=False),
        sa.Column('at', syncd.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_deletions')),
    )
    op.create_index(op.f('ix_sync_deletions_account_at'), 'sync_deletions',
                    ['account', 'at'], unique=False)
    # Plain ADD COLUMNs: a batch table copy on SQLite would drop sync_accounts and
    # cascade into sync_links (see 0006).
    for column in ('deletions_held_since', 'deletions_allowed_at'):
        op.add_column('sync_accounts', sa.Column(
            column, syncd.store.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ('deletions_allowed_at', 'deletions_held_since'):
        if op.get_bind().dialect.name == 'sqlite':
            op.execute(f'ALTER TABLE sync_accounts DROP COLUMN {column}')
        else:
            op.drop_column('sync_accounts', column)
    op.drop_index(op.f('ix_sync_deletions_account_at'), table_name='sync_deletions')
    op.drop_table('sync_deletions')
