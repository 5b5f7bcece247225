"""due_fold: which of two repeated wall times an activity's due time is (DST fold)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing row meant the first occurrence (the store could not say otherwise).
    # A plain ADD COLUMN, not a batch copy: on SQLite a copied table loses AUTOINCREMENT,
    # and activity ids must never be reused.
    op.add_column('activities', sa.Column('due_fold', sa.Boolean(), server_default=sa.false(),
                                          nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_column('due_fold')
