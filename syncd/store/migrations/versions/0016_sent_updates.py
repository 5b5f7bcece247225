"""sent updates: the fields of an event update sent whose outcome is not recorded yet

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sync_links') as batch:
        batch.add_column(sa.Column('sent', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_links') as batch:
        batch.drop_column('sent')
