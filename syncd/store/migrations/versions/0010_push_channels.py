"""push channels: one Google watch channel, Graph subscription or WebDAV-Push
subscription per account, with its health

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'push_channels',
        sa.Column('account', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('channel_id', sa.String(length=300), nullable=True),
        sa.Column('resource_id', sa.Text(), nullable=True),
        sa.Column('token_hash', sa.String(length=64), nullable=True),
        sa.Column('details', sa.JSON(), nullable=True),
        sa.Column('created_at', syncd.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('expires_at', syncd.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('owner', sa.String(length=200), nullable=True),
        sa.Column('last_message_at', syncd.store.base.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column('last_message_number', sa.BigInteger(), nullable=True),
        sa.Column('expect_by', syncd.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account'], ['sync_accounts.name'],
                                name=op.f('fk_push_channels_account_sync_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account', name=op.f('pk_push_channels')),
        sa.UniqueConstraint('channel_id', name=op.f('uq_push_channels_channel_id')),
    )


def downgrade() -> None:
    op.drop_table('push_channels')
