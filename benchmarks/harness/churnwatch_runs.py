"""Settings and command line of one churnwatch run that shares a stack with other runs.

Every run (floor, full, latency, repeat) gets its own topics, database schema,
Redis key prefix and recovery directory, so no run sees another's state.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from churnwatch.settings import Settings


def isolated_settings(base: Settings, tag: str, recovery_root: Path, *, batch_size: int,
                      events_topic: str | None = None, **changes: object) -> Settings:
    """``base`` with names of its own (``bench_<tag>_<random>``) and ``changes`` applied.

    Its recovery directory is ``recovery_root/<name>/recovery``. ``events_topic``
    reads an existing topic instead of a fresh one, so several runs can be timed
    over the same produced messages.
    """
    from churnwatch.settings import Topics

    name = f"bench_{tag}_{uuid.uuid4().hex[:6]}"
    return base.replace(
        topics=Topics(
            events=events_topic or f"{name}.events",
            dead_letters=f"{name}.dlq",
            alerts=f"{name}.alerts",
            late=f"{name}.late",
        ),
        database_schema=name,
        redis_key_prefix=name,
        recovery_dir=recovery_root / name / "recovery",
        input_batch_size=batch_size,
        **changes,
    )


def init_recovery(settings: Settings, overrides: Sequence[str] = ()) -> None:
    """Create the recovery partitions before the cluster starts, as the run will see
    them: with the same CHURNWATCH_NAME=VALUE ``overrides`` (``--env
    CHURNWATCH_SHARDS=16``: made for 64 shards, the run refused to start).

    Every process of a fresh cluster would otherwise create them at once, and
    the loser of that race panics ("table parts already exists").
    """
    from churnwatch.settings import Settings
    from dataflows.run import recovery_config

    run = Settings.from_env(child_env(settings, overrides)) if overrides else settings
    recovery_config(run.recovery_dir, run.recovery_partitions, shards=run.shards)


def child_env(settings: Settings | None, overrides: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment with ``settings`` as CHURNWATCH_* (None: the shipped
    defaults) and ``overrides`` last.

    Inherited CHURNWATCH_* variables are dropped: the run must see exactly ``settings``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    if settings is not None:
        env.update(settings.to_env())
    for item in overrides:
        name, _, value = item.partition("=")
        env[name] = value
    env["PYTHONUNBUFFERED"] = "1"
    return env


def churnwatch_argv(processes: int, *, until_drained: bool) -> list[str]:
    """``churnwatch run`` with this interpreter, so it runs the code under test."""
    argv = [sys.executable, "-m", "churnwatch", "run", "--processes", str(processes)]
    if until_drained:
        argv.append("--until-drained")
    return argv
