"""The command line: its options, its environment variables and its usage errors.

What parse_args() decides alone (usage errors, defaults, the environment) is checked in-process, through
messages_stream.parse_args. What needs the whole command (the help text, what reaches a server, stdin,
g4f's own errors and logs) runs as a user runs it, `python messages_stream.py ...`, in a process of its
own; the runner rejects tracebacks and teardown noise on stderr.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import SCRIPT, WAIT, clean_env, closed_port, error_lines, final_line, run_script, since
from server import openai_server

import messages_stream
from messages_stream import LIST, parse_args

# ---- usage errors, in-process

BAD_TIMEOUT = "--timeout must be a positive number of seconds, at most 86400"

USAGE_ERRORS = {
    "unknown-option": (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    "timeout-0": (["--timeout", "0"], BAD_TIMEOUT),
    "timeout-negative": (["--timeout", "-1"], BAD_TIMEOUT),
    "timeout-nan": (["--timeout", "nan"], BAD_TIMEOUT),
    "timeout-inf": (["--timeout", "inf"], BAD_TIMEOUT),
    "timeout-word": (["--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
    "timeout-1e10": (["--timeout", "1e10"], BAD_TIMEOUT),
    "timeout-beyond-a-day": (["--timeout", "86400.5"], BAD_TIMEOUT),
    "empty-prompt": ([""], "the prompt is empty"),
    "blank-prompt": ([" \n\t"], "the prompt is empty"),
    "empty-model": (["--model", ""], "--model is empty"),
    "host-and-port": (
        ["--provider", "localhost:11434"],
        "--provider localhost:11434: did you mean http://localhost:11434/v1?",
    ),
    "query-string": (
        ["--provider", "http://127.0.0.1:8080/v1?key=1"],
        "--provider: a base URL cannot have a query string",
    ),
    "fragment": (
        ["--provider", "http://127.0.0.1:8080/v1#top"],
        "--provider: a base URL cannot have a query string",
    ),
    "prompt-not-utf8": (["caf\udce9"], "the prompt is not valid UTF-8"),  # argv's undecodable byte 0xe9
    "system-not-utf8": (["-s", "caf\udce9", "hi"], "the prompt is not valid UTF-8"),
}


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS.values(), ids=USAGE_ERRORS)
def test_a_usage_error_exits_2_with_the_usage_and_what_is_wrong(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit:
        parse_args(argv)
    assert exit.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: ")
    assert err.splitlines()[-1].endswith(f": error: {message}")


@pytest.mark.parametrize("stdin", [b"", b"  \n\t\n"], ids=["empty", "blank"])
def test_a_dash_with_nothing_but_blanks_on_stdin_is_an_empty_prompt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: bytes
) -> None:
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(stdin)))
    with pytest.raises(SystemExit) as exit:
        parse_args(["-"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(": error: the prompt is empty")


def test_a_dash_reads_stdin_as_utf8_and_a_bad_byte_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO("naïve\n".encode())))
    assert parse_args(["-"]).prompt == "naïve\n"
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(b"caf\xe9\n")))
    with pytest.raises(SystemExit) as exit:
        parse_args(["-"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(": error: the prompt is not valid UTF-8")


def test_a_timeout_of_a_whole_day_is_allowed() -> None:
    assert parse_args(["--timeout", "86400"]).timeout == 86400


def test_the_defaults_without_options_or_environment() -> None:
    args = parse_args([])
    assert (args.prompt, args.model, args.provider, args.system) == ("Say hello there!", "gpt-4", "", None)
    assert (args.timeout, args.verbose, args.debug) == (60, False, False)


def test_model_and_provider_come_from_the_environment_and_options_override_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("G4F_MODEL", "env-model")
    monkeypatch.setenv("G4F_PROVIDER", "EnvProvider")
    assert (parse_args([]).model, parse_args([]).provider) == ("env-model", "EnvProvider")
    args = parse_args(["--model", "option-model", "--provider", "OptionProvider"])
    assert (args.model, args.provider) == ("option-model", "OptionProvider")


def test_an_empty_g4f_model_variable_means_the_default_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("G4F_MODEL", "")
    assert parse_args([]).model == messages_stream.MODEL


# ---- the command, in a process of its own


def test_a_usage_error_in_the_command_sends_nothing_and_prints_only_the_usage(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--timeout", "0", "--provider", server.url, home=isolated)
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("usage: ")
    assert [line for line in result.err.splitlines() if "error:" in line] == result.err.splitlines()[-1:]
    assert result.err.endswith(f": error: {BAD_TIMEOUT}\n")
    assert server.requests == []


@pytest.mark.parametrize("optimize", [[], ["-OO"]], ids=["plain", "without-docstrings"])
def test_help_explains_every_option_and_exits_0(isolated: Path, optimize: list[str]) -> None:
    result = subprocess.run(  # -OO drops every docstring: --help must not need the module's
        [sys.executable, *optimize, str(SCRIPT), "--help"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=clean_env(isolated),
    )
    assert (result.returncode, result.stderr) == (0, "")
    help_text = " ".join(result.stdout.split())
    for words in (  # what each one means: the description, every option's help, the epilog
        "Stream a chat completion with g4f.",
        "prompt the message, or - to read it from stdin",
        "--system SYSTEM a system message, sent before the prompt",  # after "-s SYSTEM," before 3.13
        "--model MODEL $G4F_MODEL or gpt-4",
        "--provider PROVIDER a g4f provider name, or an OpenAI-compatible API's base URL ($G4F_PROVIDER)",
        "--timeout TIMEOUT seconds to wait for a chunk (60)",
        "-v, --verbose say who answered",
        "--debug log what g4f does, and show tracebacks",
        "API key: $G4F_API_KEY.",
    ):
        assert words in help_text, words  # argparse folds long help lines


def test_the_defaults_send_the_default_prompt_and_model(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, home=isolated)
    assert (result.code, result.err) == (0, "")
    assert result.out == "Hello there!" + final_line("Hello there!")
    [request] = server.requests
    assert request["json"]["model"] == "gpt-4"
    assert request["json"]["messages"] == [{"role": "user", "content": "Say hello there!"}]
    assert request["json"]["stream"] is True
    assert "Authorization" not in request["headers"]  # no G4F_API_KEY, no key


def test_the_model_the_base_url_and_its_key_come_from_g4f_environment_variables(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script(
            home=isolated, G4F_MODEL="env-model", G4F_PROVIDER=server.url, G4F_API_KEY="sk-env"
        )
    assert (result.code, result.err) == (0, "")
    assert result.out == "Hello there!" + final_line("Hello there!")
    [request] = server.requests
    assert request["json"]["model"] == "env-model"
    assert request["headers"]["Authorization"] == "Bearer sk-env"


def test_a_dash_reads_a_multi_line_prompt_from_stdin(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("-", "--provider", server.url, home=isolated, input="line one\nline two\n")
    assert (result.code, result.err) == (0, "")
    assert server.requests[0]["json"]["messages"] == [{"role": "user", "content": "line one\nline two\n"}]


def test_an_unknown_provider_name_is_named_with_a_command_that_lists_the_valid_ones(isolated: Path) -> None:
    result = run_script("--provider", "NoSuchProvider", home=isolated)
    assert result.code == 1
    assert result.err == f"error: unknown provider 'NoSuchProvider'; list the valid names with: {LIST}\n"
    assert result.out == final_line("")
    with closed_port() as port:  # the command must list them offline, as the hint is given offline too
        proxy = f"http://127.0.0.1:{port}"
        listed = subprocess.run(
            LIST,
            shell=True,
            capture_output=True,
            text=True,
            timeout=WAIT,
            env=clean_env(
                isolated,
                HTTPS_PROXY=proxy,
                HTTP_PROXY=proxy,
                PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            ),
        )
    assert (listed.returncode, listed.stderr) == (0, "")
    names = listed.stdout.split()
    assert "Copilot" in names and len(names) >= 30, listed.stdout


@since(8, 3, 0, needs="the line g4f's debug log gives each model it uses")
def test_debug_sends_g4f_logs_and_the_traceback_to_stderr_before_the_error_line(isolated: Path) -> None:
    with openai_server(status=500, error_body={"error": {"message": "boom"}}) as server:
        result = run_script("--provider", server.url, "--debug", home=isolated, traceback=True)
    assert result.code == 1
    assert result.out == final_line("")  # g4f's logs go to stderr, never into the answer
    logs, traceback = result.err.split("Traceback (most recent call last):")
    assert "Using model 'gpt-4'" in logs  # a line of g4f's own debug log, before the failure
    assert error_lines(result.err) == [f"error: {server.url} failed: Error 500: boom"]
    assert traceback.rstrip().splitlines()[-1] == error_lines(result.err)[0]  # the error line comes last


def test_a_url_with_a_password_and_an_api_key_together_is_one_plain_line_and_nothing_is_sent(
    isolated: Path,
) -> None:
    # Both would be the one Authorization header: aiohttp refuses before it sends anything.
    with openai_server() as server:
        url = server.url.replace("http://", "http://user:secretpw@")
        result = run_script("--provider", url, home=isolated, G4F_API_KEY="sk-secret-123")
    assert (result.code, result.out) == (1, final_line(""))
    host = server.url.removeprefix("http://")
    assert result.err == (
        f"error: http://***@{host} failed: Cannot combine AUTHORIZATION header with AUTH argument or "
        "credentials encoded in URL\n"
    )
    assert server.requests == []
