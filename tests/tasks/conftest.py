"""A real Celery worker for the task tests, on the configured broker (Redis in CI, the file-system broker otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    """A running worker: its log, and its process for the tests that kill it (solo pool: one process)."""

    log: Path
    process: subprocess.Popen


@contextmanager
def running_worker(log: Path, env: dict[str, str] | None = None, queues: str = "batch") -> Iterator[Worker]:
    """A solo-pool worker on the given queues, started and stopped around the block (or killed inside it)."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "fhirstudio",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-Q",
                queues,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{log.read_text()}")
        time.sleep(0.2)
    try:
        yield Worker(log, process)
    finally:
        process.terminate()  # a no-op when the test killed it already
        process.wait(timeout=30)


@contextmanager
def celery_worker(log: Path, env: dict[str, str] | None = None, queues: str = "batch") -> Iterator[Path]:
    """A solo-pool worker on the given queues, started and stopped around the block; yields its log file."""
    with running_worker(log, env, queues) as worker:
        yield worker.log
