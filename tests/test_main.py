"""main() and the command line in-process, with g4f's client replaced by the fake one of tests/fakes.py.

main() is an ordinary coroutine: it raises ordinary exceptions after printing the final line, and touches no
signal, timer or shared state. cli() is driven here too, with the deadline's timer recorded instead of
started. Two tests run g4f's real AsyncClient with tiny_provider(), to show that the fake's chunks have the
real shape, and two against tests/server.py; one test starts a Python process (importing the module).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import g4f.config
import g4f.requests
import pytest
import requests
from conftest import SCRIPT, WAIT, clean_env, closed_port, final_line
from fakes import Block, Call, FakeClient, Sleep, chunk, last, tiny_provider
from g4f import debug as g4f_debug
from g4f.client import AsyncClient
from g4f.errors import MissingAuthError, ProviderNotFoundError, RetryProviderError
from g4f.providers.response import Reasoning
from server import openai_server

import messages_stream

Fake = Callable[..., FakeClient]  # conftest's `fake` fixture
Patch = pytest.MonkeyPatch  # and pytest's other fixtures
Capture = pytest.CaptureFixture[str]
Logs = pytest.LogCaptureFixture


@pytest.fixture(autouse=True)
def loaded(monkeypatch: Patch) -> list[str]:
    """In-process, g4f's provider list is never downloaded: load_provider_list() only records its calls
    (tests/test_default.py runs the real one against the stand-in)."""
    calls: list[str] = []
    monkeypatch.setattr(messages_stream, "load_provider_list", lambda: calls.append("loaded"))
    return calls


def info_records(caplog: Logs) -> list[str]:
    """What main() logged on its own logger."""
    return [record.getMessage() for record in caplog.records if record.name == "messages_stream"]


class Timer:
    """Stands in for threading.Timer: records the deadline that stop() arms, and never starts a thread."""

    def __init__(self, interval: float, function: Callable[..., Any], args: list[Any]) -> None:
        self.interval, self.function, self.args = interval, function, args
        self.daemon = self.started = False

    def start(self) -> None:
        self.started = True


@pytest.fixture
def deadlines(monkeypatch: Patch) -> list[Timer]:
    """The deadlines that stop() arms during the test, recorded instead of started."""
    armed: list[Timer] = []

    def record(interval: float, function: Callable[..., Any], args: list[Any]) -> Timer:
        armed.append(Timer(interval, function, args))
        return armed[-1]

    monkeypatch.setattr(threading, "Timer", record)  # the module messages_stream uses
    return armed


def to_self(number: signal.Signals) -> Call:
    """A stream item that sends this process the signal `number`, as a user's Ctrl-C or `kill` does."""
    return Call(partial(os.kill, os.getpid(), number))


# ---- main() ---------------------------------------------------------------------------------------------


def test_prints_each_piece_as_it_arrives_and_returns_the_whole_text(fake: Fake, capsys: Capture) -> None:
    fake(chunk("Hello"), chunk(", "), chunk("world"), last())
    assert asyncio.run(messages_stream.main()) == "Hello, world"
    out, err = capsys.readouterr()
    assert out == "Hello, world" + final_line("Hello, world")
    assert err == ""


def test_main_without_arguments_asks_gpt4_to_say_hello_through_g4f_default_provider(fake: Fake) -> None:
    client = fake(chunk("Hi"))
    asyncio.run(messages_stream.main())
    assert client.calls[0] == {"client": {"provider": None}}
    create = client.calls[1]["create"]
    hello = [{"role": "user", "content": "Say hello there!"}]
    assert create == {"model": "gpt-4", "messages": hello, "stream": True}  # and no g4f stream_timeout


def test_a_list_of_messages_is_sent_as_it_is(fake: Fake) -> None:
    client = fake(chunk("4"))
    turns = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And doubled?"},
    ]
    asyncio.run(messages_stream.main(turns))
    assert client.calls[1]["create"]["messages"] == turns


def test_empty_choices_and_none_or_empty_content_add_nothing(fake: Fake, capsys: Capture) -> None:
    fake(chunk(choices=False), chunk(None), chunk("A"), chunk(""), chunk("B"), last())
    assert asyncio.run(messages_stream.main()) == "AB"
    assert capsys.readouterr().out == "AB" + final_line("AB")


def test_media_and_sources_are_printed_and_kept_in_their_text_form(fake: Fake, capsys: Capture) -> None:
    image = type("Image", (), {"__str__": lambda self: "![cat](https://example.org/cat.png)"})()
    fake(chunk("Look: "), chunk(image), last())
    text = asyncio.run(messages_stream.main())
    assert text == "Look: ![cat](https://example.org/cat.png)"
    assert capsys.readouterr().out == text + final_line(text)


