"""pipedrive moves: every previous owner of an activity still to be told it moved away

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'pipedrive_moves',
        sa.Column('company', sa.String(length=200), nullable=False),
        sa.Column('owner_id', sa.BigInteger(), nullable=False),
        sa.Column('activity_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('company', 'owner_id', 'activity_id',
                                name=op.f('pk_pipedrive_moves')),
    )
    # The one previous owner each marker row remembered is the first row of its own.
    op.execute("INSERT INTO pipedrive_moves (company, owner_id, activity_id) "
               "SELECT company, moved_from, activity_id FROM pipedrive_markers "
               "WHERE moved_from IS NOT NULL AND activity_id IS NOT NULL")
    with op.batch_alter_table('pipedrive_markers', schema=None) as batch_op:
        batch_op.drop_column('moved_from')


def downgrade() -> None:
    with op.batch_alter_table('pipedrive_markers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('moved_from', sa.BigInteger(), nullable=True))
    # A marker row holds one previous owner: keep the lowest (any one is as good).
    op.execute("UPDATE pipedrive_markers SET moved_from = (SELECT MIN(m.owner_id) "
               "FROM pipedrive_moves m WHERE m.company = pipedrive_markers.company "
               "AND m.activity_id = pipedrive_markers.activity_id)")
    op.drop_table('pipedrive_moves')
