"""inbound envelope sender and peer indexes (the flood limit of mail without From)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:30:00
"""

from __future__ import annotations

from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_inbound_mail_from_received', 'inbound', ['mail_from', 'received_at'])
    op.create_index('ix_inbound_peer_received', 'inbound', ['peer', 'received_at'])


def downgrade() -> None:
    op.drop_index('ix_inbound_peer_received', table_name='inbound')
    op.drop_index('ix_inbound_mail_from_received', table_name='inbound')
