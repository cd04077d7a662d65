"""The fault matrix: every failure a user meets, over real HTTP, real signals and real pipes.

Each test runs `python messages_stream.py` in a process of its own against a peer on 127.0.0.1 and
checks the exit code, stderr (one `error: ` line, or nothing) and stdout (what arrived before the fault,
then the final line; nothing at all when g4f's registry fails, since the command loads it before main()
runs). The runner itself rejects tracebacks and teardown noise on stderr.

Two rows also run as on a platform without `signal.setitimer` (Windows), where the script has no alarm.
The registry download hanging through a silent proxy is a blocking call that only the alarm can end:
without it the run hangs, the documented limit (a strict xfail, which watches it hang for HUNG s past the
timeout). Ctrl-C mid-stream must end the run without the alarm too (the script's own signal handler).
A silence without the alarm is asyncio's timeout in main(), the same with the alarm or without: test_main.py
shows the command ending on it in-process, with setitimer taken away.

No tight time bound includes the start of the process: each is measured from what the test saw happen.
The one that includes it (a refused registry fails at once, not after --timeout) is generous: 30 s.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    WAIT,
    Run,
    assert_clean,
    closed_port,
    error_lines,
    final_line,
    needs_registry,
    read_until,
    run_script,
    start_script,
)
from server import delta, openai_server, silent_peer, text_events

UNICODE = ["Café ", "naïve ", "日本語 ", "🎉 ", "emoji"]
TIMEOUT = 2  # --timeout for a silence after a chunk: time enough for that chunk on a busy machine
NOTHING = 1  # --timeout for a peer that never sends a byte: there, no chunk can come late
LATE = 10  # how long after --timeout a run that waited may take to end, on a busy machine: a breaker
HUNG = 2  # how long after --timeout the strict xfail without the alarm waits, to see the run still hanging
FINAL = "\n\nFinal accumulated text: "


@pytest.fixture
def alarm(request: pytest.FixtureRequest) -> bool:
    """With the alarm (True), or as on a platform without signal.setitimer (False); set by parametrize."""
    if not request.param:
        request.getfixturevalue("no_alarm")
    return bool(request.param)


ALARMS = [pytest.param(True, id="alarm"), pytest.param(False, id="no-alarm")]


def assert_ok(result: Run, text: str) -> None:
    """Exit 0, nothing on stderr, and stdout with `text` then the final line."""
    assert (result.code, result.err) == (0, "")
    assert result.out == text + final_line(text)


def assert_failed(result: Run, kept: str, line: str) -> None:
    """Exit 1, exactly the `error: ` line `line` on stderr and nothing else, and stdout with `kept` then the
    final line."""
    assert result.code == 1, result.err
    assert error_lines(result.err) == [line]
    assert result.err == line + "\n"
    assert result.out == kept + final_line(kept)


@contextlib.contextmanager
def started(*args: str, home: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """start_script(), and the process killed at the end of the block, whatever happened."""
    process = start_script(*args, home=home, **env)
    try:
        yield process
    finally:
        process.kill()
        process.communicate()


def finish(process: subprocess.Popen[bytes], within: float) -> tuple[int, str, str]:
    """Read what is left of stdout and stderr until the process ends (at most `within` s from now); give
    back its exit code, that stdout and that stderr, which must be free of tracebacks and teardown noise."""
    out, err = process.communicate(timeout=within)
    assert_clean(err.decode())
    return process.returncode, out.decode(), err.decode()


# ---- a stream that arrives


def test_each_piece_of_the_answer_and_of_the_reasoning_is_shown_before_the_next_is_sent(
    isolated: Path,
) -> None:
    """Streaming is real, proven with no timing: the server sends its second event only once the test has
    read the first one's text on stdout and its reasoning on stderr. Left in a buffer, they would wait for
    the rest, and the test and the script for each other."""
    gate = threading.Event()
    events = [delta("Hello", reasoning_content="Let me think."), *text_events([" there", "!"])]
    with (
        openai_server(events=events, gate=gate) as server,
        started("--provider", server.url, home=isolated) as process,
    ):
        assert process.stdout is not None and process.stderr is not None
        try:
            shown = read_until(process.stdout, b"Hello")
            thought = read_until(process.stderr, b"Let me think.")
        finally:
            gate.set()
        code, out, err = finish(process, WAIT)
    assert (shown, thought) == (b"Hello", b"Let me think.")  # and nothing else yet: nothing else was sent
    assert (code, err) == (0, "\n")  # no error: the reasoning's line ends, once, and nothing more
    assert "Hello" + out == "Hello there!" + final_line("Hello there!")


def test_a_long_unicode_stream_arrives_exactly_once(isolated: Path) -> None:
    pieces = [f"{word}{i} " for i in range(100) for word in UNICODE]
    with openai_server(events=text_events(pieces)) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_ok(result, "".join(pieces))


def test_chunks_without_text_add_nothing(isolated: Path) -> None:
    events = [
        delta(None, role="assistant"),
        {**delta(None), "choices": []},
        {**delta(None), "choices": [{"index": 0, "delta": {"role": "assistant"}}]},  # no content key
        delta("Hel"),
        delta(None),
        delta(""),
        delta("lo"),
        text_events([])[-1],  # only a finish reason
    ]
    with openai_server(events=events) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_ok(result, "Hello")


def test_characters_the_output_cannot_encode_are_replaced(isolated: Path) -> None:
    with openai_server(events=text_events(UNICODE)) as server:
        result = run_script("--provider", server.url, home=isolated, PYTHONIOENCODING="ascii")
    assert_ok(result, "Caf? na?ve ??? ? emoji")


def test_a_stream_without_text_is_an_error(isolated: Path) -> None:
    events = [delta(None, role="assistant"), delta(""), delta(None)]  # then [DONE]
    with openai_server(events=events) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "", f"error: {server.url} failed: the answer is empty")


# ---- a server that refuses, or answers with an error


def test_connection_refused_names_the_url(isolated: Path) -> None:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}/v1"
        result = run_script("--provider", url, home=isolated)
    assert_failed(result, "", f"error: cannot connect to {url} (connection refused)")


REFUSALS = {  # a 401 is about the key; a 403 reads as any other HTTP error
    "401-json": (
        401,
        {"error": {"message": "Incorrect API key provided: sk-secret-123"}},
        "refused the request (Error 401: Incorrect API key provided: ***); check G4F_API_KEY",
    ),
    "403-json": (403, {"error": {"message": "Forbidden"}}, "failed: Error 403: Forbidden"),
    "403-plain-text": (403, "Forbidden here", "failed: Response 403: Forbidden here"),
}


@pytest.mark.parametrize(("status", "body", "said"), REFUSALS.values(), ids=REFUSALS)
def test_a_refused_request_is_one_error_line_that_never_shows_the_key(
    isolated: Path, status: int, body: object, said: str
) -> None:
    """A 401 says to check G4F_API_KEY; a 403 carries the server's message, as any HTTP error does. The key
    was sent, and is shown in neither."""
    with openai_server(status=status, error_body=body) as server:
        result = run_script("--provider", server.url, home=isolated, G4F_API_KEY="sk-secret-123")
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret-123"  # the key was sent
    assert_failed(result, "", f"error: {server.url} {said}")
    assert "sk-secret-123" not in result.out + result.err


def test_the_key_stays_hidden_in_debug_tracebacks_and_logs(isolated: Path) -> None:
    body = {"error": {"message": "Incorrect API key provided: sk-secret-123"}}
    with openai_server(status=401, error_body=body) as server:
        result = run_script(
            "--provider", server.url, "--debug", home=isolated, traceback=True, G4F_API_KEY="sk-secret-123"
        )
    assert result.code == 1, result.err
    assert len(error_lines(result.err)) == 1
    assert "Traceback" in result.err and "Incorrect API key provided: ***" in result.err
    assert "sk-secret-123" not in result.out + result.err


FAILURES = {
    "404-json": (
        404,
        {"error": {"message": "The model `gpt-4` does not exist", "code": "model_not_found"}},
        "Error 404: Error model_not_found: The model `gpt-4` does not exist",
    ),
    "500-json": (
        500,
        {"error": {"message": "The server had an error"}},
        "Error 500: The server had an error",
    ),
    "500-plain-text": (500, "upstream\nis down", "Response 500: upstream is down"),
}


@pytest.mark.parametrize(("status", "body", "said"), FAILURES.values(), ids=FAILURES)
def test_an_http_error_carries_the_servers_message_on_one_line(
    isolated: Path, status: int, body: object, said: str
) -> None:
    with openai_server(status=status, error_body=body) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "", f"error: {server.url} failed: {said}")


# ---- a stream that breaks


def test_a_line_that_is_not_json_ends_the_stream_and_keeps_what_came(isolated: Path) -> None:
    # g4f does not skip the bad line: it raises ValueError("Invalid JSON data: ...").
    events = [delta("Hel"), delta("lo"), "{this is not json", delta("never")]
    with openai_server(events=events) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert result.code == 1, result.err
    [line] = error_lines(result.err)
    assert line.startswith(f"error: {server.url} failed: Invalid JSON data") and "{this is not json" in line
    assert result.out == "Hello" + final_line("Hello")


def test_a_connection_cut_mid_stream_keeps_what_came(isolated: Path) -> None:
    with openai_server(events=[delta("Hel"), delta("lo")], fault="cut") as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "Hello", f"error: the connection to {server.url} broke off mid-stream")


# ---- a peer that says nothing


def test_silence_after_one_chunk_ends_within_the_timeout(isolated: Path) -> None:
    with (
        openai_server(events=[delta("Hello")], fault="hang") as server,
        started("--provider", server.url, "--timeout", str(TIMEOUT), home=isolated) as process,
    ):
        assert process.stdout is not None
        read_until(process.stdout, b"Hello")
        shown = time.monotonic()
        code, out, err = finish(process, TIMEOUT + LATE)
        waited = time.monotonic() - shown
    assert (code, err) == (1, f"error: no response from the provider within {TIMEOUT} s\n")
    assert out == final_line("Hello")
    assert waited < TIMEOUT + LATE  # no longer than the timeout (test_main.py proves it exact, in-process)


def wait_for_connection(process: subprocess.Popen[bytes], accepted: list[float]) -> None:
    """Wait until the silent peer has accepted the script's connection; fail if the script ends first."""
    deadline = time.monotonic() + WAIT  # a breaker against a run that never connects
    while not accepted:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the script never connected"
        time.sleep(0.01)


def test_a_base_url_that_accepts_and_never_answers_ends_within_the_timeout(isolated: Path) -> None:
    accepted: list[float] = []
    with (
        silent_peer(accepted=accepted) as address,
        started("--provider", f"http://{address}/v1", "--timeout", str(NOTHING), home=isolated) as process,
    ):
        wait_for_connection(process, accepted)
        code, out, err = finish(process, NOTHING + LATE)  # from the connection: the timeout, then no longer
    assert (code, err) == (1, f"error: no response from the provider within {NOTHING} s\n")
    assert out == final_line("")


@pytest.mark.parametrize(
    "alarm",
    [
        ALARMS[0],
        pytest.param(
            False,
            id="no-alarm",
            marks=pytest.mark.xfail(
                strict=True,
                raises=subprocess.TimeoutExpired,
                reason="without the alarm nothing bounds g4f's blocking download (the documented limit)",
            ),
        ),
    ],
    indirect=True,
)
@needs_registry
def test_the_default_providers_registry_download_hanging_ends_within_the_timeout(
    isolated: Path, alarm: bool
) -> None:
    """g4f downloads its registry with a blocking requests.get and no timeout, through HTTPS_PROXY: here a
    peer that accepts and never answers. Only the alarm ends that call, before main() has begun: nothing
    on stdout, one error line. Without the alarm, the run is seen still hanging HUNG s past the timeout."""
    accepted: list[float] = []
    with silent_peer(accepted=accepted) as address:
        proxy = f"http://{address}"
        env = {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy}
        with started("--timeout", str(NOTHING), home=isolated, **env) as process:
            wait_for_connection(process, accepted)
            code, out, err = finish(process, NOTHING + (LATE if alarm else HUNG))  # else TimeoutExpired
    assert (code, out) == (1, "")  # main() never ran: not even the final line
    assert err == f"error: no response from g4f's provider registry within {NOTHING} s\n"


@needs_registry
def test_the_default_provider_offline_fails_at_once_naming_the_registry(isolated: Path) -> None:
    """A refused registry download ends the run at once, not after --timeout (60 s here), before main() has
    begun: nothing on stdout, one error line that names the registry. The bound is generous: it includes the
    process's start."""
    with closed_port() as port:
        proxy = f"http://127.0.0.1:{port}"
        began = time.monotonic()
        result = run_script("--timeout", "60", home=isolated, HTTPS_PROXY=proxy, HTTP_PROXY=proxy)
        elapsed = time.monotonic() - began
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "error: cannot reach g4f's provider registry (https://g4f.dev/dist/js/providers.json); "
        "check the network and any proxy settings\n"
    )
    assert elapsed < 30, elapsed


# ---- signals, and readers that go away or stop reading


SIGNALS = [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="sigterm")]


def interrupted(sig: signal.Signals, home: Path) -> tuple[int, str, str]:
    """Start a stream of one chunk every 50 ms (20 s in all), send `sig` once some text has arrived; give
    back the exit code, stdout and stderr."""
    with (
        openai_server(events=text_events([f"w{i} " for i in range(400)]), delay=0.05) as server,
        started("--provider", server.url, home=home) as process,
    ):
        assert process.stdout is not None
        first = read_until(process.stdout, b"w0 w1 ")  # the stream is under way
        process.send_signal(sig)
        code, out, err = finish(process, 15)  # a breaker: the script ends in about 2 s at most
    return code, first.decode() + out, err


