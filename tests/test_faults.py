"""The fault matrix: every failure a user meets, over real HTTP, real signals and real pipes.

Each test runs `python messages_stream.py` in a process of its own against a peer on 127.0.0.1 and
checks the exit code, stderr (one `error: ` line, no traceback or teardown noise) and stdout (what
arrived before the fault, then the final line). The row numbers are those of the fault-matrix issue.

The whole matrix runs twice: with the SIGALRM belt, and as on a platform without `signal.setitimer`
(Windows), where only the rows marked `needs_belt` may fail, by hanging: that is the documented limit.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import conftest
import pytest
from conftest import (
    assert_clean,
    clean_env,
    error_lines,
    final_line,
    read_until,
    run_script,
    script_shell,
    start_script,
)
from server import delta, openai_server, silent_peer, text_events

UNICODE = ["Café ", "naïve ", "日本語 ", "🎉 ", "emoji"]
TIMEOUT = 1  # --timeout for the rows that wait; they must end within TIMEOUT + 2 s


@pytest.fixture(autouse=True, params=["belt", "no-belt"])
def belt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each row with the SIGALRM belt, then as on a platform without setitimer, where there is none."""
    if request.param == "no-belt":
        monkeypatch.setattr(conftest, "BELT", False)
        if request.node.get_closest_marker("needs_belt"):
            request.applymarker(
                pytest.mark.xfail(
                    strict=True,
                    raises=subprocess.TimeoutExpired,
                    reason="without SIGALRM nothing bounds g4f's blocking look-ups (the documented limit)",
                )
            )
    return str(request.param)


def assert_ok(result: subprocess.CompletedProcess[str], text: str) -> None:
    """Exit 0, nothing on stderr, and stdout with `text` then the final line."""
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert result.stderr == ""
    assert result.stdout == text + final_line(text)


def assert_failed(result: subprocess.CompletedProcess[str], kept: str, *said: str) -> str:
    """Exit 1 with one `error: ` line that says each of `said`, and stdout with `kept` then the final line."""
    assert result.returncode == 1, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for words in said:
        assert words in lines[0]
    assert result.stdout == kept + final_line(kept)
    return lines[0]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (the OS just handed it out and it was closed)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return int(listener.getsockname()[1])


def first_then_rest(
    home: Path, wanted: bytes, stderr: bool = False, **reply: Any
) -> tuple[bytes, bytes, bytes, int]:
    """Run the script against a server that sends only its first event until the test has read `wanted`
    from the script's stdout (or stderr): give back what was read first, the rest of stdout and of stderr,
    and the exit code. Unflushed, `wanted` would wait in the script's buffer, and the two for each other."""
    gate = threading.Event()
    with openai_server(gate=gate, **reply) as server:
        process = start_script("--provider", server.url, home=home)
        assert process.stdout is not None and process.stderr is not None
        try:
            first = read_until(process.stderr if stderr else process.stdout, wanted)
        finally:
            gate.set()
            out, err = process.communicate(timeout=30)
    assert_clean(err.decode())
    return first, out, err, process.returncode


def test_00_each_piece_is_shown_before_the_next_is_sent(isolated: Path) -> None:
    # Streaming is real, and proven with no timing: see first_then_rest().
    first, out, err, code = first_then_rest(isolated, b"Hello")
    assert first == b"Hello"  # and nothing else yet, the server had sent nothing else
    assert (code, err) == (0, b"")
    assert (first + out).decode() == "Hello there!" + final_line("Hello there!")


def test_00b_reasoning_is_shown_on_stderr_before_the_next_piece_is_sent(isolated: Path) -> None:
    # The same for a thinking model's reasoning: it must not wait in stderr's buffer for a newline.
    events = [delta(None, reasoning_content="Let me think."), *text_events(["Hi"])]
    first, out, _, code = first_then_rest(isolated, b"Let me think.", stderr=True, events=events)
    assert (code, first) == (0, b"Let me think.")  # and nothing else yet
    assert out.decode() == "Hi" + final_line("Hi")


def test_01_a_long_unicode_stream_arrives_exactly_once(isolated: Path) -> None:
    pieces = [f"{word}{i} " for i in range(100) for word in UNICODE]
    with openai_server(events=text_events(pieces)) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_ok(result, "".join(pieces))


def test_01b_a_steady_stream_longer_than_the_timeout_is_never_cut(isolated: Path) -> None:
    pieces = [f"p{i} " for i in range(6)]
    with openai_server(events=text_events(pieces), delay=0.25) as server:  # 1.5 s in all, against --timeout 1
        result = run_script("--provider", server.url, "--timeout", "1", home=isolated)
    assert_ok(result, "".join(pieces))