def test_reasoning_goes_to_stderr_and_never_into_the_answer(fake: Fake, capsys: Capture) -> None:
    fake(chunk(reasoning="Let me think. "), chunk(reasoning="Done."), chunk("42"), last())
    assert asyncio.run(messages_stream.main()) == "42"
    out, err = capsys.readouterr()
    assert out == "42" + final_line("42")
    assert err == "Let me think. Done.\n"  # its line ended, so that what follows starts on a new one


# What a terminal shows, stdout and stderr on one screen: the answer on a line of its own after the
# reasoning, and nothing after the final line.
ONE_SCREEN = {
    "reasoning-then-text": (
        [
            chunk(reasoning="Let me think. "),
            chunk(reasoning="Done."),
            chunk("Hello"),
            chunk(" there"),
            last(),
        ],
        "Let me think. Done.\nHello there" + final_line("Hello there"),
    ),
    "reasoning-with-g4f-newline": (  # g4f's OpenAI template sends a "\n" of reasoning as the text starts
        [chunk(reasoning="Let me think."), chunk(reasoning="\n"), chunk("Hello"), last()],
        "Let me think.\nHello" + final_line("Hello"),
    ),
    "text-alone": ([chunk("Hello"), last()], "Hello" + final_line("Hello")),
    "reasoning-alone": ([chunk(reasoning="Hmm."), last()], "Hmm.\n" + final_line("")),
}


@pytest.mark.parametrize(("items", "screen"), ONE_SCREEN.values(), ids=ONE_SCREEN)
def test_on_one_screen_the_answer_starts_a_line_of_its_own_and_nothing_follows_the_final_line(
    fake: Fake, monkeypatch: Patch, items: list[Any], screen: str
) -> None:
    both = io.StringIO()  # stdout and stderr written to one buffer, as a terminal shows them
    monkeypatch.setattr(sys, "stdout", both)
    monkeypatch.setattr(sys, "stderr", both)
    fake(*items)
    with contextlib.suppress(ValueError):  # reasoning alone: the provider sent no answer
        asyncio.run(messages_stream.main())
    assert both.getvalue() == screen


def test_each_piece_and_each_thought_is_flushed_before_the_next_chunk(fake: Fake, monkeypatch: Patch) -> None:
    # Streams that hold text back until flushed, as a pipe's stdout does: without flush=True a piece
    # would wait there, and the answer would appear all at once at the end.
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    shown: list[bytes] = []
    fake(
        chunk(reasoning="Hmm."),
        Call(lambda: shown.append(err.buffer.getvalue())),  # type: ignore[attr-defined]
        chunk("Hel"),
        Call(lambda: shown.append(out.buffer.getvalue())),  # type: ignore[attr-defined]
        chunk("lo"),
        last(),
    )
    asyncio.run(messages_stream.main())
    assert shown == [b"Hmm.", b"Hel"]
    # The final line and the end of the reasoning's line are out as soon as main() returns.
    assert out.buffer.getvalue().decode() == "Hello" + final_line("Hello")  # type: ignore[attr-defined]
    assert err.buffer.getvalue() == b"Hmm.\n"  # type: ignore[attr-defined]


def test_an_error_raised_by_create_itself_is_raised_after_the_final_line(fake: Fake, capsys: Capture) -> None:
    fake(chunk("never"), create_raises=ConnectionError("offline"))
    with pytest.raises(ConnectionError, match="offline"):
        asyncio.run(messages_stream.main())
    assert capsys.readouterr().out == final_line("")


def test_an_error_mid_stream_is_raised_as_it_is_and_keeps_the_partial_text(
    fake: Fake, capsys: Capture
) -> None:
    fake(chunk("Hel"), chunk("lo"), RuntimeError("connection lost"))
    with pytest.raises(RuntimeError, match="connection lost"):
        asyncio.run(messages_stream.main(provider="SomeProvider"))
    assert capsys.readouterr().out == "Hello" + final_line("Hello")


@pytest.mark.parametrize("items", [[], [chunk(None), chunk(choices=False), last()]], ids=["none", "no-text"])
def test_a_stream_without_text_says_the_answer_is_empty_after_the_final_line(
    fake: Fake, capsys: Capture, items: list[Any]
) -> None:
    fake(*items)  # with no chunk at all, too: not an UnboundLocalError on a chunk never seen
    with pytest.raises(ValueError, match=r"^the answer is empty$"):
        asyncio.run(messages_stream.main())
    assert capsys.readouterr().out == final_line("")


def test_a_stream_of_reasoning_alone_says_so(fake: Fake, capsys: Capture) -> None:
    fake(chunk(reasoning="Hmm."), last())
    with pytest.raises(ValueError, match=r"^the provider sent only reasoning$"):
        asyncio.run(messages_stream.main())
    out, err = capsys.readouterr()
    assert (out, err) == (final_line(""), "Hmm.\n")


