"""Changes between two surveys become ledger candidates (issue #14 part 4): a `changes` job kind,
and on observations the earlier survey's crop of the same ground (`before_crop_path`) and a JSON
`details` (how the change was found, the epochs' registration error); NULL for every other finding.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.migrations.columns import replace_one_of

revision = "0008"
down_revision = "0007"

JOB_KINDS_BEFORE = ("drone_photos", "orthomosaic")
JOB_KINDS = (*JOB_KINDS_BEFORE, "changes")


def upgrade() -> None:
    replace_one_of("jobs", "kind", JOB_KINDS)
    with op.batch_alter_table("observations") as batch:
        batch.add_column(sa.Column("before_crop_path", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM job_items WHERE job_id IN (SELECT id FROM jobs WHERE kind = 'changes')"))
    op.execute(sa.text("DELETE FROM jobs WHERE kind = 'changes'"))
    with op.batch_alter_table("observations") as batch:
        batch.drop_column("details")
        batch.drop_column("before_crop_path")
    replace_one_of("jobs", "kind", JOB_KINDS_BEFORE)
