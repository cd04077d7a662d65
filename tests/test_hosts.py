"""main() in the programs people copy it into: a bot, gather(), a worker thread, the asyncio REPL, a host
with its own SIGALRM watchdog; and double signals on the command line.

Each host is a small program run in a subprocess of its own, so that a main() that exits, hangs or
kills its host cannot take pytest down. It imports main() from the directory of conftest's SCRIPT
(MESSAGES_STREAM_FILE when set), so the same tests can be run against an old copy.
A host reports what it saw on stdout, in lines that start with "host: ".
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCRIPT, assert_clean, clean_env, closed_port, final_line, read_until
from server import delta, openai_server, text_events
from stress_signals import PAIRS, WINDOWS, double_signal, hooked_second_signal

HOST_TIMEOUT = 90  # seconds for a whole host run: generous, the machine is small and shared
HELLO = "Hello there!"  # what openai_server() answers by default
STALL = [delta("stall")]  # with fault="hang": one chunk, then silence

# The top of every host program. argv: the directory of the file under test, its module name, URLs.
PRELUDE = """
import asyncio, importlib, signal, sys, threading, time
sys.path.insert(0, sys.argv[1])  # the file under test, not whatever copy is installed
main = importlib.import_module(sys.argv[2]).main
urls = sys.argv[3:]

def report(*words):
    print("host:", *words, flush=True)

def kind(error):
    return f"{'timeout' if isinstance(error, TimeoutError) else 'other'} {type(error).__name__}"
"""


def run_host(body: str, *urls: str, home: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run PRELUDE + `body` as a host program; give back the run and its `host: ` lines."""
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + body, str(SCRIPT.parent), SCRIPT.stem, *urls],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HOST_TIMEOUT,
        env=clean_env(home),
        cwd=home,
        stdin=subprocess.DEVNULL,
    )
    assert_clean(result.stderr)
    return result, [line for line in result.stdout.splitlines() if line.startswith("host: ")]


BOT = """
async def serve(provider, timeout):
    try:
        report("ok", repr(await main("hi", provider=provider, timeout=timeout)))
    except Exception as error:  # what a bot does: log it, and go on serving
        report("caught", kind(error))

async def bot():
    for provider, timeout in zip(urls, (10, 1, 10)):
        await serve(provider, timeout)

asyncio.run(bot())
report("end")
"""


def test_a_host_that_catches_exception_survives_a_refused_connection_and_a_timeout(isolated: Path) -> None:
    with closed_port() as port, openai_server(events=STALL, fault="hang") as stalled, openai_server() as good:
        result, lines = run_host(BOT, f"http://127.0.0.1:{port}/v1", stalled.url, good.url, home=isolated)
    assert result.returncode == 0, result.stderr  # it ended by itself, and not through SystemExit
    assert lines[0].startswith("host: caught other "), result.stdout  # e.g. ClientConnectorError
    rest = ["host: caught timeout TimeoutError", f"host: ok {HELLO!r}", "host: end"]
    assert lines[1:] == rest, result.stdout
    # Each call printed its final line before it raised or returned.
    assert result.stdout.startswith(final_line("") + "host: caught other")
    assert final_line("stall") + "host: caught timeout" in result.stdout
    assert HELLO + final_line(HELLO) + "host: ok" in result.stdout


# Two calls at once; each reports its outcome and how long it took.
GATHER = """
async def call(name, provider):
    started = time.monotonic()
    try:
        outcome = repr(await main("hi", provider=provider, timeout=TIMEOUT))
    except Exception as error:
        outcome = kind(error)
    report(name, outcome, f"{time.monotonic() - started:.2f}")

async def both():
    await asyncio.gather(call("fast", urls[0]), call("other", urls[1]))

asyncio.run(both())
"""
SLOW_PIECES = [f"s{i}." for i in range(10)]  # one every 0.1 s: a 1 s stream


def test_gather_a_fast_and_a_1_s_stream_both_complete_with_their_own_text(isolated: Path) -> None:
    with openai_server() as fast, openai_server(events=text_events(SLOW_PIECES), delay=0.1) as slow:
        result, lines = run_host("TIMEOUT = 10" + GATHER, fast.url, slow.url, home=isolated)
    assert result.returncode == 0, result.stderr
    outcomes = sorted(line.rsplit(" ", 1)[0] for line in lines)  # without the time taken
    assert outcomes == [f"host: fast {HELLO!r}", f"host: other {''.join(SLOW_PIECES)!r}"], result.stdout
    assert final_line(HELLO) in result.stdout and final_line("".join(SLOW_PIECES)) in result.stdout


def test_gather_a_stalled_stream_times_out_within_3_s_and_the_fast_one_completes(isolated: Path) -> None:
    with openai_server() as fast, openai_server(events=STALL, fault="hang") as stalled:
        result, lines = run_host("TIMEOUT = 1" + GATHER, fast.url, stalled.url, home=isolated)
    assert result.returncode == 0, result.stderr
    by_name = {line.split()[1]: line.split(" ", 2)[2].rsplit(" ", 1) for line in lines}
    assert by_name.keys() == {"fast", "other"}, result.stdout
    assert by_name["fast"][0] == repr(HELLO)
    assert by_name["other"][0] == "timeout TimeoutError"
    assert float(by_name["other"][1]) < 3  # timeout=1 raised within 3 s, timed in the host from the call
    assert final_line("stall") in result.stdout


