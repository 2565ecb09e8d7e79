"""A real ``growth serve`` process on 127.0.0.1 for end-to-end tests: started, awaited, stopped, its output kept."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

START = "2026-01-05T09:00:00+07:00"
KEY_IN_OUTPUT = re.compile(r"ge_admin_[A-Za-z0-9_\-]+")  # the admin key a first start prints
STARTUP_TIMEOUT_S = 30.0


def daytime_zone() -> str:
    """A time zone where it is early afternoon now (real-clock tests: quiet hours hold nothing back)."""
    import datetime as dt

    offset = (13 - dt.datetime.now(dt.UTC).hour + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def growth_command() -> list[str]:
    """The installed ``growth`` program next to this interpreter, else the module it runs."""
    script = Path(sys.executable).with_name("growth")
    if script.exists():
        return [str(script)]
    found = shutil.which("growth")
    return [found] if found else [sys.executable, "-m", "growthengine.cli"]


class ServeProcess:
    """One ``growth serve`` run; its stdout and stderr go to a file (a pipe left unread could block it)."""

    def __init__(self, cwd: Path, args: Sequence[str], env: dict[str, str], name: str = "serve") -> None:
        self.cwd = cwd
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"{name}-{self.port}.log"
        command = [*growth_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Until ``/openapi.json`` answers; fails at once, with the output, if the process exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"growth serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/openapi.json", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"growth serve did not answer within {timeout_s:.0f}s:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM (a clean shutdown), then SIGKILL to the whole process group if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


def clean_env(**growth: str) -> dict[str, str]:
    """The test's environment without any ``GROWTH_*`` setting of the machine, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROWTH_")}
    env.update({f"GROWTH_{k.upper()}": v for k, v in growth.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def serving(cwd: Path, args: Sequence[str], env: dict[str, str], name: str = "serve") -> Iterator[ServeProcess]:
    """A started, answering server; always stopped after, and its output printed (pytest shows it on failure)."""
    server = ServeProcess(cwd, args, env, name)
    try:
        server.wait_ready()
        yield server
    finally:
        code = server.stop()
        print(f"--- growth serve ({name}, exit {code}) output ---\n{server.output()}")


class WorkerProcess:
    """One ``growth worker`` run (no API); its output goes to a file."""

    def __init__(self, cwd: Path, args: Sequence[str], env: dict[str, str], name: str = "worker") -> None:
        self.log_path = cwd / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([*growth_command(), "worker", *args], cwd=cwd, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crashed machine would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode
