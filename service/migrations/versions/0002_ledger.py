"""The ledger: sources, frames, issues, observations, issue events and the writers' lock."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.migrations.columns import (
    ANALYSIS_KEY,
    analysis_key,
    bbox,
    box_xyxy,
    create_keyed_table,
    created_updated_at,
    foreign_key,
    located,
    one_of,
    unique,
)

revision = "0002"
down_revision = "0001"

ISSUE_STATES = (
    "candidate",
    "confirmed",
    "rejected",
    "dispatched",
    "rectified",
    "verified",
    "closed",
    "rebound",
)
SOURCE_KINDS = ("citizen", "drone", "camera")
EVENT_KINDS = ("opened", "joined", "transition", "located", "clear_pass")
LEDGER_LOCK = "ledger"


def upgrade() -> None:
    create_keyed_table(
        "sources",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("preset", sa.String(length=100), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        one_of("sources", "kind", SOURCE_KINDS),
        foreign_key("sources", "api_key_id", "api_keys", ondelete="SET NULL"),
        unique("sources", "kind", "name", "preset"),
    )

    create_keyed_table(
        "frames",
        sa.Column("source_id", sa.Integer(), nullable=False),
        *analysis_key(),
        sa.Column("captured_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("camera_lon", sa.Float(), nullable=True),
        sa.Column("camera_lat", sa.Float(), nullable=True),
        sa.Column("coverage", sa.Text(), nullable=True),
        *bbox("cov_", nullable=True),
        sa.Column("image_path", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        foreign_key("frames", "source_id", "sources"),
        unique("frames", *ANALYSIS_KEY),
    )
    op.create_index(
        "ix_frames_coverage_bbox", "frames", ["cov_min_lon", "cov_max_lon", "cov_min_lat", "cov_max_lat"]
    )
    op.create_index(op.f("ix_frames_source_id"), "frames", ["source_id"])

    create_keyed_table(
        "issues",
        sa.Column("class_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("needs_location", sa.Boolean(), nullable=False),
        *located(with_reason=False),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("max_score", sa.Float(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(), nullable=False),
        *created_updated_at(),
        one_of("issues", "state", ISSUE_STATES),
        foreign_key("issues", "region_id", "regions", ondelete="SET NULL"),
    )
    op.create_index("ix_issues_class_lat_lon", "issues", ["class_key", "lat", "lon"])
    op.create_index(op.f("ix_issues_region_id"), "issues", ["region_id"])
    op.create_index(op.f("ix_issues_state"), "issues", ["state"])
    op.create_index(op.f("ix_issues_updated_at"), "issues", ["updated_at"])

    create_keyed_table(
        "observations",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("class_key", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        *box_xyxy(nullable=False),
        *located(with_reason=True),
        sa.Column("crop_path", sa.String(length=200), nullable=False),
        sa.Column("observed_at", sa.DateTime(), nullable=False),
        foreign_key("observations", "frame_id", "frames"),
        foreign_key("observations", "issue_id", "issues"),
    )
    op.create_index(op.f("ix_observations_frame_id"), "observations", ["frame_id"])
    op.create_index(op.f("ix_observations_issue_id"), "observations", ["issue_id"])

    create_keyed_table(
        "issue_events",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("observation_id", sa.Integer(), nullable=True),
        sa.Column("frame_id", sa.Integer(), nullable=True),
        one_of("issue_events", "kind", EVENT_KINDS),
        foreign_key("issue_events", "api_key_id", "api_keys", ondelete="SET NULL"),
        foreign_key("issue_events", "frame_id", "frames"),
        foreign_key("issue_events", "issue_id", "issues"),
        foreign_key("issue_events", "observation_id", "observations"),
    )
    op.create_index(op.f("ix_issue_events_issue_id"), "issue_events", ["issue_id"])
    op.create_index("ix_issue_events_to_state_at", "issue_events", ["to_state", "at"])

    locks = op.create_table(
        "ledger_locks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("touched_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_locks")),
    )
    op.bulk_insert(locks, [{"name": LEDGER_LOCK, "touched_at": None}])


def downgrade() -> None:
    op.drop_table("ledger_locks")
    op.drop_index("ix_issue_events_to_state_at", table_name="issue_events")
    op.drop_index(op.f("ix_issue_events_issue_id"), table_name="issue_events")
    op.drop_table("issue_events")
    op.drop_index(op.f("ix_observations_issue_id"), table_name="observations")
    op.drop_index(op.f("ix_observations_frame_id"), table_name="observations")
    op.drop_table("observations")
    op.drop_index(op.f("ix_issues_updated_at"), table_name="issues")
    op.drop_index(op.f("ix_issues_state"), table_name="issues")
    op.drop_index(op.f("ix_issues_region_id"), table_name="issues")
    op.drop_index("ix_issues_class_lat_lon", table_name="issues")
    op.drop_table("issues")
    op.drop_index(op.f("ix_frames_source_id"), table_name="frames")
    op.drop_index("ix_frames_coverage_bbox", table_name="frames")
    op.drop_table("frames")
    op.drop_table("sources")
