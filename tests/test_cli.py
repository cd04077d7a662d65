"""The command line, run as a user runs it: `python messages_stream.py ...` in a process of its own.

Every test checks stderr for tracebacks and teardown noise through conftest's assert_clean().
"""

from __future__ import annotations

from pathlib import Path

from conftest import assert_clean, error_lines, final_line, run_script
from server import openai_server


def test_help_lists_every_option_and_exits_0(isolated: Path) -> None:
    result = run_script("--help", home=isolated)
    assert (result.returncode, error_lines(result.stderr)) == (0, [])
    for option in (
        "PROMPT",
        "--model",
        "--provider",
        "--timeout",
        "--debug",
        "G4F_MODEL",
        "G4F_PROVIDER",
        "G4F_API_KEY",
    ):
        assert option.lower() in result.stdout.lower()
    for words in (  # what each one means: the description, every option's help, the epilog
        "Stream a chat completion with g4f's AsyncClient",
        "the message, or - to read it from stdin",
        "a system message, sent before the prompt",
        "$G4F_MODEL or gpt-4",
        "a g4f provider name, or an OpenAI-compatible API's base URL ($G4F_PROVIDER)",
        "seconds to wait for a chunk (60)",
        "say who answered, and how fast",
        "log what g4f does, and show tracebacks",
        "API key: $G4F_API_KEY.",
    ):
        assert words in " ".join(result.stdout.split()), words  # argparse folds long help lines


def test_defaults_send_the_default_prompt_and_model(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, home=isolated)
    assert (result.returncode, error_lines(result.stderr), result.stderr) == (0, [], "")
    assert result.stdout == "Hello there!" + final_line("Hello there!")
    assert server.requests[0]["json"]["model"] == "gpt-4"
    assert server.requests[0]["json"]["messages"] == [{"role": "user", "content": "Say hello there!"}]
    assert server.requests[0]["json"]["stream"] is True


def test_model_provider_and_api_key_come_from_g4f_environment_variables(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script(
            home=isolated, G4F_MODEL="env-model", G4F_PROVIDER=server.url, G4F_API_KEY="sk-env"
        )
    assert (result.returncode, error_lines(result.stderr)) == (0, []), result.stderr
    assert server.requests[0]["json"]["model"] == "env-model"
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-env"


def test_options_override_the_environment(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script(
            "--model",
            "option-model",
            "--provider",
            server.url,
            home=isolated,
            G4F_MODEL="env-model",
            G4F_PROVIDER="http://127.0.0.1:9/v1",
        )
    assert (result.returncode, error_lines(result.stderr)) == (0, []), result.stderr
    assert server.requests[0]["json"]["model"] == "option-model"


def test_a_dash_reads_a_multi_line_prompt_from_stdin(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("-", "--provider", server.url, home=isolated, input="line one\nline two\n")
    assert (result.returncode, error_lines(result.stderr)) == (0, []), result.stderr
    assert server.requests[0]["json"]["messages"][0]["content"] == "line one\nline two\n"


def test_an_empty_or_blank_prompt_is_a_usage_error(isolated: Path) -> None:
    for args, stdin in (
        (["", "--provider", "http://127.0.0.1:9/v1"], None),
        ([" \n\t"], None),
        (["-"], "  \n"),
    ):
        result = run_script(*args, home=isolated, input=stdin)
        assert result.returncode == 2, args
        assert_clean(result.stderr)
        assert "the prompt is empty" in result.stderr
        assert result.stdout == ""


def test_a_bad_option_or_timeout_is_a_usage_error(isolated: Path) -> None:
    for args in (
        ["--no-such-option"],
        ["--timeout", "0"],
        ["--timeout", "-1"],
        ["--timeout", "nan"],
        ["--timeout", "inf"],
        ["--timeout", "soon"],
        ["--timeout", "1e10"],
        ["--timeout", "86400.5"],  # a day at most  # a timestamp past what the platform's time_t holds
    ):
        result = run_script(*args, home=isolated)
        assert result.returncode == 2, args
        assert_clean(result.stderr)
        assert "usage:" in result.stderr
        if args[0] == "--timeout" and args[1] != "soon":  # argparse's own words for what is not a number
            assert "--timeout must be a positive number of seconds, at most 86400" in result.stderr
        assert result.stdout == ""


def test_an_unknown_provider_name_is_named_with_how_to_list_the_valid_ones(isolated: Path) -> None:
    result = run_script("--provider", "NoSuchProvider", home=isolated)
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        "error: unknown provider 'NoSuchProvider'; list the valid names with: "
        'python -c "import g4f.Provider; print(*g4f.Provider.ProviderLoader.names)"'
    ]
    assert result.stdout == final_line("")


def test_debug_shows_the_traceback_before_the_error_line(isolated: Path) -> None:
    with openai_server(status=500, error_body={"error": {"message": "boom"}}) as server:
        result = run_script("--provider", server.url, "--debug", home=isolated)
    assert result.returncode == 1
    assert_clean(result.stderr, traceback=True)
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == f"error: {server.url} failed: Error 500: boom"
    assert result.stdout == final_line("")


def test_debug_sends_g4f_logs_to_stderr_not_into_the_answer(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, "--debug", home=isolated)
    assert (result.returncode, error_lines(result.stderr)) == (0, []), result.stderr
    assert "Using model 'gpt-4'" in result.stderr  # a line of g4f's own debug log
    assert result.stdout == "Hello there!" + final_line("Hello there!")


def test_a_timeout_of_a_whole_day_is_allowed(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, "--timeout", "86400", home=isolated)
    assert (result.returncode, error_lines(result.stderr)) == (0, [])
    assert result.stdout == "Hello there!" + final_line("Hello there!")
