"""meetings: which account holds a meeting, by iCalendar UID (failure mode 20)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.store.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sync_meetings',
    sa.Column('uid_hash', sa.String(length=64), nullable=False),
    sa.Column('ical_uid', sa.Text(), nullable=False),
    sa.Column('account', sa.String(length=200), nullable=False),
    sa.Column('activity_id', sa.BigInteger(), nullable=True),
    sa.Column('at', syncd.store.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('uid_hash', name=op.f('pk_sync_meetings'))
    )
    with op.batch_alter_table('sync_meetings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_meetings_account'), ['account'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sync_meetings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_meetings_account'))
    op.drop_table('sync_meetings')
