"""The review bridge (service/review/models.py): tasks pushed to Label Studio, deliveries applied
once, reviewers' labels; and the `reviewed` issue event (a reviewer kept, moved or relabelled a box).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.migrations.columns import (
    box_xyxy,
    create_keyed_table,
    foreign_key,
    one_of,
    replace_one_of,
    unique,
)

revision = "0006"
down_revision = "0005"

EVENT_KINDS_BEFORE = ("opened", "joined", "transition", "located", "clear_pass")
EVENT_KINDS = (*EVENT_KINDS_BEFORE, "reviewed")
LABEL_DECISIONS = ("kept", "moved", "relabelled", "added", "removed", "not_a_violation", "cannot_tell")


def upgrade() -> None:
    replace_one_of("issue_events", "kind", EVENT_KINDS)
    create_keyed_table(
        "review_tasks",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("pushed_at", sa.DateTime(), nullable=False),
        foreign_key("review_tasks", "frame_id", "frames"),
        unique("review_tasks", "project_id", "frame_id"),
        unique("review_tasks", "task_id"),
    )
    op.create_index(op.f("ix_review_tasks_frame_id"), "review_tasks", ["frame_id"])
    create_keyed_table(
        "review_deliveries",
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
        unique("review_deliveries", "annotation_id", "revision"),
    )
    op.create_index(op.f("ix_review_deliveries_task_id"), "review_deliveries", ["task_id"])
    create_keyed_table(
        "review_labels",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("observation_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("class_key", sa.String(length=64), nullable=True),
        *box_xyxy(nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        one_of("review_labels", "decision", LABEL_DECISIONS),
        foreign_key("review_labels", "delivery_id", "review_deliveries"),
        foreign_key("review_labels", "frame_id", "frames"),
        foreign_key("review_labels", "issue_id", "issues"),
        foreign_key("review_labels", "observation_id", "observations"),
    )
    op.create_index(op.f("ix_review_labels_delivery_id"), "review_labels", ["delivery_id"])
    op.create_index(op.f("ix_review_labels_frame_id"), "review_labels", ["frame_id"])


def downgrade() -> None:
    op.drop_table("review_labels")
    op.drop_table("review_deliveries")
    op.drop_table("review_tasks")
    op.execute("DELETE FROM issue_events WHERE kind = 'reviewed'")
    replace_one_of("issue_events", "kind", EVENT_KINDS_BEFORE)
