"""invitations: which guests hold an invitation to each event, and whose meeting it is

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 21:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL for existing links: the planner then counts every attendee as invited, which
    # never sends anyone a cancellation they were not due (docs/guest-mail.md).
    with op.batch_alter_table('sync_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invited', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('organizer', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_links', schema=None) as batch_op:
        batch_op.drop_column('organizer')
        batch_op.drop_column('invited')
