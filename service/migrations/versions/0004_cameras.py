"""Watchtower cameras: configured cameras, their state changes, alerts, deliveries and delivery attempts."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.migrations.columns import create_keyed_table, created_updated_at, foreign_key, one_of

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    create_keyed_table(
        "camera_states",
        sa.Column("camera_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        one_of("camera_states", "state", ("online", "degraded", "offline")),
    )
    op.create_index("ix_camera_states_camera_id_at", "camera_states", ["camera_id", "at"], unique=False)
    create_keyed_table(
        "cameras",
        sa.Column("config", sa.Text(), nullable=False),
        *created_updated_at(),
        id_type=sa.String(length=40),
    )
    create_keyed_table(
        "alerts",
        sa.Column("rule", sa.String(length=60), nullable=False),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("camera_id", sa.String(length=40), nullable=False),
        sa.Column("preset", sa.String(length=100), nullable=False),
        sa.Column("class_key", sa.String(length=40), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("observation_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("region", sa.String(length=200), nullable=True),
        sa.Column("frame_time_s", sa.Float(), nullable=False),
        sa.Column("observed_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("digested_at", sa.DateTime(), nullable=True),
        one_of("alerts", "delivery", ("immediate", "digest")),
        foreign_key("alerts", "issue_id", "issues"),
        foreign_key("alerts", "observation_id", "observations"),
    )
    op.create_index(op.f("ix_alerts_camera_id"), "alerts", ["camera_id"], unique=False)
    op.create_index("ix_alerts_delivery_digested", "alerts", ["delivery", "digested_at"], unique=False)
    op.create_index(op.f("ix_alerts_issue_id"), "alerts", ["issue_id"], unique=False)
    create_keyed_table(
        "alert_deliveries",
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=60), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        one_of("alert_deliveries", "kind", ("webhook", "loudspeaker")),
        one_of("alert_deliveries", "state", ("pending", "delivered", "skipped", "dead")),
        foreign_key("alert_deliveries", "alert_id", "alerts", ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_alert_deliveries_alert_id"), "alert_deliveries", ["alert_id"], unique=False)
    op.create_index(
        "ix_alert_deliveries_state_next_attempt_at",
        "alert_deliveries",
        ["state", "next_attempt_at"],
        unique=False,
    )
    create_keyed_table(
        "alert_delivery_attempts",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        foreign_key("alert_delivery_attempts", "delivery_id", "alert_deliveries", ondelete="CASCADE"),
    )
    op.create_index(
        op.f("ix_alert_delivery_attempts_delivery_id"),
        "alert_delivery_attempts",
        ["delivery_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_delivery_attempts_delivery_id"), table_name="alert_delivery_attempts")
    op.drop_table("alert_delivery_attempts")
    op.drop_index("ix_alert_deliveries_state_next_attempt_at", table_name="alert_deliveries")
    op.drop_index(op.f("ix_alert_deliveries_alert_id"), table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index(op.f("ix_alerts_issue_id"), table_name="alerts")
    op.drop_index("ix_alerts_delivery_digested", table_name="alerts")
    op.drop_index(op.f("ix_alerts_camera_id"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("cameras")
    op.drop_index("ix_camera_states_camera_id_at", table_name="camera_states")
    op.drop_table("camera_states")
