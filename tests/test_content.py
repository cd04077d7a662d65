"""Everything the stream carries: reasoning, sources and media, who answered, the system message.

On the command line: reasoning goes to stderr, -v adds one line saying who answered, and on a terminal
all of stderr is dimmed (unless NO_COLOR); on a pipe, stderr carries no escape at all. In-process, with
g4f's real client: the streamed text is what g4f's own non-streaming call gives as message.content.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import error_lines, final_line, on_a_terminal, run_script
from fakes import tiny_provider
from g4f.client import AsyncClient
from g4f.providers.response import ImageResponse, Reasoning, Sources
from server import delta, openai_server, text_events

import messages_stream

# A thinking model's reasoning, in both of the fields that OpenAI-compatible servers use for it.
THINKING = [delta(None, reasoning_content="Let me think. "), delta(None, reasoning="Done thinking.")]


def test_reasoning_goes_to_stderr_as_it_is_and_never_to_stdout_or_the_final_text(isolated: Path) -> None:
    with openai_server(events=THINKING + text_events(["Hello", "!"])) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert result.code == 0, result.err
    assert result.out == "Hello!" + final_line("Hello!")
    assert result.err.rstrip("\n") == "Let me think. Done thinking."  # on a pipe: not dimmed, no escape
    assert result.err.endswith("\n")  # the line of reasoning is ended


def test_on_one_screen_the_answer_starts_below_the_reasoning_and_nothing_follows_the_final_line(
    isolated: Path,
) -> None:
    """stdout and stderr into one pipe, as a terminal shows them, over g4f's real client: g4f sends a "\\n" of
    reasoning as the answer starts, and the reasoning's line is ended once, not twice."""
    with openai_server(events=THINKING + text_events(["Hello", "!"])) as server:
        result = run_script("--provider", server.url, home=isolated, shell="2>&1")
    assert (result.code, result.err) == (0, "")
    assert result.out == "Let me think. Done thinking.\nHello!" + final_line("Hello!")


def test_reasoning_without_an_answer_is_its_own_error(isolated: Path) -> None:
    with openai_server(events=THINKING + text_events([])) as server:
        result = run_script("--provider", server.url, home=isolated)
    assert result.code == 1, result.err
    assert result.out == final_line("")
    assert (
        result.err
        == f"Let me think. Done thinking.\nerror: {server.url} failed: the provider sent only reasoning\n"
    )


@pytest.mark.parametrize(
    ("options", "sent"),
    [(["-s", "You are terse."], [{"role": "system", "content": "You are terse."}]), ([], [])],
    ids=["with-s", "without-s"],
)
def test_a_system_message_is_sent_before_the_user_message_only_with_s(
    isolated: Path, options: list[str], sent: list[dict[str, str]]
) -> None:
    with openai_server() as server:
        result = run_script("Hi", *options, "--provider", server.url, home=isolated)
    assert (result.code, result.err) == (0, "")  # without -v, nothing on stderr when all went well
    assert server.requests[0]["json"]["messages"] == [*sent, {"role": "user", "content": "Hi"}]


def test_verbose_says_in_one_line_which_provider_answered_with_which_model(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, "-v", home=isolated)
    assert result.code == 0, result.err
    # The model the server reported, not the gpt-4 that was asked for.
    assert result.err == f"{server.url} answered with test-model\n"
    assert result.out == "Hello there!" + final_line("Hello there!")


@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "1"}], ids=["dimmed", "NO_COLOR"])
def test_all_of_stderr_on_a_terminal_is_dimmed_unless_no_color(isolated: Path, env: dict[str, str]) -> None:
    with openai_server(events=THINKING + text_events(["ok"])) as server:
        code, shown, out = on_a_terminal("--provider", server.url, "-v", fd=2, home=isolated, **env)
    assert (code, out) == (0, "ok" + final_line("ok"))
    if env:
        assert b"\x1b" not in shown
    else:  # every piece written, the -v line and each newline too, is wrapped in dim ... reset
        assert re.fullmatch(rb"(\x1b\[2m[^\x1b]*\x1b\[0m)+", shown), shown
    text = shown.replace(b"\x1b[2m", b"").replace(b"\x1b[0m", b"").decode()
    assert text.startswith("Let me think. Done thinking.\r\n")
    assert f"\r\n{server.url} answered with test-model\r\n" in text


# ---- the invariant: the streamed text is g4f's own non-streaming message.content


async def not_streamed(provider: Any) -> str:
    """`message.content` of g4f's real AsyncClient for the same request with stream=False."""
    response = await AsyncClient(provider=provider).chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "hi"}], stream=False
    )
    return str(response.choices[0].message.content)


def test_the_final_text_equals_g4fs_non_streaming_content(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = tiny_provider(
        "Here",
        Reasoning(token="I should cite."),
        " it is.",
        Sources([{"url": "https://example.com/a", "title": "A"}]),
        ImageResponse("https://example.com/cat.png", "a cat"),
    )
    monkeypatch.setattr(messages_stream, "to_provider", lambda *args: provider)
    streamed = asyncio.run(messages_stream.main("hi"))
    out, err = capsys.readouterr()
    expected = asyncio.run(not_streamed(provider))
    assert "https://example.com/a" in expected and "https://example.com/cat.png" in expected
    assert streamed == expected
    assert out == streamed + final_line(streamed)
    assert "I should cite." in err and "I should cite." not in out
    assert error_lines(err) == []


def test_an_answer_that_is_only_an_image_is_not_an_empty_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = tiny_provider(ImageResponse("https://example.com/cat.png", "a cat"))
    monkeypatch.setattr(messages_stream, "to_provider", lambda *args: provider)
    streamed = asyncio.run(messages_stream.main("draw a cat"))
    assert "https://example.com/cat.png" in streamed
    assert streamed == asyncio.run(not_streamed(provider))
    assert capsys.readouterr().out == streamed + final_line(streamed)