@pytest.mark.parametrize("before", [[], [chunk("Hel")]], ids=["before-the-first-chunk", "between-two-chunks"])
def test_a_silence_just_longer_than_the_timeout_raises_timeout_error_and_keeps_what_came(
    fake: Fake, capsys: Capture, before: list[Any]
) -> None:
    fake(*before, Sleep(0.53), chunk("never"))  # 1.06 x the timeout: the limit is exact, not 10% more
    with pytest.raises(TimeoutError, match=r"^no response from the provider within 0\.5 s$"):
        asyncio.run(messages_stream.main(timeout=0.5))
    shown = "Hel" if before else ""
    assert capsys.readouterr().out == shown + final_line(shown)


def test_a_steady_stream_longer_than_the_timeout_is_never_cut(fake: Fake) -> None:
    fake(*[item for i in range(8) for item in (Sleep(0.1), chunk(f"{i} "))], last())  # 0.8 s in all
    assert asyncio.run(messages_stream.main(timeout=0.5)) == "".join(f"{i} " for i in range(8))


def test_a_timeout_error_of_the_provider_itself_passes_through_unchanged(fake: Fake) -> None:
    own = TimeoutError("provider's own")
    fake(chunk("Hel"), own)
    with pytest.raises(TimeoutError) as caught:
        asyncio.run(messages_stream.main(timeout=60))  # main's own limit is far from expired
    assert caught.value is own
    assert str(caught.value) == "provider's own"


def test_a_cancelled_call_prints_what_came_and_the_final_line_then_raises_cancelled_error(
    fake: Fake, capsys: Capture
) -> None:
    async def cancel_after_two_pieces() -> None:
        task = asyncio.create_task(messages_stream.main())
        await asyncio.sleep(0.2)  # "Hel" and "lo" have come; the rest would take another 30 s
        task.cancel()
        await task

    fake(chunk("Hel"), chunk("lo"), Sleep(30), chunk("never"))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancel_after_two_pieces())
    assert capsys.readouterr().out == "Hello" + final_line("Hello")


def test_main_leaves_signals_and_timers_as_it_found_them(fake: Fake) -> None:
    def host_handler(signum: int, frame: object) -> None:
        raise AssertionError("the host's alarm rang during the test")

    previous = signal.signal(signal.SIGALRM, host_handler)
    signal.setitimer(signal.ITIMER_REAL, 1000)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        fake(chunk("Hi"), RuntimeError("boom"))
        with pytest.raises(RuntimeError):
            asyncio.run(messages_stream.main(timeout=0.5))
        assert signal.getsignal(signal.SIGALRM) is host_handler
        assert 990 < signal.getitimer(signal.ITIMER_REAL)[0] <= 1000
        assert {number: signal.getsignal(number) for number in handlers} == handlers
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_who_answered_is_one_info_record_from_the_last_chunk(fake: Fake, caplog: Logs) -> None:
    caplog.set_level(logging.INFO, logger="messages_stream")
    fake(chunk("Hi"), last())
    asyncio.run(messages_stream.main())
    assert info_records(caplog) == ["FakeProvider answered with fake-model"]
    assert [record.levelno for record in caplog.records if record.name == "messages_stream"] == [logging.INFO]


def test_who_answered_names_the_provider_of_the_last_chunk_after_a_fallback(fake: Fake, caplog: Logs) -> None:
    caplog.set_level(logging.INFO, logger="messages_stream")
    end = last()
    end.provider, end.model = "SecondProvider", "second-model"  # the first chunks named the one tried first
    fake(chunk("Hi"), end)
    asyncio.run(messages_stream.main())
    assert info_records(caplog) == ["SecondProvider answered with second-model"]


def test_g4f_api_key_goes_to_a_base_url_provider_and_nowhere_else(fake: Fake, monkeypatch: Patch) -> None:
    monkeypatch.setenv("G4F_API_KEY", "sk-from-env")
    client = fake(chunk("ok"))
    asyncio.run(messages_stream.main(provider="http://127.0.0.1:9/v1"))
    assert list(client.calls[0]["client"]) == ["provider"]  # not AsyncClient(api_key=): all providers get it
    assert client.calls[0]["client"]["provider"].api_key == "sk-from-env"
    assert "api_key" not in client.calls[1]["create"]


@pytest.mark.parametrize("name", ["PollinationsAI", ""], ids=["provider-name", "default-path"])
def test_g4f_api_key_never_goes_to_a_named_provider_or_g4f_default_path(
    fake: Fake, monkeypatch: Patch, name: str
) -> None:
    monkeypatch.setenv("G4F_API_KEY", "sk-from-env")
    client = fake(chunk("ok"))
    asyncio.run(messages_stream.main(provider=name))
    assert client.calls[0] == {"client": {"provider": name or None}}
    assert "api_key" not in client.calls[1]["create"]
    assert messages_stream.to_provider(name, "m") == (name or None)
    assert messages_stream.to_provider(None, "m") is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1", "HTTP://127.0.0.1:9/v1", "https://example.org/v1"])