def test_02_chunks_without_text_add_nothing(isolated: Path) -> None:
    events = [
        delta(None, role="assistant"),
        {"id": "x", "object": "chat.completion.chunk", "choices": []},
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"role": "assistant"}}],
        },
        delta("Hel"),
        delta(None),
        delta(""),
        delta("lo"),
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
    ]
    with openai_server(events=events) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_ok(result, "Hello")


def test_03_connection_refused_names_the_url(isolated: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_script("--provider", url, home=isolated)
    line = assert_failed(result, "", url, "connection refused")
    assert line == f"error: cannot connect to {url} (connection refused)"


def test_04_http_401_says_to_check_the_key_and_never_shows_it(isolated: Path) -> None:
    body = {
        "error": {"message": "Incorrect API key provided: sk-secret-123", "type": "invalid_request_error"}
    }
    with openai_server(status=401, error_body=body) as server:
        result = run_script("--provider", server.url, home=isolated, G4F_API_KEY="sk-secret-123")
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret-123"  # the key was sent
    assert_failed(result, "", "check G4F_API_KEY", "Incorrect API key provided")
    assert "sk-secret-123" not in result.stdout + result.stderr


def test_04c_the_key_stays_hidden_in_debug_tracebacks_and_logs(isolated: Path) -> None:
    body = {"error": {"message": "Incorrect API key provided: sk-secret-123"}}
    with openai_server(status=401, error_body=body) as server:
        result = run_script("--provider", server.url, "--debug", home=isolated, G4F_API_KEY="sk-secret-123")
    assert result.returncode == 1
    assert_clean(result.stderr, traceback=True)
    assert "Traceback" in result.stderr and "Incorrect API key provided: ***" in result.stderr
    assert "sk-secret-123" not in result.stdout + result.stderr


def test_04b_http_403_also_says_to_check_the_key(isolated: Path) -> None:
    with openai_server(status=403, error_body={"error": {"message": "Forbidden"}}) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "", "check G4F_API_KEY", "Forbidden")


def test_04d_a_403_with_a_plain_text_body_also_says_to_check_the_key(isolated: Path) -> None:
    with openai_server(status=403, error_body="Forbidden here") as server:  # g4f: "Response 403: ..."
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "", "check G4F_API_KEY", "Forbidden here")


def test_05_http_404_carries_the_servers_message(isolated: Path) -> None:
    body = {"error": {"message": "The model `gpt-4` does not exist", "code": "model_not_found"}}
    with openai_server(status=404, error_body=body) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "", server.url, "The model `gpt-4` does not exist")


def test_06_http_500_carries_the_servers_message(isolated: Path) -> None:
    with openai_server(status=500, error_body={"error": {"message": "The server had an error"}}) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "", server.url, "Error 500", "The server had an error")


def test_06b_a_plain_text_error_body_is_carried_on_one_line(isolated: Path) -> None:
    with openai_server(status=500, error_body="upstream\nis down") as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "", "500", "upstream is down")


def test_07_a_line_that_is_not_json_ends_the_stream_and_keeps_what_came(isolated: Path) -> None:
    # g4f does not skip the bad line: it raises ValueError("Invalid JSON data: ...").
    events = [delta("Hel"), delta("lo"), "{this is not json", delta("never")]
    with openai_server(events=events) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert_failed(result, "Hello", "Invalid JSON data")


def test_08_a_connection_cut_mid_stream_keeps_what_came(isolated: Path) -> None:
    with openai_server(events=[delta("Hel"), delta("lo")], fault="cut") as server:
        result = run_script("--provider", server.url, home=isolated)
    line = assert_failed(result, "Hello", "broke off")
    assert line == f"error: the connection to {server.url} broke off mid-stream"


def test_09_silence_after_one_chunk_ends_within_the_timeout(isolated: Path) -> None:
    with openai_server(events=[delta("Hello")], fault="hang") as server:
        started = time.monotonic()
        result = run_script("--provider", server.url, "--timeout", str(TIMEOUT), home=isolated)
        elapsed = time.monotonic() - started
    assert_failed(result, "Hello", f"no response from the provider within {TIMEOUT} s")
    assert TIMEOUT <= elapsed < TIMEOUT + 2


def test_10_a_base_url_that_accepts_and_never_answers_ends_within_the_timeout(isolated: Path) -> None:
    with silent_peer() as address:
        started = time.monotonic()
        result = run_script("--provider", f"http://{address}/v1", "--timeout", str(TIMEOUT), home=isolated)
        elapsed = time.monotonic() - started
    assert_failed(result, "", f"no response from the provider within {TIMEOUT} s")
    assert elapsed < TIMEOUT + 2


