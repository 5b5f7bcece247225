"""quota_cooldowns: usage limits an account met in a row, each doubling the next rest

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on every backend: a batch table copy on SQLite would drop
    # sync_accounts and cascade into sync_links (see 0006, 0011).
    op.add_column('sync_accounts', sa.Column('quota_cooldowns', sa.Integer(), nullable=False,
                                             server_default='0'))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE sync_accounts DROP COLUMN quota_cooldowns')
        return
    op.drop_column('sync_accounts', 'quota_cooldowns')
