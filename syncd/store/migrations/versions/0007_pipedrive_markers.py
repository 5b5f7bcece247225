"""pipedrive markers: a remote CRM's sync_uids and import intents live in syncd's state

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'pipedrive_markers',
        sa.Column('company', sa.String(length=200), nullable=False),
        sa.Column('sync_uid', sa.String(length=64), nullable=False),
        sa.Column('activity_id', sa.BigInteger(), nullable=True),
        sa.Column('owner_id', sa.BigInteger(), nullable=True),
        sa.Column('moved_from', sa.BigInteger(), nullable=True),
        sa.Column('seen_at', syncd.store.base.UTCDateTime(), nullable=True),
        sa.Column('gone', sa.Boolean(), nullable=False),
        sa.Column('pending_since', syncd.store.base.UTCDateTime(), nullable=True),
        sa.Column('fingerprint', sa.String(length=64), nullable=True),
        sa.Column('floor', sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint('company', 'sync_uid', name=op.f('pk_pipedrive_markers')),
        sa.UniqueConstraint('company', 'activity_id', name='uq_pipedrive_markers_activity'),
    )
    with op.batch_alter_table('pipedrive_markers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipedrive_markers_owner_id'), ['owner_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pipedrive_markers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipedrive_markers_owner_id'))
    op.drop_table('pipedrive_markers')
