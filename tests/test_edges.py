"""Hard edges (issue 10): bad input, output that cannot be written, odd URLs, secrets and the terminal.

Each test runs the script in a process of its own, as a user would. The script under test is
$MESSAGES_STREAM_FILE when set (to run these tests once against an older copy), else the checkout's.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import UNDER_TEST, assert_clean, clean_env, error_lines, final_line
from server import delta, openai_server, text_events

WAIT = 90  # seconds a run may take at most: the machine is shared, and nothing here waits on purpose


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(
    *args: str | bytes,
    home: Path,
    input: bytes | None = None,
    stdout: Any = subprocess.PIPE,
    traceback: bool = False,
    **env: str,
) -> Run:
    """Run the script with `args` (bytes pass undecoded into argv) and `input` on stdin.

    Its stderr must be free of teardown noise, and of tracebacks unless `traceback` (for --debug).
    """
    result = subprocess.run(
        [sys.executable, str(UNDER_TEST), *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=clean_env(home, **env),
        timeout=WAIT,
    )
    assert_clean(result.stderr.decode(), traceback)
    return Run(result.returncode, (result.stdout or b"").decode(), result.stderr.decode())


def run_in_shell(*args: str, redirect: str, home: Path) -> Run:
    """Run the script through the shell with `redirect` (`>&-` closes stdout, `<&-` stdin)."""
    command = f"{shlex.join([sys.executable, str(UNDER_TEST), *args])} {redirect}"
    result = subprocess.run(command, shell=True, capture_output=True, env=clean_env(home), timeout=WAIT)
    assert_clean(result.stderr.decode())
    return Run(result.returncode, result.stdout.decode(), result.stderr.decode())


def on_a_terminal(*args: str, fd: int, home: Path, **env: str) -> tuple[int, bytes, str]:
    """Run the script with `fd` (1 or 2) on a pseudo-terminal and the other one on a pipe.

    Give back the exit code, the bytes the terminal received, and the text of the pipe. Whichever of
    them is stderr must be free of tracebacks and teardown noise.
    """
    master, slave = pty.openpty()
    streams = {"stdout": slave, "stderr": subprocess.PIPE}
    if fd == 2:
        streams = {"stdout": subprocess.PIPE, "stderr": slave}
    process = subprocess.Popen(
        [sys.executable, str(UNDER_TEST), *args],
        stdin=subprocess.DEVNULL,
        env=clean_env(home, **env),
        **streams,  # type: ignore[call-overload]
    )
    os.close(slave)
    received = b""
    try:
        deadline = time.monotonic() + WAIT  # a bound against hanging, not an assertion
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the script has closed its end of the terminal
                break
            if not data:
                break
            received += data
        pipe = process.stdout if fd == 2 else process.stderr
        assert pipe is not None
        other = pipe.read().decode()
        code = process.wait(timeout=WAIT)
    finally:
        process.kill()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        os.close(master)
    assert_clean(received.decode(errors="replace") if fd == 2 else other)
    return code, received, other


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return int(listener.getsockname()[1])


@contextlib.contextmanager
def html_page_server() -> Iterator[str]:
    """A web page on 127.0.0.1 (a captive portal, a web UI): every GET and POST gets 200 and HTML."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><html><body><h1>Sign in to the Wi-Fi</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def assert_usage_error(result: Run, message: str) -> None:
    """Exit 2, `message` on stderr, nothing on stdout."""
    assert result.code == 2, result.err
    assert message in result.err
    assert result.out == ""


# ---- input

BAD_PROMPTS = {
    "stdin-strict": (["-"], b"caf\xe9\n", {"PYTHONIOENCODING": "utf-8"}, "the prompt is not valid UTF-8"),
    "stdin-C.UTF-8": (["-"], b"caf\xe9\n", {"LC_ALL": "C.UTF-8"}, "the prompt is not valid UTF-8"),
    "argument": ([b"caf\xe9"], None, {}, "the prompt is not valid UTF-8"),
    "system": (["-s", b"caf\xe9", "hi"], None, {}, "not valid UTF-8"),
}


