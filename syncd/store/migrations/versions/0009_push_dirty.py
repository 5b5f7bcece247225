"""push dirty flag: a webhook marks an account as having changes to read

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on every backend: a batch table copy on SQLite would drop
    # sync_accounts and cascade into sync_links (see 0006).
    op.add_column('sync_accounts', sa.Column('dirty_at', sa.DateTime(timezone=True),
                                             nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE sync_accounts DROP COLUMN dirty_at')
        return
    op.drop_column('sync_accounts', 'dirty_at')
