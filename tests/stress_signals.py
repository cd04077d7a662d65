"""Double signals on the command line: Ctrl-C twice in quick succession, and Ctrl-C then SIGTERM, mid-stream.

A second signal that lands while the run is already ending must not lose the final line, print a
traceback or `Task was destroyed`, or change the exit code (130, that of the first signal). Where
the second signal lands is a matter of timing, so this file offers two checks, both used by
tests/test_hosts.py:

- `double_signal()`: the parent sends both signals, `gap` seconds apart. Many runs with gaps from
  0 to 27 ms sweep the ending window. Run the stress check (50 runs of each pair by default) with

      python tests/stress_signals.py [RUNS]

- `hooked_second_signal()`: the parent sends Ctrl-C, and the child sends itself the second signal
  at a chosen point of the ending (while g4f's connectors close, or as the final line is written),
  so that window is hit in every run, deterministically.

Both run conftest's SCRIPT: the imported messages_stream's file, or another copy, MESSAGES_STREAM_FILE=path.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

if __name__ == "__main__":  # as pytest's `pythonpath` does, so that conftest finds messages_stream
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from conftest import SCRIPT, clean_env, final_line, read_until
from server import openai_server, text_events

SLOW = text_events([f"w{i} " for i in range(400)])  # one every 50 ms: 20 s, unless a signal ends it
PAIRS = {"Ctrl-C twice": signal.SIGINT, "Ctrl-C then SIGTERM": signal.SIGTERM}
WINDOWS = ("close", "final")  # where hooked_second_signal() sends the second signal

# Runs the script (argv[3]) with the second signal (argv[1]) sent from inside the ending (argv[2]),
# and touches argv[4] when it does, so a hook that the script never reaches cannot pass unseen.
HOOK = """
import asyncio, io, os, runpy, signal, sys
import g4f.requests
second, where, script, mark = signal.Signals[sys.argv[1]], sys.argv[2], sys.argv[3], sys.argv[4]

def send_second() -> None:
    open(mark, "w").close()
    os.kill(os.getpid(), second)

if where == "close":  # while cli() closes g4f's shared connectors
    close = getattr(g4f.requests, "close_shared_connectors", None)  # none before g4f 8.5.0
    async def closing(*args, **kwargs):
        send_second()
        await asyncio.sleep(0.1)  # turns of the loop, for a handler that runs there
        if close is not None:
            await close(*args, **kwargs)
    g4f.requests.close_shared_connectors = closing  # what the script calls, where g4f has it or not
else:  # as the final line is written
    class Stdout(io.TextIOWrapper):
        def write(self, text: str) -> int:
            if "Final accumulated text" in text:
                send_second()
            return super().write(text)
    sys.stdout = Stdout(sys.stdout.buffer, encoding="utf-8", write_through=True)
sys.argv = sys.argv[3:4] + sys.argv[5:]
runpy.run_path(script, run_name="__main__")
"""


def _run(
    command: list[str], url: str, home: Path, second: signal.Signals, gap: float | None, codes: set[int]
) -> tuple[int | None, list[str]]:
    """Start `command --provider url`, send Ctrl-C mid-stream (and `second` after `gap` s, unless None).

    Give back the exit code, and what went wrong: an empty list when the run ended as it should. Every
    wait is bounded, and the process is killed on every path (after a run that ended, that does nothing).
    """
    with subprocess.Popen(
        [*command, "--provider", url],
        env=clean_env(home),
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            assert process.stdout is not None
            try:
                first = read_until(process.stdout, b"w0 w1 ", bound=60)  # the stream is under way
            except AssertionError as error:
                return None, [f"the stream never got under way: {error}"]
            process.send_signal(signal.SIGINT)
            if gap is not None:
                time.sleep(gap)
                process.send_signal(second)  # ignored by Popen if the process has already been reaped
            try:
                out, err = process.communicate(timeout=60)  # generous: 2 cores, shared with other tests
            except subprocess.TimeoutExpired:
                return None, ["still running 60 s after the signals"]
        finally:
            process.kill()  # `with` then closes the pipes and reaps the process
    output, errors = (first + out).decode(errors="replace"), err.decode(errors="replace")
    problems = [] if process.returncode in codes else [f"exit code {process.returncode}"]
    text = output.split("\n\nFinal accumulated text: ")[0]
    if not text.startswith("w0 w1 ") or output != text + final_line(text):
        problems.append(f"stdout does not end with the final line: {output[-120:]!r}")
    if errors:  # a signal prints nothing: no traceback, no `Task was destroyed`, no error line
        problems.append(f"stderr: {errors[-600:]!r}")
    return process.returncode, problems


def double_signal(second: signal.Signals, gap: float, home: Path) -> tuple[int | None, list[str]]:
    """Ctrl-C, then `second` `gap` s later, both from outside, on a run of the command line mid-stream.

    Either 130 or 143 is right here: two signals microseconds apart can reach Python's handlers in
    either order (a SIGTERM that trips while the SIGINT handler starts runs nested, inside it).
    """
    with openai_server(events=SLOW, delay=0.05) as server:
        return _run([sys.executable, str(SCRIPT)], server.url, home, second, gap, {130, 143})


def hooked_second_signal(second: signal.Signals, where: str, home: Path) -> list[str]:
    """Ctrl-C from outside mid-stream; the run sends itself `second` at `where` (one of WINDOWS).

    The second signal comes long after the first was handled, so the exit code must be the first's: 130.
    """
    mark = home / "second-signal-sent"
    command = [sys.executable, "-c", HOOK, second.name, where, str(SCRIPT), str(mark)]
    with openai_server(events=SLOW, delay=0.05) as server:
        _, problems = _run(command, server.url, home, second, None, {130})
    return problems if mark.exists() else [f"the hook at {where!r} was never reached", *problems]


def stress(runs: int) -> int:
    """Run each pair `runs` times, with gaps of 0 to 27 ms; print each failure; give back how many."""
    failures = 0
    for name, second in PAIRS.items():
        codes: Counter[int | None] = Counter()
        for run in range(runs):
            with tempfile.TemporaryDirectory() as home:
                gap = (run % 10) * 0.003
                code, problems = double_signal(second, gap, Path(home))
            codes[code] += 1
            failures += bool(problems)
            for problem in problems:
                print(f"{name}, run {run + 1}, gap {gap * 1000:.0f} ms: {problem}", flush=True)
        print(f"{name}: {runs} runs, exit codes {dict(codes)}", flush=True)
    print(f"{SCRIPT}: {failures} of {runs * len(PAIRS)} runs failed")
    return failures


if __name__ == "__main__":
    sys.exit(1 if stress(int(sys.argv[1]) if len(sys.argv) > 1 else 50) else 0)