THREAD = """
outcome = []

def work():  # as Streamlit, Gradio or asyncio.to_thread would call it: in a thread, with its own loop
    try:
        outcome.append(repr(asyncio.run(main("hi", provider=urls[0], timeout=10))))
    except BaseException as error:  # SystemExit would end only this thread, silently
        outcome.append(kind(error))

worker = threading.Thread(target=work)
worker.start()
worker.join()
report("thread", *outcome)
"""


def test_main_streams_in_a_worker_thread_with_its_own_event_loop(isolated: Path) -> None:
    with openai_server() as server:
        result, _ = run_host(THREAD, server.url, home=isolated)
    assert result.returncode == 0, result.stderr
    assert result.stdout == HELLO + final_line(HELLO) + f"host: thread {HELLO!r}\n", result.stderr


LIVES_ON = """
asyncio.run(main("hi", provider=urls[0], timeout=10))
sys.stdin.read()  # a bot goes on running: it ends only when the test closes its stdin
"""


def test_the_final_line_is_out_before_the_host_goes_on(isolated: Path) -> None:
    # Unflushed, the final line would wait in the host's buffer for as long as the host runs.
    with (
        openai_server() as server,
        subprocess.Popen(
            [sys.executable, "-c", PRELUDE + LIVES_ON, str(SCRIPT.parent), SCRIPT.stem, server.url],
            env=clean_env(isolated),
            cwd=isolated,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as host,
    ):
        assert host.stdout is not None
        try:
            shown = read_until(host.stdout, final_line(HELLO).encode())
        finally:
            _, err = host.communicate(timeout=HOST_TIMEOUT)  # it closes the host's stdin first
    assert shown.decode() == HELLO + final_line(HELLO)
    assert (host.returncode, err) == (0, b"")


WATCHDOG = """
fired = []
def on_alarm(signum, frame):
    fired.append(signum)
def on_other(signum, frame):
    pass

handlers = {signal.SIGALRM: on_alarm, signal.SIGINT: on_other, signal.SIGTERM: on_other}
for number, handler in handlers.items():
    signal.signal(number, handler)
# The host's own watchdog: every second. An interval keeps it armed even if it fires during main().
signal.setitimer(signal.ITIMER_REAL, 1, 1)

async def calls():
    report("ok", repr(await main("hi", provider=urls[0], timeout=10)))
    try:  # a call that ends by its timeout: the likeliest one to touch an alarm
        await main("hi", provider=urls[1], timeout=1)
    except Exception as error:
        report("caught", kind(error))

asyncio.run(calls())
remaining, interval = signal.getitimer(signal.ITIMER_REAL)
report("handlers", all(signal.getsignal(number) is handler for number, handler in handlers.items()))
report("timer", 0 < remaining <= 1, interval)
before, deadline = len(fired), time.monotonic() + 30
while len(fired) == before and time.monotonic() < deadline:
    time.sleep(0.05)
report("fired later", len(fired) > before)
"""


def test_a_hosts_sigalrm_handler_and_timer_and_its_other_handlers_are_untouched(isolated: Path) -> None:
    with openai_server() as server, openai_server(events=STALL, fault="hang") as stalled:
        result, lines = run_host(WATCHDOG, server.url, stalled.url, home=isolated)
    assert result.returncode == 0, result.stderr
    assert lines == [
        f"host: ok {HELLO!r}",
        "host: caught timeout TimeoutError",
        "host: handlers True",
        "host: timer True 1.0",
        "host: fired later True",
    ], result.stdout


def test_a_failing_await_main_leaves_the_asyncio_repl_running(isolated: Path) -> None:
    with closed_port() as port:
        lines = [
            "import importlib, sys",
            f"sys.path.insert(0, {str(SCRIPT.parent)!r})",
            f"main = importlib.import_module({SCRIPT.stem!r}).main",
            f"await main('hi', provider='http://127.0.0.1:{port}/v1', timeout=10)",
            "print('still alive')",
        ]
        result = subprocess.run(
            [sys.executable, "-m", "asyncio"],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=HOST_TIMEOUT,
            env=clean_env(isolated),
            cwd=isolated,
        )
    assert "still alive\n" in result.stdout, result.stderr  # the REPL went on to the next line...
    assert result.returncode == 0, result.stderr  # ...and ended at EOF, as a REPL does
    assert "Traceback" in result.stderr and final_line("") in result.stdout  # after showing the failure
    assert_clean(result.stderr, traceback=True)


@pytest.mark.parametrize("second", PAIRS.values(), ids=PAIRS.keys())
def test_double_signals_mid_stream_keep_the_final_line_a_few_runs(isolated: Path, second: int) -> None:
    """The short version of `python tests/stress_signals.py` (50 runs of each, gaps of 0 to 27 ms)."""
    for run, gap in enumerate((0.0, 0.003, 0.015)):
        (home := isolated / str(run)).mkdir()
        assert double_signal(signal.Signals(second), gap, home)[1] == [], f"gap {gap} s"


@pytest.mark.parametrize("where", WINDOWS)
@pytest.mark.parametrize("second", PAIRS.values(), ids=PAIRS.keys())
def test_a_second_signal_inside_the_ending_is_ignored(isolated: Path, second: int, where: str) -> None:
    """Deterministic: the run sends itself the second signal while ending, at `where`, every time."""
    assert hooked_second_signal(signal.Signals(second), where, isolated) == []
