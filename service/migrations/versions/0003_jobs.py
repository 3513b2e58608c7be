"""Survey jobs: the jobs table (state, progress, lease) and job_items (what each photo or tile became)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.migrations.columns import (
    ANALYSIS_KEY,
    analysis_key,
    create_keyed_table,
    created_updated_at,
    foreign_key,
    one_of,
    unique,
)

revision = "0003"
down_revision = "0002"

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_KINDS = ("drone_photos", "orthomosaic")
ITEM_OUTCOMES = ("recorded", "already_recorded", "skipped")


def upgrade() -> None:
    create_keyed_table(
        "jobs",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        *analysis_key(),
        sa.Column("input_path", sa.String(length=200), nullable=False),
        sa.Column("input_bytes", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("source_name", sa.String(length=200), nullable=False),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=120), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        *created_updated_at(),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        one_of("jobs", "state", JOB_STATES),
        one_of("jobs", "kind", JOB_KINDS),
        foreign_key("jobs", "api_key_id", "api_keys", ondelete="SET NULL"),
        unique("jobs", *ANALYSIS_KEY),
        id_type=sa.String(length=32),
    )
    op.create_index("ix_jobs_state_created_at", "jobs", ["state", "created_at"])

    create_keyed_table(
        "job_items",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("frame_id", sa.Integer(), nullable=True),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("issues_opened", sa.Integer(), nullable=False),
        sa.Column("issues_joined", sa.Integer(), nullable=False),
        sa.Column("issues_rebound", sa.Integer(), nullable=False),
        sa.Column("issues_verified", sa.Integer(), nullable=False),
        one_of("job_items", "outcome", ITEM_OUTCOMES),
        foreign_key("job_items", "job_id", "jobs", ondelete="CASCADE"),
        foreign_key("job_items", "frame_id", "frames"),
        unique("job_items", "job_id", "seq"),
    )
    op.create_index(op.f("ix_job_items_job_id"), "job_items", ["job_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_job_items_job_id"), table_name="job_items")
    op.drop_table("job_items")
    op.drop_index("ix_jobs_state_created_at", table_name="jobs")
    op.drop_table("jobs")
