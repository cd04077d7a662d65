"""Everything the stream carries (issue 9): reasoning, sources and media, who answered, the system prompt."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import error_lines, final_line, run_script
from g4f.client import AsyncClient
from g4f.providers.base_provider import AsyncGeneratorProvider
from g4f.providers.response import ImageResponse, Reasoning, Sources
from g4f.typing import AsyncResult, Messages
from server import delta, openai_server, text_events
from test_edges import on_a_terminal

import messages_stream

WAIT = 90  # seconds a run may take at most, on a shared machine
THINKING = [delta(None, reasoning_content="Let me think. "), delta(None, reasoning_content="Done thinking.")]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_goes_to_stderr_and_never_to_stdout_or_the_final_text(isolated: Path, field: str) -> None:
    events = [delta(None, **{field: "Let me think. "}), delta(None, **{field: "Done thinking."})]
    with openai_server(events=events + text_events(["Hello", "!"])) as server:
        result = run_script("--provider", server.url, home=isolated, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert "Let me think. Done thinking." in result.stderr
    assert error_lines(result.stderr) == []
    assert result.stdout == "Hello!" + final_line("Hello!")


def test_reasoning_without_an_answer_is_its_own_error(isolated: Path) -> None:
    with openai_server(events=THINKING + text_events([])) as server:
        result = run_script("--provider", server.url, home=isolated, timeout=WAIT)
    assert result.returncode == 1, result.stderr
    assert error_lines(result.stderr) == ["error: the provider sent only reasoning"]
    assert result.stdout == final_line("")


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        (["-s", "You are terse."], [{"role": "system", "content": "You are terse."}]),
        ([], []),
    ],
    ids=["with-s", "without-s"],
)
def test_a_system_message_is_sent_before_the_user_message_only_with_s(
    isolated: Path, options: list[str], sent: list[dict[str, str]]
) -> None:
    with openai_server() as server:
        result = run_script("Hi", *options, "--provider", server.url, home=isolated, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    assert server.requests[0]["json"]["messages"] == [*sent, {"role": "user", "content": "Hi"}]


def test_verbose_names_the_provider_and_the_model_in_at_most_two_lines(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, "-v", home=isolated, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    assert 1 <= len(result.stderr.splitlines()) <= 2, result.stderr
    assert "test-model" in result.stderr  # the model the server reported, not the gpt-4 asked for
    assert server.url.rsplit(":", 1)[1].split("/")[0] in result.stderr  # the provider, by its port
    assert result.stdout == "Hello there!" + final_line("Hello there!")


def test_without_verbose_stderr_stays_empty_on_success(isolated: Path) -> None:
    with openai_server() as server:
        result = run_script("--provider", server.url, home=isolated, timeout=WAIT)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("env", "dimmed"), [({}, True), ({"NO_COLOR": "1"}, False)], ids=["color", "NO_COLOR"]
)
def test_reasoning_on_a_terminal_is_dimmed_unless_no_color(
    isolated: Path, env: dict[str, str], dimmed: bool
) -> None:
    with openai_server(events=THINKING + text_events(["ok"])) as server:
        code, shown, out = on_a_terminal("--provider", server.url, fd=2, home=isolated, **env)
    assert code == 0, shown
    assert (b"\x1b[2m" in shown) is dimmed
    assert b"Let me think. Done thinking." in shown.replace(b"\x1b[2m", b"").replace(b"\x1b[0m", b"")
    assert out == "ok" + final_line("ok")


def test_reasoning_is_not_dimmed_when_stderr_is_a_pipe(isolated: Path) -> None:
    with openai_server(events=THINKING + text_events(["ok"])) as server:
        result = run_script("--provider", server.url, home=isolated, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    assert "Let me think." in result.stderr and "\x1b" not in result.stderr


# ---- the invariant: the streamed text is g4f's own non-streaming message.content


class MixedProvider(AsyncGeneratorProvider):
    """A g4f provider that yields text, reasoning, sources and an image."""

    working = True
    supports_stream = True

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, **kwargs: Any) -> AsyncResult:
        yield "Here"
        yield Reasoning(token="I should cite.")
        yield " it is."
        yield Sources([{"url": "https://example.com/a", "title": "A"}])
        yield ImageResponse("https://example.com/cat.png", "a cat")


class ImageProvider(AsyncGeneratorProvider):
    """A g4f provider whose whole answer is one image."""

    working = True
    supports_stream = True

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, **kwargs: Any) -> AsyncResult:
        yield ImageResponse("https://example.com/cat.png", "a cat")


async def not_streamed(provider: type[AsyncGeneratorProvider]) -> str:
    """`message.content` of g4f's real AsyncClient for the same request with stream=False."""
    response = await AsyncClient(provider=provider).chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "hi"}], stream=False
    )
    return str(response.choices[0].message.content)


def test_the_final_text_equals_g4fs_non_streaming_content(monkeypatch, capsys, isolated: Path) -> None:
    monkeypatch.setattr(messages_stream, "to_provider", lambda *args, **kwargs: MixedProvider)
    streamed = asyncio.run(messages_stream.main("hi"))
    out, err = capsys.readouterr()
    expected = asyncio.run(not_streamed(MixedProvider))
    assert "https://example.com/a" in expected and "https://example.com/cat.png" in expected
    assert streamed == expected
    assert out == streamed + final_line(streamed)
    assert "I should cite." in err and "I should cite." not in out


def test_an_answer_that_is_only_an_image_is_not_an_empty_response(
    monkeypatch, capsys, isolated: Path
) -> None:
    monkeypatch.setattr(messages_stream, "to_provider", lambda *args, **kwargs: ImageProvider)
    streamed = asyncio.run(messages_stream.main("draw a cat"))
    assert "https://example.com/cat.png" in streamed
    assert streamed == asyncio.run(not_streamed(ImageProvider))
    assert capsys.readouterr().out == streamed + final_line(streamed)
