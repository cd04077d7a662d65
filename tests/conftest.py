"""What every test shares. Read this first.

The fake client, in tests/fakes.py: `FakeClient` stands in for g4f's AsyncClient (the `fake` fixture
below installs it) and streams items that say what they do: `chunk("Hel")` is a chunk as g4f yields it,
`Sleep(0.2)` waits without blocking the event loop, `Block(30)` blocks the whole loop as g4f's look-ups
do, `Call(f)` calls f, and an exception is raised. test_main.py drives main() and cli() in-process with
it; test_main.py also checks, field by field, that its chunks are shaped as g4f's real ones.
`tiny_provider(...)` in the same file is the one small real g4f provider, for the tests that run g4f's
real client (test_main.py, test_content.py).

Everything else runs the script as a user does, in a process of its own (`run_script`, `start_script`,
`shell_command`, `on_a_terminal`, all from one `script_command`), against peers on 127.0.0.1 that the
test starts and stops: tests/server.py (an OpenAI-compatible server with fault modes, and a silent peer)
and tests/standin.py (g4f's registry and its first two providers over TLS, for the default path).
Every run's stderr is checked for tracebacks and teardown noise by the runner itself. Every wait has a
limit, and a test that still hangs is ended after LIMIT s by `time_limit`, every thread's traceback shown.

The suite tests the `messages_stream` that Python imports: the checkout's file under `pip install -e .`,
the installed copy in CI (`.ci/run` sets MESSAGES_STREAM_INSTALLED=1, so a checkout file that shadows
the installed one fails the run). MESSAGES_STREAM_FILE=path makes the subprocess tests run another copy
of the script (an older one, to see which new tests fail on it).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pty
import re
import select
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import pytest
from fakes import FakeClient

import messages_stream

CHECKOUT = Path(__file__).resolve().parent.parent
INSTALLED = Path(messages_stream.__file__).resolve()
# The one script the subprocess tests run: the imported module's file, or MESSAGES_STREAM_FILE.
SCRIPT = Path(os.environ.get("MESSAGES_STREAM_FILE") or INSTALLED).resolve()
if os.environ.get("MESSAGES_STREAM_INSTALLED") == "1" and INSTALLED.is_relative_to(CHECKOUT):
    raise RuntimeError(
        f"MESSAGES_STREAM_INSTALLED=1, but the tests would run the checkout's {INSTALLED}, not an installed "
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
# Variables that make Python itself louder: set in a developer's shell, they would put warnings on a
# child's stderr, which every run rejects. Kept out of the children's environment only.
LOUD = ("PYTHONWARNINGS", "PYTHONDEVMODE", "PYTHONASYNCIODEBUG")
# True: run the script as `python SCRIPT`. False (the `no_alarm` fixture sets it): run it as on a platform
# without signal.setitimer (Windows), where the script has no alarm for g4f's blocking look-ups.
ALARM = True
NO_ALARM = (
    "import runpy, signal, sys; del signal.setitimer; "
    "sys.argv[0] = {0}; runpy.run_path({0}, run_name='__main__')"
)
# What must never reach stderr: a traceback, or the noise of a sloppy teardown.
NOISE = ("Traceback", "Unclosed", "Task was destroyed", "Exception ignored", "Warning")
ENDS = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)  # the signals the script handles
WAIT = 90  # seconds any one run may take at most: a breaker against hangs on a busy machine, not a bound
LIMIT = 120  # seconds any one test may take, setup and teardown included: no healthy test comes near it
G4F = tuple(int(number) for number in re.findall(r"\d+", version("g4f"))[:3])  # the g4f under test


def since(*release: int, needs: str) -> pytest.MarkDecorator:
    """Skip a test on a g4f older than `release`, which brought what the test `needs` (CI runs the suite on
    the oldest g4f supported as well as on the newest)."""
    return pytest.mark.skipif(
        release > G4F, reason=f"needs {needs}, from g4f {'.'.join(map(str, release))} on"
    )


# The default path as tests/standin.py stands in for it: a g4f that downloads its provider registry first.
# An older g4f asks its providers' hosts at once, hosts that no test may reach.
needs_registry = since(8, 5, 0, needs="g4f's default path through its provider registry")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a run: none of the variables above, and g4f's files kept under `home`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith((*FOREIGN, *LOUD))}
    env.update(HOME=str(home), G4F_CONFIG_DIR=str(home / "g4f"), G4F_CACHE_DIR=str(home / "cache"), **extra)
    return env


TRACEBACKS: IO[str] | None = None  # the real stderr, for time_limit()'s tracebacks


def pytest_configure(config: pytest.Config) -> None:
    """Keep a copy of the real stderr for time_limit()'s tracebacks: during a test, pytest captures fd 2,
    and what goes there is lost when the process ends. Capture is suspended while plugins configure."""
    global TRACEBACKS
    TRACEBACKS = os.fdopen(os.dup(sys.__stderr__.fileno() if sys.__stderr__ else 2), "w")
    config.add_cleanup(TRACEBACKS.close)


@pytest.fixture(autouse=True)
def time_limit() -> Iterator[None]:
    """End the whole process if a test takes more than LIMIT s, after dumping every thread's traceback.

    faulthandler does it from C, in a thread of its own: it needs no signal (the script and the tests use
    SIGALRM) and no os._exit (which `isolated` replaces). Under pytest-xdist, the worker is reported as
    crashed in that test, and replaced; with `-n 0`, the run ends there.
    """
    faulthandler.dump_traceback_later(LIMIT, exit=True, file=TRACEBACKS or sys.__stderr__ or sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Give each test its own home, g4f folders and working folder, no proxies; restore the signal state.

    The working folder matters: a child started with `python -c` imports from it first, and g4f writes
    into `./har_and_cookies` when that exists. In-process, the deadline that the first signal arms (it
    ends the process 2 s later if the ending hangs) would end pytest: os._exit only records here.
    """
    for name in list(os.environ):
        if name.startswith(FOREIGN):
            monkeypatch.delenv(name)
    for name, value in clean_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "_exit", EXITS.append)
    handlers = {number: signal.getsignal(number) for number in ENDS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield tmp_path
    signal.setitimer(signal.ITIMER_REAL, 0)
    while signal.sigpending():  # what cli() held back, once it had begun to end: take it, unseen
        signal.sigtimedwait(signal.sigpending(), 0)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for number, handler in handlers.items():
        signal.signal(number, handler)


EXITS: list[int] = []  # what the in-process deadline would have exited with


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeClient]:
    """Install a FakeClient (tests/fakes.py) in place of g4f's AsyncClient; give it back to the test."""

    def install(*items: Any, create_raises: BaseException | None = None) -> FakeClient:
        client = FakeClient(list(items), create_raises)
        monkeypatch.setattr(messages_stream, "AsyncClient", client)
        return client

    return install


