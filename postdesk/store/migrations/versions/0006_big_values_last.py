"""big values last

``inbound.raw`` and ``attachment.data`` become the last columns of their tables on SQLite.
SQLite builds a row's zeroblob in memory unless it is the row's last column; once it is, a big
mail or file is written into its row through incremental blob I/O without SQLite's two copies
of a bound value (docs/performance.md, round H). SQLite can only reorder columns by rebuilding
the table, which copies its rows once: the upgrade of a store holding many mails takes a while
and needs free disk for the copy (README.md gives figures). PostgreSQL is left as it is: column order changes nothing there.
``postdesk.store.migrate`` turns SQLite's foreign keys off around the rebuild, as SQLite's
documentation asks, and checks them before committing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 03:10:00
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

INBOUND = ('id', 'received_at', 'source', 'mail_from', 'rcpt_tos', 'peer', 'size', 'sha256',
           'blob_path', 'imap_key', 'status', 'attempts', 'claimed_by', 'claimed_at',
           'processed_at', 'message_id', 'ticket_id', 'outcome', 'error_step', 'error', 'raw')
ATTACHMENT = ('id', 'message_pk', 'filename', 'content_type', 'size', 'sha256', 'blob_path',
              'rejected', 'data')


def upgrade() -> None:
    _reorder({'inbound': INBOUND, 'attachment': ATTACHMENT})


def downgrade() -> None:
    _reorder({'inbound': _moved_back(INBOUND, 'raw', after='sha256'),
              'attachment': _moved_back(ATTACHMENT, 'data', after='sha256')})


def _reorder(orders: dict[str, tuple[str, ...]]) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table, columns in orders.items():
        with op.batch_alter_table(table, recreate='always', partial_reordering=[columns]):
            pass


def _moved_back(columns: tuple[str, ...], column: str, after: str) -> tuple[str, ...]:
    rest = [c for c in columns if c != column]
    at = rest.index(after) + 1
    return (*rest[:at], column, *rest[at:])
