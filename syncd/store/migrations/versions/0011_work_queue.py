"""work queue: each account's due time, and how often its lease was taken over

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs on every backend: a batch table copy on SQLite would drop
    # sync_accounts and cascade into sync_links (see 0006).
    op.add_column('sync_accounts', sa.Column('due_at', sa.DateTime(timezone=True),
                                             nullable=True))
    op.add_column('sync_accounts', sa.Column('takeovers', sa.Integer(), nullable=False,
                                             server_default='0'))
    op.create_index('ix_sync_accounts_due_at', 'sync_accounts', ['due_at'])


def downgrade() -> None:
    op.drop_index('ix_sync_accounts_due_at', table_name='sync_accounts')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE sync_accounts DROP COLUMN takeovers')
        op.execute('ALTER TABLE sync_accounts DROP COLUMN due_at')
        return
    op.drop_column('sync_accounts', 'takeovers')
    op.drop_column('sync_accounts', 'due_at')