@pytest.fixture
def no_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the script as on a platform without signal.setitimer, where it has no alarm."""
    monkeypatch.setattr(sys.modules[__name__], "ALARM", False)


# ---- running the script ---------------------------------------------------------------------------------


@dataclass
class Run:
    """What a finished run gave back: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


def script_command(*args: str | bytes) -> list[str | bytes]:
    """The command that runs SCRIPT with `args` (bytes pass undecoded into argv), with the alarm or not."""
    if ALARM:
        return [sys.executable, str(SCRIPT), *args]
    return [sys.executable, "-c", NO_ALARM.format(repr(str(SCRIPT))), *args]


def shell_command(*args: str) -> str:
    """script_command() as one line for `sh -c`, for tests that build a pipeline or a redirection."""
    return shlex.join(str(part) for part in script_command(*args))


def run_script(
    *args: str | bytes,
    home: Path,
    input: str | bytes | None = None,
    stdout: Any = subprocess.PIPE,
    traceback: bool = False,
    shell: str | None = None,
    **env: str,
) -> Run:
    """Run the script with `args` and `input` on stdin (else no stdin at all), in a clean environment.

    `shell` runs it through `sh -c` with that redirection appended (`>&-`, `<&-`, `| head -c 5`). Its
    stderr must be free of teardown noise, and of tracebacks unless `traceback` (for --debug).
    """
    result = subprocess.run(
        f"{shell_command(*map(str, args))} {shell}" if shell is not None else script_command(*args),
        shell=shell is not None,
        input=input.encode() if isinstance(input, str) else input,
        stdin=None if input is not None else subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=clean_env(home, **env),
        timeout=WAIT,
    )
    err = result.stderr.decode(errors="replace")
    assert_clean(err, traceback)
    return Run(result.returncode, (result.stdout or b"").decode(errors="replace"), err)


