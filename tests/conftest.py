"""Shared fixtures: a clean environment for every test, and a way to run the script as a user would.

The suite tests the `messages_stream` that Python imports: the checkout's file under `pip install -e .`,
the installed copy in CI (`.ci/run` installs without `-e` and sets MESSAGES_STREAM_INSTALLED=1, so a
checkout file that shadows the installed one fails the run at once instead of being tested in its place).
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

import messages_stream

CHECKOUT = Path(__file__).resolve().parent.parent
SCRIPT = Path(messages_stream.__file__).resolve()
# The file that the host, edge and signal tests run: another copy when MESSAGES_STREAM_FILE is set (to run
# them once against an older version), else SCRIPT.
UNDER_TEST = Path(os.environ.get("MESSAGES_STREAM_FILE") or SCRIPT).resolve()
if os.environ.get("MESSAGES_STREAM_INSTALLED") == "1" and SCRIPT.is_relative_to(CHECKOUT):
    raise RuntimeError(
        f"MESSAGES_STREAM_INSTALLED=1, but the tests would run the checkout's {SCRIPT}, not an installed "
        "copy: install without -e, and run `pytest`, not `python -m pytest` (which puts the cwd first)"
    )
# Variables that would change what the script does, or send it to another machine. PYTHONUNBUFFERED
# would hide a missing `flush=True`, the example's headline lesson.
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
    "PYTHONUNBUFFERED",
    "NO_COLOR",
)
# True: run the script as `python SCRIPT`. False (a fixture of the fault matrix sets it): run it as on a
# platform without signal.setitimer (Windows), where the script has no SIGALRM belt, the run-time check
# that the contract gives (`hasattr(signal, "setitimer")`).
BELT = True
NO_BELT = (
    "import runpy, signal, sys; del signal.setitimer; "
    "sys.argv[0] = {0}; runpy.run_path({0}, run_name='__main__')"
)
# What must never reach stderr: a traceback, or the noise of a sloppy teardown.
NOISE = ("Traceback", "Unclosed", "Task was destroyed", "Exception ignored", "Warning")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a run: none of the variables above, and g4f's files kept under `home`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(FOREIGN)}
    env.update(HOME=str(home), G4F_CONFIG_DIR=str(home / "g4f"), G4F_CACHE_DIR=str(home / "cache"), **extra)
    return env


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give each test its own home, g4f folders and working folder, no proxies; restore signal handlers.

    The working folder matters: a child started with `python -c` imports from it first, and g4f writes
    into `./har_and_cookies` when that exists.
    """
    for name in list(os.environ):
        if name.startswith(FOREIGN):
            monkeypatch.delenv(name)
    for name, value in clean_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    handlers = {
        number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)
    }
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield tmp_path
    signal.setitimer(signal.ITIMER_REAL, 0)
    while signal.sigpending():  # what cli() held back, once it had begun to end: take it, unseen
        signal.sigtimedwait(signal.sigpending(), 0)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for number, handler in handlers.items():
        signal.signal(number, handler)


def script_command(*args: str) -> list[str]:
    """The command that runs the script with `args`, with or without the SIGALRM belt (see BELT)."""
    if BELT:
        return [sys.executable, str(SCRIPT), *args]
    return [sys.executable, "-c", NO_BELT.format(repr(str(SCRIPT))), *args]


def script_shell(*args: str) -> str:
    """script_command() as one line for `sh -c`, for tests that build a pipeline."""
    return shlex.join(script_command(*args))


def run_script(
    *args: str, home: Path, timeout: float = 30, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python messages_stream.py ARGS` in a clean environment; give back its exit code and output."""
    return subprocess.run(
        script_command(*args),
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
        script_command(*args),
        env=clean_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def assert_clean(stderr: str, traceback: bool = False) -> None:
    """Check that stderr holds no teardown noise, and no traceback unless one is expected (`--debug`)."""
    for noise in NOISE:
        if noise != "Traceback" or not traceback:
            assert noise not in stderr, stderr


def error_lines(stderr: str) -> list[str]:
    """The `error: ` lines of stderr, after checking that it holds no traceback or teardown noise."""
    assert_clean(stderr)
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def final_line(text: str) -> str:
    """What the script prints last on stdout, for an answer `text`."""
    return f"\n\nFinal accumulated text: {text}\n"


def read_until(stream: IO[bytes], wanted: bytes, bound: float = 10) -> bytes:
    """Read `stream` until `wanted` has come; fail if it has not after `bound` s (a deadlock's breaker)."""
    got = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while wanted not in got:
            assert selector.select(bound), f"only {got!r} came on stdout in {bound} s, waiting for {wanted!r}"
            piece = os.read(stream.fileno(), 4096)
            assert piece, f"stdout ended after {got!r}"
            got += piece
    return got