def test_a_base_url_becomes_a_custom_provider_that_knows_its_model(fake: Fake, url: str) -> None:
    client = fake(chunk("ok"))
    asyncio.run(messages_stream.main(model="llama3.2", provider=url))
    provider = client.calls[0]["client"]["provider"]
    assert provider.base_url.lower() == url.lower()
    assert provider.models == ["llama3.2"]  # so g4f skips its blocking GET /models
    assert provider.api_key is None  # G4F_API_KEY is not set


def test_a_base_url_provider_is_named_without_the_user_and_password() -> None:
    provider = messages_stream.to_provider("http://user:secretpw@127.0.0.1:9/v1", "m")
    assert provider.__name__ == "127.0.0.1:9/v1"  # type: ignore[attr-defined]  # g4f shows it in -v and logs


# ---- the fake's chunks against g4f's real ones ----------------------------------------------------------


def read_by_main(chunk: Any) -> dict[str, Any]:
    """The type of each field of a chunk that main() reads (an AttributeError if one is missing)."""
    choice = chunk.choices[0]
    return {
        "choices": (type(chunk.choices), len(chunk.choices)),
        "delta.content": type(choice.delta.content),
        "delta.reasoning": type(choice.delta.reasoning),
        "finish_reason": type(choice.finish_reason),
        "provider": type(chunk.provider),
        "model": type(chunk.model),
    }


def test_the_fake_chunks_have_the_fields_of_g4f_real_ones_with_the_same_types() -> None:
    async def real_chunks() -> list[Any]:
        provider = tiny_provider("Real", Reasoning(token="think"), " text")
        client = AsyncClient(provider=provider)  # g4f's real client
        hi = [{"role": "user", "content": "hi"}]
        stream = client.chat.completions.create(model="gpt-4", messages=hi, stream=True)
        return [piece async for piece in stream]

    chunks = asyncio.run(real_chunks())
    text, thought, end = chunks[0], chunks[1], chunks[-1]
    assert (text.choices[0].delta.content, thought.choices[0].delta.reasoning) == ("Real", "think")
    assert end.choices[0].finish_reason == "stop"
    assert read_by_main(chunk("x")) == read_by_main(text)
    assert read_by_main(chunk(reasoning="y")) == read_by_main(thought)
    assert read_by_main(last()) == read_by_main(end)


def test_main_streams_g4f_real_client_and_says_who_answered(
    monkeypatch: Patch, capsys: Capture, caplog: Logs
) -> None:
    provider = tiny_provider(Reasoning(token="think"), "Real", " text")
    monkeypatch.setattr(messages_stream, "to_provider", lambda provider_, model: provider)
    caplog.set_level(logging.INFO, logger="messages_stream")
    assert asyncio.run(messages_stream.main()) == "Real text"
    out, err = capsys.readouterr()
    assert (out, err) == ("Real text" + final_line("Real text"), "think\n")
    assert info_records(caplog) == ["TinyProvider answered with gpt-4"]


# ---- describe(): one plain line for each kind of failure ------------------------------------------------


def connector_error(number: int, reason: str) -> aiohttp.ClientConnectorError:
    """The error aiohttp raises when it cannot connect: `number` is the errno (a resolver's is negative)."""
    key = SimpleNamespace(host="127.0.0.1", port=5, ssl=None)
    return aiohttp.ClientConnectorError(key, OSError(number, reason))  # type: ignore[arg-type]


def retry_error(first: Exception) -> RetryProviderError:
    """g4f's error when every provider failed: its text lists them, and the first one's error is chained."""
    error = RetryProviderError("RetryProvider failed:\nA: RuntimeError: first\nB: RuntimeError: second")
    error.__cause__ = first
    return error


def broken_request(url: str | None) -> requests.ConnectionError:
    """requests' error for a look-up that could not connect, with the request it made (or none)."""
    request = requests.Request("GET", url).prepare() if url else None
    return requests.ConnectionError("Max retries exceeded", request=request)