@pytest.mark.parametrize(("args", "stdin", "env", "message"), BAD_PROMPTS.values(), ids=BAD_PROMPTS)
def test_an_invalid_utf8_prompt_is_a_usage_error_and_nothing_is_sent(
    isolated: Path, args: list[str | bytes], stdin: bytes | None, env: dict[str, str], message: str
) -> None:
    with openai_server() as server:
        result = run(*args, "--provider", server.url, home=isolated, input=stdin, **env)
    assert_usage_error(result, message)
    assert server.requests == []


def test_a_timeout_beyond_a_day_is_a_usage_error(isolated: Path) -> None:
    with openai_server() as server:
        result = run("--timeout", "1e10", "--provider", server.url, home=isolated)
    assert_usage_error(result, "--timeout must be a positive number of seconds, at most 86400")
    assert server.requests == []


def test_an_empty_model_option_is_a_usage_error(isolated: Path) -> None:
    with openai_server() as server:
        result = run("--model", "", "--provider", server.url, home=isolated)
    assert_usage_error(result, "--model is empty")
    assert server.requests == []


def test_an_empty_g4f_model_variable_means_gpt4(isolated: Path) -> None:
    with openai_server() as server:
        result = run("--provider", server.url, home=isolated, G4F_MODEL="")
    assert result.code == 0, result.err
    assert server.requests[0]["json"]["model"] == "gpt-4"


def test_a_closed_stdin_is_an_empty_prompt(isolated: Path) -> None:
    with openai_server() as server:
        result = run_in_shell("-", "--provider", server.url, redirect="<&-", home=isolated)
    assert_usage_error(result, "the prompt is empty")
    assert server.requests == []


# ---- output that cannot be written


def test_a_full_disk_on_stdout_is_one_error_line(isolated: Path) -> None:
    with openai_server() as server, open("/dev/full", "wb") as full:
        result = run("--provider", server.url, home=isolated, stdout=full)
    assert result.code == 1, result.err
    assert error_lines(result.err) == ["error: cannot write to stdout (No space left on device)"]
    assert result.err.count("\n") == 1, result.err


def test_a_closed_stdout_is_one_error_line_and_nothing_is_sent(isolated: Path) -> None:
    with openai_server() as server:
        result = run_in_shell("--provider", server.url, redirect=">&-", home=isolated)
    assert result.code == 2, result.err
    assert "error: stdout is closed, so the answer has nowhere to go" in result.err
    assert [line for line in result.err.splitlines() if "error:" in line] == result.err.splitlines()[-1:]
    assert server.requests == []


# ---- a peer that is not an OpenAI-compatible API


def test_a_200_with_an_html_page_is_named_as_not_an_openai_api(isolated: Path) -> None:
    with html_page_server() as url:
        result = run("--provider", url, home=isolated)
    assert result.code == 1, result.err
    assert error_lines(result.err) == [
        f"error: {url} did not answer as an OpenAI-compatible API (an HTML page?); check the URL"
    ]
    assert result.out == final_line("")


# ---- secrets


def test_the_userinfo_of_a_url_is_never_shown(isolated: Path) -> None:
    port = free_port()
    result = run("--provider", f"http://user:secretpw@127.0.0.1:{port}/v1", home=isolated)
    assert result.code == 1, result.err
    shown = f"http://***@127.0.0.1:{port}/v1"
    assert error_lines(result.err) == [f"error: cannot connect to {shown} (connection refused)"]
    assert "secretpw" not in result.out + result.err
    assert "user" not in result.out + result.err


def test_the_userinfo_of_a_url_is_not_shown_by_debug_either(isolated: Path) -> None:
    url = f"http://user:secretpw@127.0.0.1:{free_port()}/v1"
    result = run("--provider", url, "--debug", home=isolated, traceback=True)
    assert result.code == 1, result.err
    assert "Traceback" in result.err  # --debug did show its details
    assert "secretpw" not in result.out + result.err
    assert "user:" not in result.out + result.err


def test_a_name_that_does_not_resolve_is_said_in_the_resolvers_words(isolated: Path) -> None:
    # tests/standin_site makes every name but loopback fail at once, as a machine without DNS does.
    site = str(Path(__file__).resolve().parent / "standin_site")
    result = run("--provider", "http://nowhere.example/v1", home=isolated, PYTHONPATH=site)
    assert result.code == 1, result.err
    assert error_lines(result.err) == [  # a resolver's errno is negative: no os.strerror() for it
        "error: cannot connect to http://nowhere.example/v1 (nowhere.example: offline in this test "
        "(tests/standin_site))"
    ]


