"""contact bounces: score, last counted bounce, undeliverable since

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounce_score', sa.Float(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('last_bounce_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('undeliverable_since', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_column('undeliverable_since')
        batch_op.drop_column('last_bounce_at')
        batch_op.drop_column('bounce_score')