URL = "http://127.0.0.1:5/v1"
REGISTRY_URL = "https://g4f.dev/dist/js/providers.json"
DESCRIBED: dict[str, tuple[Exception, str, str]] = {
    "stdout": (
        OSError(28, "No space left on device"),
        "stdout",
        "stdout failed: [Errno 28] No space left on device",
    ),
    "main-timeout": (
        TimeoutError("no response from the provider within 2 s"),
        URL,
        "no response from the provider within 2 s",
    ),
    "bare-timeout": (TimeoutError(), URL, f"no response from {URL}"),
    "registry-unreachable": (
        broken_request(REGISTRY_URL),
        messages_stream.REGISTRY,
        f"cannot reach g4f's provider registry ({REGISTRY_URL}); check the network and any proxy settings",
    ),
    "lookup-unreachable": (
        broken_request(f"{URL}/models"),
        URL,
        f"cannot reach {URL} ({URL}/models); check the network and any proxy settings",
    ),
    "lookup-no-request": (
        broken_request(None),
        "SomeProvider",
        "cannot reach SomeProvider; check the network and any proxy settings",
    ),
    "registry-broken": (
        requests.JSONDecodeError("Expecting value", "<html>", 0),
        messages_stream.REGISTRY,
        "g4f's provider registry sent no usable list of providers; try again later",
    ),
    "unknown-provider": (
        ProviderNotFoundError("Provider not found: NoSuch"),
        "NoSuch",
        f"unknown provider 'NoSuch'; list the valid names with: {messages_stream.LIST}",
    ),
    "every-provider-failed": (
        retry_error(RuntimeError("Error during CopilotApp interaction: 500")),
        "g4f's default provider",
        "every provider that g4f tried failed; the first: Error during CopilotApp interaction: 500",
    ),
    "every-provider-failed-long": (
        retry_error(RuntimeError("x" * 400)),
        "g4f's default provider",
        "every provider that g4f tried failed; the first: " + "x" * 150,
    ),
    "every-provider-failed-unchained": (
        RetryProviderError("RetryProvider failed:\nA: boom"),
        "g4f's default provider",
        "every provider that g4f tried failed; the first: RetryProvider failed: A: boom",
    ),
    "connection-refused": (
        connector_error(111, "Connect call failed"),
        URL,
        f"cannot connect to {URL} (connection refused)",
    ),
    "name-unresolved": (
        connector_error(-2, "Name or service not known"),
        URL,
        f"cannot connect to {URL} (name or service not known)",
    ),
    "cut-payload": (
        aiohttp.ClientPayloadError("Response payload is not completed"),
        URL,
        f"the connection to {URL} broke off mid-stream",
    ),
    "cut-disconnected": (
        aiohttp.ServerDisconnectedError(),
        URL,
        f"the connection to {URL} broke off mid-stream",
    ),
    "refused-401": (
        MissingAuthError("Error 401: Incorrect API key"),
        URL,
        f"{URL} refused the request (Error 401: Incorrect API key); check G4F_API_KEY",
    ),
    "no-data-line": (
        UnboundLocalError("cannot access local variable 'x'"),
        URL,
        f"{URL} did not answer as an OpenAI-compatible API (an HTML page?); check the URL",
    ),
    "other": (RuntimeError("boom"), "g4f's default provider", "g4f's default provider failed: boom"),
    "other-without-words": (RuntimeError(), "SomeProvider", "SomeProvider failed: RuntimeError"),
    "other-on-lines": (ValueError("upstream\nis  down"), URL, f"{URL} failed: upstream is down"),
}


@pytest.mark.parametrize(("error", "where", "line"), DESCRIBED.values(), ids=DESCRIBED)
def test_each_kind_of_failure_is_one_plain_line_that_says_where(
    error: Exception, where: str, line: str
) -> None:
    assert messages_stream.describe(error, where) == f"error: {line}"


def test_shown_keeps_the_error_of_a_write_that_failed() -> None:
    for isatty in (lambda: False, lambda: True):  # a file or a pipe, and a terminal
        with open("/dev/full", "w") as full:  # a full disk
            full.isatty = isatty  # type: ignore[method-assign]
            shown = messages_stream.Shown(full)
            assert shown.failed is None
            with pytest.raises(OSError) as no_space:
                shown.write("Hi")
            assert no_space.value.errno == errno.ENOSPC
            assert shown.failed is no_space.value  # the very error the write raised
            with contextlib.suppress(OSError):  # its close flushes, and fails too
                full.close()


def test_secrets_are_masked_and_short_dummy_keys_are_left_alone(monkeypatch: Patch) -> None:
    url = "http://user:secretpw@127.0.0.1:1/v1"
    assert messages_stream.hide(url) == "http://***@127.0.0.1:1/v1"
    monkeypatch.setenv("G4F_API_KEY", "sk-secret-123")
    assert messages_stream.hide("Bearer sk-secret-123") == "Bearer ***"
    for dummy in ("1", "ollama", "EMPTY"):
        monkeypatch.setenv("G4F_API_KEY", dummy)
        assert messages_stream.hide("http://127.0.0.1:11434/v1 ollama") == "http://127.0.0.1:11434/v1 ollama"


# ---- Shown: what reaches stdout and stderr --------------------------------------------------------------


def terminal() -> io.StringIO:
    """A stream that says it is a terminal."""
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    return stream


HOSTILE = "a\tb\n\x1b]52;c;aGk=\x07\x1b[31mred\r\x9b"  # a clipboard write, a colour, a carriage return, CSI


