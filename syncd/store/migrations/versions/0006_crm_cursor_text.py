"""crm cursor as text: a CRM source's cursor is an opaque string (syncd.crm.source)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The built-in store's change numbers carry over as their decimal text, which is what
    # its source hands out as a cursor: no account reads its changes again.
    if op.get_bind().dialect.name == 'sqlite':
        # Not a batch table copy: dropping the old sync_accounts would cascade into
        # sync_links (foreign keys are on) and lose every pair.
        op.execute('ALTER TABLE sync_accounts ADD COLUMN crm_cursor_text TEXT')
        op.execute('UPDATE sync_accounts SET crm_cursor_text = CAST(crm_cursor AS TEXT)')
        op.execute('ALTER TABLE sync_accounts DROP COLUMN crm_cursor')
        op.execute('ALTER TABLE sync_accounts RENAME COLUMN crm_cursor_text TO crm_cursor')
        return
    with op.batch_alter_table('sync_accounts', schema=None) as batch_op:
        batch_op.alter_column('crm_cursor', existing_type=sa.BigInteger(), type_=sa.Text(),
                              existing_nullable=False, nullable=True,
                              postgresql_using='crm_cursor::text')


def downgrade() -> None:
    # Only the built-in store's cursors fit the old column; any other source's cursor
    # would not survive a downgrade, so those accounts start their CRM feed afresh.
    op.execute("UPDATE sync_accounts SET crm_cursor = '0' WHERE crm_cursor IS NULL "
               "OR crm_cursor = '' OR trim(crm_cursor, '0123456789') <> ''")
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE sync_accounts ADD COLUMN crm_cursor_int BIGINT NOT NULL '
                   'DEFAULT 0')
        op.execute('UPDATE sync_accounts SET crm_cursor_int = CAST(crm_cursor AS INTEGER)')
        op.execute('ALTER TABLE sync_accounts DROP COLUMN crm_cursor')
        op.execute('ALTER TABLE sync_accounts RENAME COLUMN crm_cursor_int TO crm_cursor')
        return
    with op.batch_alter_table('sync_accounts', schema=None) as batch_op:
        batch_op.alter_column('crm_cursor', existing_type=sa.Text(), type_=sa.BigInteger(),
                              existing_nullable=True, nullable=False,
                              postgresql_using='crm_cursor::bigint')