@pytest.mark.needs_belt  # a blocking requests.get with no timeout: only the SIGALRM belt can end it
def test_11_the_default_providers_registry_download_hanging_ends_within_the_timeout(isolated: Path) -> None:
    with silent_peer() as address:
        proxy = f"http://{address}"
        started = time.monotonic()
        result = run_script(
            "--timeout", str(TIMEOUT), home=isolated, timeout=TIMEOUT + 3, HTTPS_PROXY=proxy, HTTP_PROXY=proxy
        )
        elapsed = time.monotonic() - started
    assert_failed(result, "", f"no response from g4f's provider registry within {TIMEOUT} s")
    assert elapsed < TIMEOUT + 2


def test_12_the_default_provider_offline_fails_at_once_naming_the_registry(isolated: Path) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"
    result = run_script(home=isolated, HTTPS_PROXY=proxy, HTTP_PROXY=proxy)
    assert_failed(result, "", "cannot reach g4f's provider registry")


def slow_stream(sig: signal.Signals, home: Path) -> tuple[int, str, str]:
    """Start a stream of one chunk every 50 ms, send `sig` once some text has arrived; return what came."""
    with openai_server(events=text_events([f"w{i} " for i in range(400)]), delay=0.05) as server:
        process = start_script("--provider", server.url, home=home)
        assert process.stdout is not None
        try:
            first = read_until(process.stdout, b"w0 w1 ")  # the stream is under way
            process.send_signal(sig)
            out, err = process.communicate(timeout=10)
        finally:
            process.kill()
            process.communicate()
    return process.returncode, (first + out).decode(), err.decode()


def test_13_ctrl_c_keeps_what_came_and_exits_130(isolated: Path) -> None:
    code, out, err = slow_stream(signal.SIGINT, isolated)
    assert code == 130
    assert error_lines(err) == [] and err == ""
    text = out.split("\n\nFinal accumulated text: ")[0]
    assert text.startswith("w0 w1 ") and "w399" not in text  # cut short, and what came is kept
    assert out == text + final_line(text)


LONG = text_events(["x" * 100] * 2000)  # sent one every 5 ms: 10 s, unless the script stops early


def test_14_a_reader_that_stops_after_5_bytes_ends_it_quietly(isolated: Path) -> None:
    with openai_server(events=LONG, delay=0.005) as server:
        started = time.monotonic()
        pipeline = subprocess.run(
            script_shell("--provider", server.url) + " | head -c 5",
            shell=True,
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(isolated),
        )
        elapsed = time.monotonic() - started
    assert pipeline.stdout == "xxxxx"
    assert_clean(pipeline.stderr)
    assert pipeline.stderr == ""  # no BrokenPipeError, no traceback, no error line
    assert elapsed < 5  # it stopped at the next write, long before the stream's end


def test_14b_the_exit_code_after_the_reader_has_gone_is_141(isolated: Path) -> None:
    with openai_server(events=LONG, delay=0.005) as server:
        process = start_script("--provider", server.url, home=isolated)
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(5) == b"xxxxx"
        process.stdout.close()
        try:
            assert process.wait(timeout=5) == 141
            err = process.stderr.read().decode()
            assert_clean(err)
            assert err == ""
        finally:
            process.kill()
            process.stderr.close()


def test_15_characters_the_terminal_cannot_encode_are_replaced(isolated: Path) -> None:
    with openai_server(events=text_events(UNICODE)) as server:
        result = run_script("--provider", server.url, home=isolated, PYTHONIOENCODING="ascii")
    assert_ok(result, "Caf? na?ve ??? ? emoji")


def test_16_sigterm_keeps_what_came_and_exits_143(isolated: Path) -> None:
    code, out, err = slow_stream(signal.SIGTERM, isolated)
    assert code == 143
    assert error_lines(err) == [] and err == ""
    text = out.split("\n\nFinal accumulated text: ")[0]
    assert text.startswith("w0 w1 ") and "w399" not in text
    assert out == text + final_line(text)


@pytest.mark.parametrize(
    "events", [[], [delta(None, role="assistant"), delta(""), delta(None)]], ids=["only-DONE", "no-content"]
)
def test_17_a_stream_without_text_is_an_error(isolated: Path, events: list[object]) -> None:
    with openai_server(events=events) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert assert_failed(result, "") == "error: the provider returned an empty response"