def test_on_a_terminal_control_characters_are_shown_and_elsewhere_passed_unchanged(
    fake: Fake, capsys: Capture
) -> None:
    shown = terminal()
    messages_stream.Shown(shown).write(HOSTILE)
    assert shown.getvalue() == "a\tb\n^[]52;c;aGk=^G^[[31mred^M\\x9b"
    fake(chunk(reasoning=HOSTILE), chunk(HOSTILE), last())  # capsys's streams are no terminal
    assert messages_stream.cli(["hi"]) == 0
    assert capsys.readouterr() == (HOSTILE + final_line(HOSTILE), HOSTILE + "\n")


def test_every_control_character_but_tab_and_newline_is_made_visible_and_nothing_else() -> None:
    controls = {*range(32), *range(127, 160)} - {9, 10}  # C0, DEL and C1
    for code in [*range(256), 0x2028, 0x20AC, 0x1F600]:
        stream = terminal()
        messages_stream.Shown(stream).write(chr(code))
        shown = stream.getvalue()
        if code in controls:
            assert shown != chr(code) and shown.isprintable(), code
        else:  # tab, newline and every printable character, NBSP included, pass as they are
            assert shown == chr(code), code


def test_stderr_on_a_terminal_is_dimmed_write_by_write_unless_no_color(monkeypatch: Patch) -> None:
    dimmed = terminal()
    stderr = messages_stream.Shown(dimmed, dim=True)
    stderr.write("think")
    stderr.write("ing\x1b")
    stderr.write("")  # the reasoning's line end when there was none: no empty pair of escapes
    assert dimmed.getvalue() == "\x1b[2mthink\x1b[0m\x1b[2ming^[\x1b[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    plain = terminal()
    messages_stream.Shown(plain, dim=True).write("thinking\x1b")
    assert plain.getvalue() == "thinking^["


def test_each_write_reaches_the_stream_underneath_at_once() -> None:
    buffered = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # holds text back until flushed
    assert messages_stream.Shown(buffered).write("Hel") == 3  # as io's write() says: what it took
    assert buffered.buffer.getvalue() == b"Hel"


# ---- the command line, in-process -----------------------------------------------------------------------


def test_ctrl_c_mid_stream_keeps_the_partial_text_and_exits_130(
    fake: Fake, deadlines: list[Timer], capsys: Capture
) -> None:
    fake(chunk("Hel"), to_self(signal.SIGINT), chunk("never"))
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi"])
    assert exit.value.code == 130
    out, err = capsys.readouterr()
    assert (out, err) == ("Hel" + final_line("Hel"), "")
    assert [deadline.args for deadline in deadlines] == [[130]]


def test_after_the_first_signal_the_next_ones_are_blocked_until_the_end(
    fake: Fake, deadlines: list[Timer]
) -> None:
    fake(chunk("Hel"), to_self(signal.SIGTERM), chunk("never"))
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi"])
    assert exit.value.code == 143
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # while the run ends, a second signal waits
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGALRM} <= blocked


@pytest.mark.parametrize(("code", "exits"), [(130, 130), (143, 143), ("error: no response", 1)])
def test_the_first_signal_arms_a_2_s_deadline_and_a_second_one_changes_nothing(
    deadlines: list[Timer], monkeypatch: Patch, code: int | str, exits: int
) -> None:
    exited: list[int] = []
    monkeypatch.setattr(os, "_exit", exited.append)  # what the deadline would end the process with
    with pytest.raises(SystemExit) as first:
        messages_stream.stop(code)  # it holds back SIGINT, SIGTERM and SIGALRM
    assert first.value.code == code
    [deadline] = deadlines
    assert (deadline.interval, deadline.daemon, deadline.started) == (2.0, True, True)
    deadline.function(*deadline.args)  # what the timer's thread does in 2 s, if the process is still there
    assert exited == [exits]
    messages_stream.stop(143)  # one that had come before they were held back: no SystemExit, no timer
    assert len(deadlines) == 1


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


def test_a_piece_already_shown_when_ctrl_c_comes_is_in_the_final_text(
    fake: Fake, deadlines: list[Timer], monkeypatch: Patch
) -> None:
    fake(chunk("Hel"), chunk("lo"), chunk(" never"))
    stdout = InterruptedAfter("lo")
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi"])
    assert exit.value.code == 130
    stdout.flush()
    assert stdout.buffer.getvalue().decode() == "Hello" + final_line("Hello")  # type: ignore[attr-defined]


def test_cli_passes_its_options_to_main(monkeypatch: Patch) -> None:
    calls: list[tuple[Any, ...]] = []

    async def recorded(*args: Any) -> str:
        calls.append(args)
        return "ok"

    monkeypatch.setattr(messages_stream, "main", recorded)
    monkeypatch.setattr(g4f_debug, "logging", False)  # what --debug changes in g4f, put back after the test
    monkeypatch.setattr(g4f_debug, "log_handler", g4f_debug.log_handler)
    args = ["a question", "-s", "Be terse.", "--model", "m1", "--provider", "SomeProvider", "--timeout", "7"]
    assert messages_stream.cli([*args, "-v", "--debug"]) == 0
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "a question"}]
    assert calls == [(messages, "m1", "SomeProvider", 7.0)]
    assert messages_stream.log.getEffectiveLevel() == logging.INFO  # -v: who answered is shown
    assert g4f_debug.logging is True  # --debug: g4f's own log is on


