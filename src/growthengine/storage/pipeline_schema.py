"""The pipeline's own tables: stage cursors, partition leases and the workers that hold them.

Times here are system time (seconds since the epoch, always real): leases and heartbeats never follow a manual
business clock.
"""

from __future__ import annotations

import sqlalchemy as sa

from growthengine.storage.schema import metadata

stage_cursors = sa.Table(
    "stage_cursors",
    metadata,
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("partition", sa.SmallInteger, primary_key=True),
    sa.Column("tx_pos", sa.BigInteger, nullable=False),
    sa.Column("id_pos", sa.BigInteger, nullable=False),
    sa.Column("updated_s", sa.Float, nullable=False),
)

partition_leases = sa.Table(
    "partition_leases",
    metadata,
    sa.Column("partition", sa.SmallInteger, primary_key=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("expires_s", sa.Float, nullable=False),
)

pipeline_workers = sa.Table(
    "pipeline_workers",
    metadata,
    sa.Column("worker_id", sa.String(128), primary_key=True),
    sa.Column("heartbeat_s", sa.Float, nullable=False),
    sa.Column("started_s", sa.Float, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
)

provider_calls = sa.Table(
    "provider_calls",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("latency_s", sa.Float, nullable=False),
    sa.Column("at_s", sa.Float, nullable=False),
)