def test_the_userinfo_of_a_url_is_not_shown_by_verbose_either(isolated: Path) -> None:
    with openai_server() as server:  # g4f names a custom provider after the URL's host, userinfo and all
        url = server.url.replace("http://", "http://user:secretpw@")
        result = run("--provider", url, "-v", home=isolated)
    assert result.code == 0, result.err
    assert result.err.startswith(f"{server.url.removeprefix('http://')} answered with test-model")
    assert "secretpw" not in (result.out + result.err).lower()


@pytest.mark.parametrize(
    ("key", "shown"), [("1", "1"), ("ollama", "ollama"), ("1234567", "1234567"), ("12345678", "***")]
)
def test_only_a_key_of_8_characters_or_more_is_masked(isolated: Path, key: str, shown: str) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {key}"}}
    with openai_server(status=401, error_body=body) as server:
        result = run("--provider", server.url, home=isolated, G4F_API_KEY=key)
    assert result.code == 1, result.err
    assert error_lines(result.err) == [
        f"error: {server.url} refused the request (Error 401: Incorrect API key provided: {shown}); "
        "check G4F_API_KEY"
    ]


# ---- URLs


def test_a_base_url_with_its_scheme_in_capitals_streams(isolated: Path) -> None:
    with openai_server() as server:
        result = run("--provider", server.url.replace("http://", "HTTP://"), home=isolated)
    assert result.code == 0, result.err
    assert result.out == "Hello there!" + final_line("Hello there!")


def test_a_host_and_port_without_a_scheme_gets_a_hint(isolated: Path) -> None:
    result = run("--provider", "localhost:11434", home=isolated)
    assert_usage_error(result, "--provider localhost:11434: did you mean http://localhost:11434/v1?")


def test_a_base_url_with_a_query_string_is_refused(isolated: Path) -> None:
    with openai_server() as server:
        result = run("--provider", f"{server.url}?x=1", home=isolated)
    assert_usage_error(result, "--provider: a base URL cannot have a query string")
    assert server.requests == []


# ---- the terminal

HOSTILE = [
    "Hi\tthere ",
    "\x1b]52;c;aGk=\x07",  # OSC 52: write "hi" to the clipboard
    "\x1b]0;pwned\x07",  # a new window title
    "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07",  # an OSC 8 link with a harmless-looking label
    " \x1b[31mred\x1b[0m",  # a CSI colour
    " \r\x9b2J\x7f",  # a carriage return, a C1 CSI, DEL
    "\nbye",
]


def test_escape_sequences_from_the_provider_never_reach_a_terminal(isolated: Path) -> None:
    with openai_server(events=text_events(HOSTILE)) as server:
        code, shown, err = on_a_terminal("--provider", server.url, fd=1, home=isolated)
    assert code == 0, err
    assert b"\x1b" not in shown and b"\x07" not in shown and b"\x7f" not in shown
    assert "\x9b" not in shown.decode()
    assert b"\r" not in shown.replace(b"\r\n", b"\n")  # the terminal itself turns \n into \r\n
    assert b"Hi\tthere " in shown and b"\r\nbye" in shown
    assert b"^[]52;c;aGk=^G" in shown  # shown visibly, in caret form


def test_escape_sequences_in_reasoning_never_reach_a_terminal_on_stderr(isolated: Path) -> None:
    events = [delta(None, reasoning="think \x1b]52;c;aGk=\x07 more"), *text_events(["ok"])]
    with openai_server(events=events) as server:
        code, shown, _ = on_a_terminal("--provider", server.url, fd=2, home=isolated)
    assert code == 0, shown
    assert b"think ^[]52;c;aGk=^G more" in shown
    assert b"\x1b" not in shown.replace(b"\x1b[2m", b"").replace(b"\x1b[0m", b"")
    assert b"\x07" not in shown


def test_the_same_stream_to_a_pipe_passes_byte_for_byte(isolated: Path) -> None:
    with openai_server(events=text_events(HOSTILE)) as server:
        result = run("--provider", server.url, home=isolated)
    assert result.code == 0, result.err
    assert result.out == "".join(HOSTILE) + final_line("".join(HOSTILE))