def test_verbose_shows_who_answered_and_no_other_librarys_info_records(
    fake: Fake, monkeypatch: Patch, capsys: Capture
) -> None:
    # As in a process of its own: no handler on the root logger yet (pytest puts its own there).
    monkeypatch.setattr(logging.root, "handlers", [])  # and the handler cli() adds goes with this list
    monkeypatch.setattr(logging.root, "level", logging.WARNING)
    other = logging.getLogger("some.library")
    fake(chunk("Hi"), Call(lambda: other.info("a library's own news")), last())
    assert messages_stream.cli(["hi", "-v", "--provider", "SomeProvider"]) == 0
    assert capsys.readouterr().err == "FakeProvider answered with fake-model\n"


def test_cli_waits_60_s_for_a_chunk_and_leaves_the_provider_to_g4f_by_default(
    monkeypatch: Patch, loaded: list[str]
) -> None:
    calls: list[tuple[str, float]] = []

    async def recorded(messages: Any, model: str, provider: str, timeout: float) -> str:
        calls.append((provider, timeout))
        return "ok"

    monkeypatch.setattr(messages_stream, "main", recorded)
    assert messages_stream.cli(["hi"]) == 0
    assert calls == [("", 60.0)]
    assert loaded == ["loaded"]  # g4f's provider list, first, apart
    assert messages_stream.log.getEffectiveLevel() == logging.WARNING  # without -v, not who answered


