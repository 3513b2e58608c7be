"""Every area carries its uncertainty: issues.area_uncertainty_m2 and observations.area_uncertainty_m2,
the ~95 % half-width of area_m2 (vision.geo.types.Footprint.area_uncertainty_m2); NULL where unknown.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
TABLES = ("issues", "observations")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("area_uncertainty_m2", sa.Float(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("area_uncertainty_m2")