def start_script(*args: str, home: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start the script with stdout and stderr on pipes, for tests that act while it runs."""
    return subprocess.Popen(
        script_command(*args),
        env=clean_env(home, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def on_a_terminal(*args: str, fd: int, home: Path, **env: str) -> tuple[int, bytes, str]:
    """Run the script with `fd` (1 or 2) on a pseudo-terminal and the other one on a pipe.

    Give back the exit code, the bytes the terminal received, and the text of the pipe. Whichever of
    them is stderr must be free of tracebacks and teardown noise. Both are read together, so that neither
    fills up while the other is waited on; a run still going after WAIT s raises TimeoutExpired, as
    run_script() does, and the process is killed whatever happens.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        script_command(*args),
        stdin=subprocess.DEVNULL,
        stdout=slave if fd == 1 else subprocess.PIPE,
        stderr=slave if fd == 2 else subprocess.PIPE,
        env=clean_env(home, **env),
    )
    os.close(slave)
    try:
        pipe = process.stdout if fd == 2 else process.stderr
        assert pipe is not None
        got = {master: b"", pipe.fileno(): b""}  # what came on the terminal, and on the pipe
        deadline = time.monotonic() + WAIT  # a breaker against hanging, not an assertion
        reading = set(got)
        while reading:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(process.args, WAIT)
            for ready in select.select(list(reading), [], [], left)[0]:
                try:
                    data = os.read(ready, 4096)
                except OSError:  # EIO: the script has closed its end of the terminal
                    data = b""
                got[ready] += data
                if not data:
                    reading.discard(ready)
        code = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        received, other = got[master], got[pipe.fileno()].decode()
    finally:
        process.kill()  # nothing, if it has ended
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        os.close(master)
    assert_clean(received.decode(errors="replace") if fd == 2 else other, traceback="--debug" in args)
    return code, received, other


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound for the whole block, never listening, so that
    no other test can take it meanwhile."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield int(bound.getsockname()[1])


# ---- checking what came out -----------------------------------------------------------------------------


def assert_clean(stderr: str, traceback: bool = False) -> None:
    """Check that stderr holds no teardown noise, and no traceback unless one is expected (`--debug`)."""
    for noise in NOISE:
        if noise != "Traceback" or not traceback:
            assert noise not in stderr, stderr


def error_lines(stderr: str) -> list[str]:
    """The `error: ` lines of stderr."""
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def final_line(text: str) -> str:
    """What the script prints last on stdout, for an answer `text`."""
    return f"\n\nFinal accumulated text: {text}\n"


def read_until(stream: IO[bytes], wanted: bytes, bound: float = WAIT) -> bytes:
    """Read `stream` until `wanted` has come; fail if it has not after `bound` s (a deadlock's breaker)."""
    got = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while wanted not in got:
            assert selector.select(bound), f"only {got!r} came in {bound} s, waiting for {wanted!r}"
            piece = os.read(stream.fileno(), 4096)
            assert piece, f"the stream ended after {got!r}"
            got += piece
    return got