def test_a_silence_ends_the_command_with_one_error_line(fake: Fake, capsys: Capture) -> None:
    fake(chunk("Hel"), Sleep(0.53), chunk("never"))
    assert messages_stream.cli(["hi", "--timeout", "0.5"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("Hel" + final_line("Hel"), "error: no response from the provider within 0.5 s\n")


def test_a_broken_pipe_in_the_provider_is_its_failure_not_a_reader_gone(fake: Fake, capfd: Capture) -> None:
    # Exit 141 is for stdout's reader gone (`| head`); a provider's own socket breaking is an error line.
    fake(chunk("Hi"), BrokenPipeError(32, "Broken pipe"))
    assert messages_stream.cli(["hi", "--provider", "SomeProvider"]) == 1
    out, err = capfd.readouterr()  # at the level of file descriptors: stdout must not have been swapped
    assert (out, err) == ("Hi" + final_line("Hi"), "error: SomeProvider failed: [Errno 32] Broken pipe\n")


def block(seconds: float) -> None:
    """Block the calling thread: what a look-up with no timeout does, and no asyncio timeout can end."""
    time.sleep(seconds)


@pytest.mark.parametrize(
    ("blocked", "provider", "where"),
    [
        ("registry", [], "g4f's provider registry"),  # g4f's download of its list: no timeout
        ("stream", [], "g4f's default provider"),  # a provider's own look-up (KiloCode's GET /models, say)
        ("stream", ["--provider", "http://user:secretpw@127.0.0.1:5/v1"], "http://***@127.0.0.1:5/v1"),
    ],
    ids=["registry", "default-provider", "base-url"],
)
def test_the_alarm_ends_a_call_that_blocks_the_event_loop_and_names_where(
    fake: Fake,
    deadlines: list[Timer],
    monkeypatch: Patch,
    capsys: Capture,
    blocked: str,
    provider: list[str],
    where: str,
) -> None:
    if blocked == "registry":
        monkeypatch.setattr(messages_stream, "load_provider_list", partial(block, 30))
    fake(Block(30), chunk("never"))
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi", "--timeout", "0.5", *provider])
    assert time.monotonic() - started < 10  # not the 30 s of the blocking call
    assert exit.value.code == f"error: no response from {where} within 0.5 s"
    assert capsys.readouterr().out == ("" if blocked == "registry" else final_line(""))  # main() ran, or not
    assert signal.SIGALRM in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # it cannot ring a second time
    assert [deadline.args for deadline in deadlines] == [[1]]


def test_the_alarm_never_rings_while_the_event_loop_runs(fake: Fake) -> None:
    fake(*[item for i in range(6) for item in (Sleep(0.2), chunk(f"{i} "))], last())  # 1.2 s, --timeout 0.4
    assert messages_stream.cli(["hi", "--timeout", "0.4"]) == 0
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_IGN  # and after the run, it can ring no more


def test_a_heartbeat_that_comes_after_the_run_rings_unheard(fake: Fake, monkeypatch: Patch) -> None:
    # While g4f's connections close, the loop still runs, and a heartbeat may re-arm the alarm once more.
    async def slow_close() -> None:
        await asyncio.sleep(0.3)  # three heartbeats, one every 0.1 s

    monkeypatch.setattr(g4f.requests, "close_shared_connectors", slow_close, raising=False)  # 8.5.0 on
    fake(chunk("ok"), last())
    assert messages_stream.cli(["hi", "--timeout", "0.4"]) == 0
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # re-armed after main() had returned...
    time.sleep(0.6)  # ...and rung by now, ending nothing: a ring would raise SystemExit here
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_without_setitimer_a_silence_still_ends_the_command_with_one_error_line(
    fake: Fake, monkeypatch: Patch, capsys: Capture
) -> None:
    fake(chunk("Hel"), Sleep(0.53), chunk("never"))
    with monkeypatch.context() as patch:
        patch.delattr(signal, "setitimer")  # as on Windows: asyncio's timeout in main() alone ends it
        assert messages_stream.cli(["hi", "--timeout", "0.5"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("Hel" + final_line("Hel"), "error: no response from the provider within 0.5 s\n")


def test_without_setitimer_there_is_no_alarm_and_the_stream_still_works(
    fake: Fake, monkeypatch: Patch
) -> None:
    alarm = signal.getsignal(signal.SIGALRM)
    fake(chunk("ok"), last())
    with monkeypatch.context() as patch:
        patch.delattr(signal, "setitimer")  # as on Windows
        assert messages_stream.cli(["hi", "--timeout", "0.5"]) == 0
    assert signal.getsignal(signal.SIGALRM) is alarm


def test_debug_sends_each_g4f_log_line_whole_to_stderr_with_the_key_masked(
    fake: Fake, monkeypatch: Patch, capsys: Capture
) -> None:
    monkeypatch.setattr(g4f_debug, "logging", False)  # what cli() changes in g4f, put back after the test
    monkeypatch.setattr(g4f_debug, "log_handler", g4f_debug.log_handler)
    monkeypatch.setenv("G4F_API_KEY", "sk-secret-123")
    fake(chunk("ok"), last())
    assert messages_stream.cli(["hi", "--debug", "--provider", "SomeProvider"]) == 0
    g4f_debug.log("Perplexity:", "Failed to get user info")  # g4f logs some lines in parts
    g4f_debug.log("Request headers:", {"Authorization": "Bearer sk-secret-123"})  # and a key, in some
    err = capsys.readouterr().err
    assert "Perplexity: Failed to get user info\n" in err
    assert "Request headers: {'Authorization': 'Bearer ***'}\n" in err
    assert "sk-secret-123" not in err


def test_cli_gives_the_streams_back_as_it_found_them(fake: Fake, monkeypatch: Patch) -> None:
    screen = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    screen.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    fake(chunk("ok"), last())
    assert messages_stream.cli(["hi"]) == 0
    assert sys.stdout is screen and sys.stderr is screen  # not the Shown streams it put in front
    screen.flush()
    assert screen.buffer.getvalue().decode() == "ok" + final_line("ok")


def test_importing_the_module_does_nothing(isolated: Path) -> None:
    with closed_port() as port:
        closed = f"http://127.0.0.1:{port}"  # were anything fetched, it would fail through this proxy
        result = subprocess.run(
            [sys.executable, "-c", "import messages_stream"],
            capture_output=True,
            text=True,
            cwd=SCRIPT.parent,
            timeout=WAIT,
            env=clean_env(isolated, HTTPS_PROXY=closed, HTTP_PROXY=closed),
        )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not (isolated / "g4f").exists() and not (isolated / "cache").exists()
    assert not (isolated / ".g4f").exists()  # where a g4f before 8.8.0 keeps its files


def test_the_command_leaves_no_connection_open(capsys: Capture) -> None:
    # g4f 8.8.6 never closes its shared aiohttp connector; left open, it warns "Unclosed connector" at exit.
    with openai_server() as server:
        assert messages_stream.cli(["--provider", server.url]) == 0
        for _ in range(250):  # the server's thread sees the close a moment later
            if server.connections() == 0:
                break
            time.sleep(0.02)
        assert server.connections() == 0
    assert capsys.readouterr().out == "Hello there!" + final_line("Hello there!")


@pytest.mark.skipif(
    not hasattr(g4f.requests, "get_shared_connector"), reason="this g4f shares no connector between calls"
)
def test_main_leaves_g4f_shared_connections_open_for_others() -> None:
    async def two_in_a_row(url: str) -> tuple[str, str]:
        try:
            first = await messages_stream.main(provider=url)
            shared = g4f.requests.get_shared_connector()  # the one g4f keeps for this loop: the same, not new
            second = await messages_stream.main(provider=url)
            assert g4f.requests.get_shared_connector() is shared and not shared.closed
            return first, second
        finally:
            await g4f.requests.close_shared_connectors()  # what the host does once, at its end

    with openai_server() as server:
        assert asyncio.run(two_in_a_row(server.url)) == ("Hello there!", "Hello there!")
