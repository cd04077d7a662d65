"""main() and the command line, with g4f's client replaced by a fake that streams chunks we choose.

One test runs g4f's real AsyncClient with a tiny provider, to show that the fake's chunks have the
shape of the real ones.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import SCRIPT, clean_env, final_line
from g4f.providers.base_provider import AsyncGeneratorProvider
from g4f.typing import AsyncResult, Messages
from server import openai_server

import messages_stream


def chunk(content: Any = None, choices: bool = True) -> SimpleNamespace:
    """A stand-in for g4f's ChatCompletionChunk: `choices[0].delta.content`, or no choices at all."""
    return SimpleNamespace(
        choices=[SimpleNamespace(delta=SimpleNamespace(content=content))] if choices else []
    )


class FakeClient:
    """Records how AsyncClient and create() were called, then streams `items`: chunks are yielded,
    exceptions raised and callables called. `create_raises` is raised by create() itself instead."""

    calls: list[dict[str, Any]]

    def __init__(self, items: list[Any], create_raises: Exception | None = None) -> None:
        self.items = items
        self.create_raises = create_raises
        self.calls = []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    def __call__(self, **kwargs: Any) -> FakeClient:  # stands in for the AsyncClient class
        self.calls.append({"client": kwargs})
        return self

    def create(self, **kwargs: Any) -> AsyncIterator[Any]:
        self.calls.append({"create": kwargs})
        if self.create_raises is not None:
            raise self.create_raises
        return self.stream()

    async def stream(self) -> AsyncIterator[Any]:
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            if callable(item):
                item()
                continue
            yield item
            await asyncio.sleep(0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeClient]:
    """Install a FakeClient in place of g4f's AsyncClient."""

    def install(*items: Any, create_raises: Exception | None = None) -> FakeClient:
        client = FakeClient(list(items), create_raises)
        monkeypatch.setattr(messages_stream, "AsyncClient", client)
        return client

    return install


def test_prints_each_piece_as_it_arrives_and_returns_the_whole_text(fake, capsys) -> None:
    fake(chunk("Hello"), chunk(", "), chunk("world"))
    assert asyncio.run(messages_stream.main()) == "Hello, world"
    out, err = capsys.readouterr()
    assert out == "Hello, world" + final_line("Hello, world")
    assert err == ""


def test_main_without_arguments_asks_gpt4_to_say_hello_through_g4f_default_provider(fake) -> None:
    client = fake(chunk("Hi"))
    asyncio.run(messages_stream.main())
    assert client.calls[0] == {"client": {"provider": None, "api_key": None}}
    create = client.calls[1]["create"]
    assert create["model"] == "gpt-4"
    assert create["messages"] == [{"role": "user", "content": "Say hello there!"}]
    assert create["stream"] is True


def test_empty_choices_and_none_empty_or_non_text_content_add_nothing(fake, capsys) -> None:
    fake(chunk(choices=False), chunk(None), chunk("A"), chunk(""), chunk(object()), chunk("B"), chunk(None))
    assert asyncio.run(messages_stream.main()) == "AB"
    assert capsys.readouterr().out == "AB" + final_line("AB")


def test_an_error_raised_by_create_itself_is_reported_and_exits_1(fake, capsys) -> None:
    fake(chunk("never"), create_raises=ConnectionError("offline"))
    with pytest.raises(SystemExit) as exit:
        asyncio.run(messages_stream.main())
    assert exit.value.code == "error: g4f's default provider failed: offline"
    assert capsys.readouterr().out == final_line("")


def test_an_error_mid_stream_keeps_the_partial_text(fake, capsys) -> None:
    fake(chunk("Hel"), chunk("lo"), RuntimeError("connection lost"))
    with pytest.raises(SystemExit) as exit:
        asyncio.run(messages_stream.main(provider="SomeProvider"))
    assert exit.value.code == "error: SomeProvider failed: connection lost"
    assert capsys.readouterr().out == "Hello" + final_line("Hello")


def test_a_stream_without_text_is_a_failure(fake, capsys) -> None:
    fake(chunk(None), chunk(choices=False))
    with pytest.raises(SystemExit) as exit:
        asyncio.run(messages_stream.main())
    assert exit.value.code == "error: the provider returned an empty response"
    assert capsys.readouterr().out == final_line("")


def test_ctrl_c_mid_stream_keeps_the_partial_text_and_exits_130(fake, capsys) -> None:
    fake(chunk("Hel"), lambda: os.kill(os.getpid(), signal.SIGINT), chunk("never"))
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi"])
    assert exit.value.code == 130
    out, err = capsys.readouterr()
    assert out == "Hel" + final_line("Hel")
    assert err == ""


