"""Shared fixtures: a clean environment for every test, and a way to run the script as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "messages_stream.py"
# Variables that would change what the script does, or send it to another machine.
FOREIGN = (
    "G4F_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "PYTHONIOENCODING",
)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a run: none of the variables above, and g4f's files kept under `home`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(FOREIGN)}
    env.update(
        HOME=str(home),
        G4F_CONFIG_DIR=str(home / "g4f"),
        G4F_CACHE_DIR=str(home / "cache"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give each test its own home and g4f folders, no proxies, and restore the signal handlers after it."""
    for name in list(os.environ):
        if name.startswith(FOREIGN):
            monkeypatch.delenv(name)
    for name, value in clean_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    handlers = {
        number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)
    }
    yield tmp_path
    signal.setitimer(signal.ITIMER_REAL, 0)
    for number, handler in handlers.items():
        signal.signal(number, handler)


def run_script(
    *args: str, home: Path, timeout: float = 30, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python messages_stream.py ARGS` in a clean environment; give back its exit code and output."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        input=input,
        env=clean_env(home, **env),
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def start_script(*args: str, home: Path) -> subprocess.Popen[bytes]:
    """Start `python messages_stream.py ARGS` with stdout and stderr on pipes, for tests that act mid-run."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        env=clean_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def error_lines(stderr: str) -> list[str]:
    """The `error: ` lines of stderr, after checking that it holds no traceback or teardown noise."""
    for noise in ("Traceback", "Unclosed", "Task was destroyed", "Exception ignored", "Warning"):
        assert noise not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def final_line(text: str) -> str:
    """What the script prints last on stdout, for an answer `text`."""
    return f"\n\nFinal accumulated text: {text}\n"
