"""Hard edges: bad input, output that cannot be written, odd URLs, secrets, and the terminal.

Each test here needs a process of its own (stdin and stdout as the shell leaves them, a terminal, a
resolver), so each runs the script as a user would, through conftest's runners. The usage errors that
need no process (an empty --model, a --timeout beyond a day, a host:port, a query string) are checked
in-process by test_cli.py.

The terminal promise: whatever a provider chooses (the answer, the reasoning, an error message, the
name of its model) reaches a terminal with every control character shown visibly (ESC as ^[), never
raw; on stderr only the script's own dim codes may appear, and none at all with NO_COLOR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Run, closed_port, error_lines, final_line, on_a_terminal, run_script, since
from server import delta, openai_server, text_events

DIM, RESET = b"\x1b[2m", b"\x1b[0m"


def assert_usage_error(result: Run, message: str) -> None:
    """Exit 2, argparse's usage and then its one error line, ending in `message`; nothing on stdout."""
    assert result.code == 2, result.err
    assert result.err.startswith("usage: "), result.err
    assert [line for line in result.err.splitlines() if "error: " in line] == [result.err.splitlines()[-1]]
    assert result.err.endswith(f": error: {message}\n"), result.err
    assert result.out == ""


def raw_controls(shown: bytes) -> list[str]:
    """The control characters that reached a terminal raw: all but tab and newline (the terminal itself
    turns each newline into \\r\\n), the C1 ones included."""
    text = shown.replace(b"\r\n", b"\n").decode(errors="replace")
    return [c for c in text if (ord(c) < 32 and c not in "\t\n") or 127 <= ord(c) < 160]


def undimmed(shown: bytes) -> bytes:
    """What a terminal received on stderr, without the script's dim codes (checked to be there)."""
    assert shown.startswith(DIM) and shown.endswith(RESET), shown
    return shown.replace(DIM, b"").replace(RESET, b"")


# ---- input


def test_an_invalid_utf8_prompt_in_argv_is_a_usage_error_and_nothing_is_sent(isolated: Path) -> None:
    """Bytes that are not UTF-8, passed undecoded into argv as a shell does (test_cli.py checks stdin)."""
    with openai_server() as server:
        result = run_script(b"caf\xe9", "--provider", server.url, home=isolated)
    assert_usage_error(result, "the prompt is not valid UTF-8")
    assert server.requests == []