class InterruptedAfter(io.TextIOWrapper):
    """A stdout that gets Ctrl-C right after it has shown `piece`."""

    def __init__(self, piece: str) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")
        self.piece = piece

    def write(self, text: str) -> int:
        written = super().write(text)
        if text == self.piece:
            os.kill(os.getpid(), signal.SIGINT)
        return written


def test_a_piece_already_shown_when_ctrl_c_comes_is_in_the_final_text(fake, monkeypatch) -> None:
    fake(chunk("Hel"), chunk("lo"), chunk(" never"))
    stdout = InterruptedAfter("lo")
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi"])
    assert exit.value.code == 130
    stdout.flush()
    assert stdout.buffer.getvalue().decode() == "Hello" + final_line("Hello")  # type: ignore[attr-defined]


def test_cli_passes_its_options_to_main(fake, monkeypatch) -> None:
    client = fake(chunk("ok"))
    deadlines: list[float] = []
    real_deadline = messages_stream.deadline
    monkeypatch.setattr(
        messages_stream, "deadline", lambda seconds: deadlines.append(seconds) or real_deadline(seconds)
    )
    args = ["a question", "--model", "m1", "--provider", "SomeProvider", "--timeout", "7"]
    assert messages_stream.cli(args) == 0
    assert client.calls[0] == {"client": {"provider": "SomeProvider", "api_key": None}}
    create = client.calls[1]["create"]
    assert (create["model"], create["messages"][0]["content"]) == ("m1", "a question")
    assert deadlines == [7]
    # The alarm bounds every wait, so g4f's costlier stream_timeout is only the fallback where there is none.
    assert create["stream_timeout"] == (None if messages_stream.ALARM else 7)


def test_the_api_key_comes_from_g4f_api_key(fake, monkeypatch) -> None:
    monkeypatch.setenv("G4F_API_KEY", "sk-from-env")
    client = fake(chunk("ok"))
    asyncio.run(messages_stream.main())
    assert client.calls[0]["client"]["api_key"] == "sk-from-env"


def test_a_base_url_becomes_a_custom_provider_that_knows_its_model(fake) -> None:
    client = fake(chunk("ok"))
    asyncio.run(messages_stream.main(model="llama3.2", provider="http://127.0.0.1:9/v1/"))
    provider = client.calls[0]["client"]["provider"]
    assert provider.base_url == "http://127.0.0.1:9/v1"
    assert provider.models == ["llama3.2"]  # so g4f skips its blocking GET /models


def test_the_deadline_interrupts_a_blocking_call(isolated: Path) -> None:
    with pytest.raises(SystemExit) as exit, messages_stream.deadline(0.2):
        time.sleep(30)  # stands in for g4f's requests.get with no timeout
    assert exit.value.code == "error: no response from the provider within 0.2 s"


def test_the_deadline_restarts_with_each_sign_of_progress(isolated: Path) -> None:
    with messages_stream.deadline(0.5) as progress:
        for _ in range(20):  # 1 s in all, twice the deadline, but never 0.5 s without progress
            time.sleep(0.05)
            progress()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # and nothing is left armed


def test_importing_the_module_does_nothing(isolated: Path) -> None:
    closed = "http://127.0.0.1:9"  # were anything fetched, it would fail through this proxy
    result = subprocess.run(
        [sys.executable, "-c", "import messages_stream"],
        capture_output=True,
        text=True,
        cwd=SCRIPT.parent,
        timeout=30,
        env=clean_env(isolated, HTTPS_PROXY=closed, HTTP_PROXY=closed),
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not (isolated / "g4f").exists() and not (isolated / "cache").exists()


def test_no_connection_is_left_open_after_a_stream(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # g4f 8.8.6 never closes its shared aiohttp connector; left open, it warns "Unclosed connector" at exit.
    with openai_server() as server:
        assert asyncio.run(messages_stream.main(provider=server.url)) == "Hello there!"
        for _ in range(50):  # the server thread sees the close a moment later
            if server.connections() == 0:
                break
            time.sleep(0.02)
        assert server.connections() == 0


class TinyProvider(AsyncGeneratorProvider):
    """The smallest g4f provider: it streams three pieces of text."""

    working = True
    supports_stream = True

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, **kwargs: Any) -> AsyncResult:
        for piece in ("Real", " g4f", " chunks"):
            yield piece


def test_the_real_client_yields_chunks_shaped_like_the_fake_ones(monkeypatch, capsys, isolated: Path) -> None:
    monkeypatch.setattr(messages_stream, "to_provider", lambda provider, model: TinyProvider)
    assert asyncio.run(messages_stream.main()) == "Real g4f chunks"
    assert capsys.readouterr().out == "Real g4f chunks" + final_line("Real g4f chunks")
