"""verified_at, verify_findings: the daemon's scheduled audit of each account

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs on every backend: a batch table copy on SQLite would drop
    # sync_accounts and cascade into sync_links (see 0006, 0011).
    op.add_column('sync_accounts', sa.Column(
        'verified_at', syncd.store.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column('sync_accounts', sa.Column('verify_findings', sa.JSON(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE sync_accounts DROP COLUMN verify_findings')
        op.execute('ALTER TABLE sync_accounts DROP COLUMN verified_at')
        return
    op.drop_column('sync_accounts', 'verify_findings')
    op.drop_column('sync_accounts', 'verified_at')