def test_a_closed_stdin_is_an_empty_prompt_and_nothing_is_sent(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("-", "--provider", server.url, home=isolated, shell="<&-")
    assert_usage_error(result, "the prompt is empty")
    assert server.requests == []


# ---- output that cannot be written


def test_a_full_disk_on_stdout_is_one_error_line(isolated: Path) -> None:
    with openai_server() as server, open("/dev/full", "wb") as full:
        result = run_script("--provider", server.url, home=isolated, stdout=full)
    assert result.code == 1, result.err
    assert result.err == "error: stdout failed: [Errno 28] No space left on device\n"


def test_a_closed_stdout_is_one_error_line_and_nothing_is_sent(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, home=isolated, shell=">&-")
    assert result.code == 2, result.err
    assert result.err == "error: stdout is closed, so the answer has nowhere to go\n"  # no usage line
    assert server.requests == []


# ---- a peer that is not an OpenAI-compatible API


def test_a_200_with_an_html_page_is_named_as_not_an_openai_api(isolated: Path) -> None:
    page = "<!doctype html><html><body><h1>Sign in to the Wi-Fi</h1></body></html>"
    with openai_server(page=page) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert result.code == 1, result.err
    assert result.err == (
        f"error: {server.url} did not answer as an OpenAI-compatible API (an HTML page?); check the URL\n"
    )
    assert result.out == final_line("")


# ---- secrets


def test_the_userinfo_of_a_url_is_never_shown_not_even_by_debug(isolated: Path) -> None:
    with closed_port() as port:
        url = f"http://user:secretpw@127.0.0.1:{port}/v1"
        result = run_script("--provider", url, "--debug", home=isolated, traceback=True)
    assert result.code == 1, result.err
    assert "Traceback" in result.err  # --debug did show its details
    assert error_lines(result.err) == [
        f"error: cannot connect to http://***@127.0.0.1:{port}/v1 (connection refused)"
    ]
    assert result.err.splitlines()[-1] == error_lines(result.err)[0]
    assert "secretpw" not in result.out + result.err
    assert "user:" not in result.out + result.err


def test_the_userinfo_of_a_url_is_not_shown_by_verbose_either(isolated: Path) -> None:
    with openai_server() as server:  # g4f names a custom provider after its URL, userinfo and all
        url = server.url.replace("http://", "http://user:secretpw@")
        result = run_script("--provider", url, "-v", home=isolated)
    assert result.code == 0, result.err
    assert result.err == f"{server.url.removeprefix('http://')} answered with test-model\n"
    assert "secretpw" not in result.out + result.err


@pytest.mark.parametrize(("key", "shown"), [("1234567", "1234567"), ("12345678", "***")])
def test_only_a_key_of_8_characters_or_more_is_masked(isolated: Path, key: str, shown: str) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {key}"}}
    with openai_server(status=401, error_body=body) as server:
        result = run_script("--provider", server.url, home=isolated, G4F_API_KEY=key)
    assert result.code == 1, result.err
    assert result.err == (
        f"error: {server.url} refused the request (Error 401: Incorrect API key provided: {shown}); "
        "check G4F_API_KEY\n"
    )


def test_a_name_that_does_not_resolve_is_said_in_the_resolvers_words(isolated: Path) -> None:
    # tests/standin_site makes every name but loopback fail at once, as a machine without DNS does.
    site = str(Path(__file__).resolve().parent / "standin_site")
    result = run_script("--provider", "http://nowhere.example/v1", home=isolated, PYTHONPATH=site)
    assert result.code == 1, result.err
    assert result.err == (  # a resolver's errno is negative: no os.strerror() for it
        "error: cannot connect to http://nowhere.example/v1 (nowhere.example: offline in this test "
        "(tests/standin_site))\n"
    )


# ---- URLs


def test_a_base_url_with_its_scheme_in_capitals_streams(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url.replace("http://", "HTTP://"), home=isolated)
    assert (result.code, result.err) == (0, "")
    assert result.out == "Hello there!" + final_line("Hello there!")


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
# An error message a server chooses: a clipboard write (OSC 52), a colour, a backspace.
ERROR_BODY = {"error": {"message": "safe-start \x1b]52;c;SGVsbG8=\x07 \x1b[31mred\x08 end"}}
ERROR_SHOWN = "Error 500: safe-start ^[]52;c;SGVsbG8=^G ^[[31mred^H end"
# A model name a server chooses, as every chunk of its stream reports it.
MODEL = "edges \x1b]52;c;SGVsbG8=\x07-model \x1b[2J"


def test_escape_sequences_in_the_answer_never_reach_a_terminal(isolated: Path) -> None:
    with openai_server(events=text_events(HOSTILE)) as server:
        code, shown, err = on_a_terminal("--provider", server.url, fd=1, home=isolated)
    assert (code, err) == (0, "")
    assert raw_controls(shown) == []
    assert b"Hi\tthere " in shown and b"\r\nbye" in shown
    assert b"^[]52;c;aGk=^G" in shown and b" ^M\\x9b2J^?" in shown  # shown visibly, in caret form


def test_escape_sequences_in_the_reasoning_never_reach_a_terminal(isolated: Path) -> None:
    events = [delta(None, reasoning="think \x1b]52;c;aGk=\x07 more"), *text_events(["ok"])]
    with openai_server(events=events) as server:
        code, shown, out = on_a_terminal("--provider", server.url, fd=2, home=isolated)
    assert (code, out) == (0, "ok" + final_line("ok"))
    assert raw_controls(undimmed(shown)) == []
    assert undimmed(shown) == b"think ^[]52;c;aGk=^G more\r\n"  # one newline as the answer begins: no more


def test_the_same_stream_to_a_pipe_passes_byte_for_byte(isolated: Path) -> None:
    with openai_server(events=text_events(HOSTILE)) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert (result.code, result.err) == (0, "")
    assert result.out == "".join(HOSTILE) + final_line("".join(HOSTILE))


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {}], ids=["NO_COLOR", "dimmed"])
def test_a_servers_error_message_reaches_a_terminal_in_caret_form(
    isolated: Path, env: dict[str, str]
) -> None:
    with openai_server(status=500, error_body=ERROR_BODY) as server:
        code, shown, out = on_a_terminal("--provider", server.url, fd=2, home=isolated, **env)
    assert (code, out) == (1, final_line(""))
    line = f"error: {server.url} failed: {ERROR_SHOWN}\r\n".encode()
    assert (undimmed(shown) if not env else shown) == line  # with NO_COLOR, no escape at all


def test_a_model_name_in_verbose_reaches_a_terminal_in_caret_form(isolated: Path) -> None:
    events: list[dict[str, Any]] = [{**event, "model": MODEL} for event in text_events(["ok"])]
    with openai_server(events=events) as server:
        code, shown, out = on_a_terminal("--provider", server.url, "-v", fd=2, home=isolated, NO_COLOR="1")
    assert (code, out) == (0, "ok" + final_line("ok"))
    assert shown == f"{server.url} answered with edges ^[]52;c;SGVsbG8=^G-model ^[[2J\r\n".encode()


@since(8, 3, 0, needs="the line g4f's debug log gives each model it uses")
def test_debug_output_reaches_a_terminal_filtered_and_ends_with_the_error_line(isolated: Path) -> None:
    # The model is named in a g4f log line: with an escape in it, that line shows its filter too.
    model = "gpt-4\x1b]0;title\x07"
    with openai_server(status=500, error_body=ERROR_BODY) as server:
        code, shown, out = on_a_terminal(
            "--provider", server.url, "--model", model, "--debug", fd=2, home=isolated, NO_COLOR="1"
        )
    assert (code, out) == (1, final_line(""))
    assert raw_controls(shown) == []  # NO_COLOR: not even the dim codes
    lines = shown.decode().splitlines()
    assert f"{server.url}: Using model 'gpt-4^[]0;title^G'" in lines  # g4f's log line
    assert "Traceback (most recent call last):" in lines
    assert f"g4f.errors.ResponseError: {ERROR_SHOWN}" in lines
    assert lines[-1] == f"error: {server.url} failed: {ERROR_SHOWN}"