@pytest.mark.parametrize(
    ("sig", "alarm"),
    [
        pytest.param(signal.SIGINT, True, id="ctrl-c"),
        pytest.param(signal.SIGTERM, True, id="sigterm"),
        pytest.param(signal.SIGINT, False, id="ctrl-c-no-alarm"),
    ],
    indirect=["alarm"],
)
def test_a_signal_mid_stream_keeps_what_came_and_exits_with_the_shells_code(
    isolated: Path, sig: signal.Signals, alarm: bool
) -> None:
    code, out, err = interrupted(sig, isolated)
    assert (code, err) == (128 + sig, "")  # 130 for Ctrl-C, 143 for SIGTERM; no error line
    text = out.split(FINAL)[0]
    assert text.startswith("w0 w1 ") and "w399" not in text  # cut short, and what came is kept
    assert out == text + final_line(text)


LONG = text_events(["x" * 100] * 2000)  # sent one every 5 ms: 10 s, unless the script stops reading early


def test_a_reader_that_stops_after_5_bytes_ends_it_quietly_with_141(isolated: Path) -> None:
    """As `| head -c 5` does: the reader takes 5 bytes and closes the pipe. The script ends at its next
    write, long before the stream's end, with the code of a process that SIGPIPE ended, and says nothing."""
    with (
        openai_server(events=LONG, delay=0.005) as server,
        started("--provider", server.url, home=isolated) as process,
    ):
        assert process.stdout is not None and process.stderr is not None
        got = b""
        while len(got) < 5:
            piece = os.read(process.stdout.fileno(), 5 - len(got))
            assert piece, got
            got += piece
        process.stdout.close()
        code, _, err = finish(process, 30)  # a breaker; what matters is the server's count below
        sent = server.sent
    assert got == b"xxxxx"
    assert (code, err) == (141, "")  # no BrokenPipeError, no traceback, no error line
    assert sent < len(LONG)  # it ended before the stream did


CHUNK = 128  # bytes a piece: a divisor of the page size, so that the pieces fill the pipe to the last byte


@contextlib.contextmanager
def stalled(home: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The script streaming 20,000 pieces of CHUNK bytes into a stdout pipe that nobody reads, yielded once
    that pipe is full (the script is blocked writing to it, or is about to be)."""
    with (
        openai_server(events=text_events(["x" * CHUNK] * 20_000)) as server,
        started("--provider", server.url, home=home) as process,
    ):
        assert process.stdout is not None
        fd = process.stdout.fileno()
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        waiting = array.array("i", [0])
        deadline = time.monotonic() + WAIT  # a breaker against a script that never fills it
        while fcntl.ioctl(fd, termios.FIONREAD, waiting) == 0 and waiting[0] < capacity - CHUNK:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"only {waiting[0]} of {capacity} bytes came"
            time.sleep(0.01)
        yield process


@pytest.mark.parametrize("sig", SIGNALS)
def test_the_first_signal_ends_the_run_even_when_stdout_is_stalled(
    isolated: Path, sig: signal.Signals
) -> None:
    """Nobody reads stdout, so the final line can never be written: the signal still ends the run (the
    script gives its ending 2 s), with the shell's code and nothing on stderr."""
    with stalled(isolated) as process:
        process.send_signal(sig)
        code = process.wait(timeout=15)  # from the signal; without the deadline it would never end
        assert process.stderr is not None
        err = process.stderr.read().decode()
    assert (code, err) == (128 + sig, "")


def test_the_final_line_is_still_written_when_stdout_takes_it_after_ctrl_c(isolated: Path) -> None:
    """The same stall, and the reader comes back at once after Ctrl-C: the text shown and the final line
    reach it, whole."""
    with stalled(isolated) as process:
        process.send_signal(signal.SIGINT)
        code, out, err = finish(process, 15)  # reads stdout from now on, until the script ends
    text = out.split(FINAL)[0]
    assert (code, err) == (130, "")
    assert len(text) >= 64 * CHUNK and set(text) == {"x"}
    assert out == text + final_line(text)
