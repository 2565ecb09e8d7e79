"""The pipeline: partitions on events and timers, stage cursors, partition leases, workers.

Revision ID: 0010
Revises: 0009
"""

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PARTITIONS = 64
STAGES = ("segments", "flows", "consent", "engagement", "analytics")


def _partition(user_id: str) -> int:
    return zlib.crc32(user_id.encode("utf-8")) % PARTITIONS


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("partition", sa.SmallInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("timers") as batch:
        batch.add_column(sa.Column("partition", sa.SmallInteger, nullable=False, server_default="0"))
    if postgres:
        # The id of the transaction that appended the row: a reader takes only rows of transactions older than every
        # running one (pg_snapshot_xmin), so a row that commits late is never skipped.
        op.execute("ALTER TABLE events ADD COLUMN txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)")
        op.create_index("ix_events_txid", "events", ["txid", "id"])
    # Rows written before the pipeline: their partitions, from their user ids.
    users = [r[0] for r in bind.execute(sa.text("SELECT DISTINCT user_id FROM events"))]
    for user_id in users:
        bind.execute(sa.text("UPDATE events SET partition = :p WHERE user_id = :u"),
                     {"p": _partition(user_id), "u": user_id})
    op.create_index("ix_timers_partition_due", "timers", ["partition", "due_us"])
    op.create_table(
        "stage_cursors",
        sa.Column("stage", sa.String(64), primary_key=True),
        sa.Column("partition", sa.SmallInteger, primary_key=True),
        sa.Column("tx_pos", sa.BigInteger, nullable=False),
        sa.Column("id_pos", sa.BigInteger, nullable=False),
        sa.Column("updated_s", sa.Float, nullable=False),
    )
    op.create_table(
        "partition_leases",
        sa.Column("partition", sa.SmallInteger, primary_key=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires_s", sa.Float, nullable=False),
    )
    op.create_table(
        "pipeline_workers",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("heartbeat_s", sa.Float, nullable=False),
        sa.Column("started_s", sa.Float, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
    )
    # Calls to other services made by flow runs (coupons, recommendations, generated copy): recorded, made outside
    # any transaction, their results recorded, then the run goes on (a crash neither loses nor repeats them).
    op.create_table(
        "flow_activities",
        sa.Column("run_id", sa.BigInteger, primary_key=True),
        sa.Column("step", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_s", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_flow_activities_status", "flow_activities", ["status", "lease_s"])
    # Every call of a worker to a channel provider (insert-only): what /metrics counts, whichever process called.
    op.create_table(
        "provider_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("latency_s", sa.Float, nullable=False),
        sa.Column("at_s", sa.Float, nullable=False),
    )
    op.bulk_insert(
        sa.table("partition_leases", sa.column("partition", sa.SmallInteger), sa.column("owner", sa.String),
                 sa.column("epoch", sa.BigInteger), sa.column("expires_s", sa.Float)),
        [{"partition": p, "owner": None, "epoch": 0, "expires_s": 0.0} for p in range(PARTITIONS)],
    )
    # A database upgraded from the first version already did every stage's work inside ingestion: the stages start
    # after what is there.
    top = bind.execute(sa.text("SELECT max(id) FROM events")).scalar()
    if top is not None:
        tx_top = bind.execute(sa.text("SELECT max(txid) FROM events")).scalar() if postgres else 0
        op.bulk_insert(
            sa.table("stage_cursors", sa.column("stage", sa.String), sa.column("partition", sa.SmallInteger),
                     sa.column("tx_pos", sa.BigInteger), sa.column("id_pos", sa.BigInteger),
                     sa.column("updated_s", sa.Float)),
            [{"stage": s, "partition": p, "tx_pos": int(tx_top or 0), "id_pos": int(top), "updated_s": 0.0}
             for s in STAGES for p in range(PARTITIONS)],
        )


def downgrade() -> None:
    op.drop_table("provider_calls")
    op.drop_table("flow_activities")
    op.drop_table("pipeline_workers")
    op.drop_table("partition_leases")
    op.drop_table("stage_cursors")
    op.drop_index("ix_timers_partition_due", "timers")
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("partition")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("partition")
        if op.get_bind().dialect.name == "postgresql":
            batch.drop_column("txid")
