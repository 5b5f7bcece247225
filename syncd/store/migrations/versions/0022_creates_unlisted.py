"""creates_unlisted_from: the write log's first create no committed listing showed yet

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on every backend: a batch table copy on SQLite would drop
    # sync_accounts and cascade into sync_links (see 0006, 0011).
    op.add_column('sync_accounts', sa.Column('creates_unlisted_from', sa.BigInteger(),
                                             nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE sync_accounts DROP COLUMN creates_unlisted_from')
        return
    op.drop_column('sync_accounts', 'creates_unlisted_from')
