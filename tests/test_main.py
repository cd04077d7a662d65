"""main() and the command line in-process, with g4f's client replaced by a fake that streams chunks we choose.

main() is an ordinary coroutine: it raises ordinary exceptions after printing the final line, and touches no
signal, timer or shared state. One test runs g4f's real AsyncClient with a tiny provider, to show that the
fake's chunks have the real shape.
"""

from __future__ import annotations

import asyncio
import io
import logging
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
import requests
from conftest import SCRIPT, clean_env, final_line
from g4f import debug as g4f_debug
from g4f.errors import RetryProviderError
from g4f.providers.base_provider import AsyncGeneratorProvider
from g4f.typing import AsyncResult, Messages
from server import openai_server

import messages_stream

ANY_PROVIDER = "g4f.providers.any_provider"  # importing it downloads g4f's registry (has_registry())


def chunk(content: Any = None, choices: bool = True, reasoning: str | None = None) -> SimpleNamespace:
    """A stand-in for g4f's ChatCompletionChunk: `choices[0].delta.content`, or no choices at all."""
    delta = SimpleNamespace(content=content, reasoning=reasoning)
    return SimpleNamespace(
        choices=[SimpleNamespace(delta=delta, finish_reason=None)] if choices else [],
        provider="FakeProvider",
        model="fake-model",
    )


def last(reason: str = "stop", prompt_tokens: int = 0, completion_tokens: int = 2) -> SimpleNamespace:
    """The last chunk, as g4f makes it: no content, a finish reason, and the usage."""
    end = chunk(None)
    end.choices[0].finish_reason = reason
    end.usage = SimpleNamespace(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
    return end


class FakeClient:
    """Records how AsyncClient and create() were called, then streams `items`: chunks are yielded,
    exceptions raised, numbers slept on (asyncio.sleep) and callables called. `create_raises` is raised
    by create() itself instead."""

    calls: list[dict[str, Any]]

    def __init__(self, items: list[Any], create_raises: BaseException | None = None) -> None:
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
            if isinstance(item, float):
                await asyncio.sleep(item)
            elif callable(item):
                item()
            else:
                yield item
                await asyncio.sleep(0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeClient]:
    """Install a FakeClient in place of g4f's AsyncClient."""

    def install(*items: Any, create_raises: BaseException | None = None) -> FakeClient:
        client = FakeClient(list(items), create_raises)
        monkeypatch.setattr(messages_stream, "AsyncClient", client)
        return client

    return install


def test_prints_each_piece_as_it_arrives_and_returns_the_whole_text(fake, capsys) -> None:
    fake(chunk("Hello"), chunk(", "), chunk("world"), last())
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
    assert "stream_timeout" not in create  # g4f's own bound costs an asyncio.wait_for per chunk


def test_a_list_of_messages_is_sent_as_it_is(fake) -> None:
    client = fake(chunk("4"))
    turns = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And doubled?"},
    ]
    asyncio.run(messages_stream.main(turns))
    assert client.calls[1]["create"]["messages"] == turns


def test_empty_choices_and_none_or_empty_content_add_nothing(fake, capsys) -> None:
    fake(chunk(choices=False), chunk(None), chunk("A"), chunk(""), chunk("B"), last())
    assert asyncio.run(messages_stream.main()) == "AB"
    assert capsys.readouterr().out == "AB" + final_line("AB")


def test_media_and_sources_are_printed_and_kept_in_their_text_form(fake, capsys) -> None:
    image = type("Image", (), {"__str__": lambda self: "![cat](https://example.org/cat.png)"})()
    fake(chunk("Look: "), chunk(image), last())
    text = asyncio.run(messages_stream.main())
    assert text == "Look: ![cat](https://example.org/cat.png)"
    assert capsys.readouterr().out == text + final_line(text)


def test_reasoning_goes_to_stderr_and_never_into_the_answer(fake, capsys) -> None:
    fake(chunk(None, reasoning="Let me think. "), chunk(None, reasoning="Done."), chunk("42"), last())
    assert asyncio.run(messages_stream.main()) == "42"
    out, err = capsys.readouterr()
    assert out == "42" + final_line("42")
    assert err == "Let me think. Done.\n"  # its line ended, so that what follows starts on a new one


def test_an_error_raised_by_create_itself_is_raised_after_the_final_line(fake, capsys) -> None:
    fake(chunk("never"), create_raises=ConnectionError("offline"))
    with pytest.raises(ConnectionError, match="offline"):
        asyncio.run(messages_stream.main())
    assert capsys.readouterr().out == final_line("")


def test_an_error_mid_stream_is_raised_as_it_is_and_keeps_the_partial_text(fake, capsys) -> None:
    fake(chunk("Hel"), chunk("lo"), RuntimeError("connection lost"))
    with pytest.raises(RuntimeError, match="connection lost"):
        asyncio.run(messages_stream.main(provider="SomeProvider"))
    assert capsys.readouterr().out == "Hello" + final_line("Hello")


def test_a_stream_without_text_raises_value_error(fake, capsys) -> None:
    fake(chunk(None), chunk(choices=False), last())
    with pytest.raises(ValueError, match=r"^the provider returned an empty response$"):
        asyncio.run(messages_stream.main())
    assert capsys.readouterr().out == final_line("")


def test_a_stream_of_reasoning_alone_says_so(fake, capsys) -> None:
    fake(chunk(None, reasoning="Hmm."), last())
    with pytest.raises(ValueError, match=r"^the provider sent only reasoning$"):
        asyncio.run(messages_stream.main())
    assert capsys.readouterr().err == "Hmm.\n"


def test_silence_before_the_first_chunk_raises_timeout_error(fake, capsys) -> None:
    fake(30.0, chunk("never"))
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):  # TimeoutError itself on 3.11+
        asyncio.run(messages_stream.main(timeout=0.3))
    assert time.monotonic() - started < 5
    assert capsys.readouterr().out == final_line("")


def test_silence_between_two_chunks_raises_timeout_error_and_keeps_what_came(fake, capsys) -> None:
    fake(chunk("Hel"), 30.0, chunk("never"))
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(messages_stream.main(timeout=0.3))
    assert capsys.readouterr().out == "Hel" + final_line("Hel")


def test_a_steady_stream_longer_than_the_timeout_is_never_cut(fake) -> None:
    pieces = [item for i in range(12) for item in (0.05, chunk(f"{i} "))]  # 0.6 s in all, timeout 0.2 s
    fake(*pieces, last())
    assert asyncio.run(messages_stream.main(timeout=0.2)) == "".join(f"{i} " for i in range(12))


def test_main_leaves_signals_and_timers_as_it_found_them(fake, capsys) -> None:
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


def test_who_answered_is_logged_at_info_with_the_usage_reported_or_estimated(fake, caplog) -> None:
    caplog.set_level(logging.INFO, logger="messages_stream")
    fake(chunk("Hi"), last(prompt_tokens=5, completion_tokens=1))
    asyncio.run(messages_stream.main())
    who, speed = caplog.messages[0].splitlines()  # one record, two lines
    assert who == "FakeProvider answered with fake-model (stop); 6 tokens, reported by the provider"
    assert speed.startswith("first piece after 0.00 s; 1 pieces in ")  # the fake's pieces come at once
    caplog.clear()
    fake(chunk("Hi"), chunk("!"), last(prompt_tokens=9))  # g4f's guess for the prompt: 1 + 16 // 4 + 4
    asyncio.run(messages_stream.main())
    assert caplog.messages[0].splitlines()[0].endswith("; 11 tokens, estimated by g4f")


def test_nothing_is_logged_without_a_handler_that_asks(fake, capsys) -> None:
    fake(chunk("Hi"), last())
    asyncio.run(messages_stream.main())
    assert capsys.readouterr().err == ""


def test_the_api_key_comes_from_g4f_api_key(fake, monkeypatch) -> None:
    monkeypatch.setenv("G4F_API_KEY", "sk-from-env")
    client = fake(chunk("ok"))
    asyncio.run(messages_stream.main())
    assert client.calls[0]["client"]["api_key"] == "sk-from-env"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1", "HTTP://127.0.0.1:9/v1", "https://example.org/v1"])
def test_a_base_url_becomes_a_custom_provider_that_knows_its_model(fake, url: str) -> None:
    client = fake(chunk("ok"))
    asyncio.run(messages_stream.main(model="llama3.2", provider=url))
    provider = client.calls[0]["client"]["provider"]
    assert provider.base_url.lower() == url.lower()
    assert provider.models == ["llama3.2"]  # so g4f skips its blocking GET /models


def test_a_provider_name_or_nothing_is_left_for_g4f(fake) -> None:
    assert messages_stream.to_provider("PollinationsAI", "m") == "PollinationsAI"
    assert messages_stream.to_provider("", "m") is None
    assert messages_stream.to_provider(None, "m") is None


# ---- The command line, in-process -----------------------------------------------------------------------


def test_ctrl_c_mid_stream_keeps_the_partial_text_and_exits_130(fake, capsys) -> None:
    fake(chunk("Hel"), lambda: os.kill(os.getpid(), signal.SIGINT), chunk("never"))
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi"])
    assert exit.value.code == 130
    out, err = capsys.readouterr()
    assert out == "Hel" + final_line("Hel")
    assert err == ""


def test_after_the_first_signal_the_next_ones_are_ignored_until_the_end(fake, capsys) -> None:
    fake(chunk("Hel"), lambda: os.kill(os.getpid(), signal.SIGTERM), chunk("never"))
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi"])
    assert exit.value.code == 143
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # while the run ends, a second signal waits
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGALRM} <= blocked


def test_a_signal_already_on_its_way_when_the_first_ends_the_run_changes_nothing() -> None:
    with pytest.raises(SystemExit) as first:
        messages_stream.stop(130)  # the first signal: it holds back SIGINT, SIGTERM and SIGALRM
    assert first.value.code == 130
    messages_stream.stop(143)  # one that had come before they were held back: no second SystemExit


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


def test_cli_passes_its_options_to_main(fake) -> None:
    client = fake(chunk("ok"))
    args = ["a question", "-s", "Be terse.", "--model", "m1", "--provider", "SomeProvider", "--timeout", "7"]
    assert messages_stream.cli(args) == 0
    assert client.calls[0] == {"client": {"provider": "SomeProvider", "api_key": None}}
    create = client.calls[1]["create"]
    assert create["model"] == "m1"
    assert create["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "a question"},
    ]


def test_cli_waits_60_s_for_a_chunk_by_default(fake, monkeypatch) -> None:
    timeouts: list[float] = []

    async def recorded(messages: Any, model: str, provider: str | None, timeout: float) -> str:
        timeouts.append(timeout)
        return "ok"

    monkeypatch.setattr(messages_stream, "main", recorded)
    assert messages_stream.cli(["hi"]) == 0
    assert timeouts == [60.0]


def test_the_belt_ends_a_call_that_blocks_the_event_loop(fake, capsys) -> None:
    # g4f's registry download is a blocking requests.get with no timeout: no asyncio timeout can end it.
    fake(lambda: time.sleep(30), chunk("never"))
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi", "--timeout", "0.5"])
    assert time.monotonic() - started < 5
    assert exit.value.code == "error: no response from g4f's provider registry within 0.5 s"
    assert capsys.readouterr().out == final_line("")
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # and nothing is left armed


def test_the_belt_names_the_default_provider_once_g4f_has_its_registry(fake, monkeypatch, capsys) -> None:
    # A provider's own blocking look-up (KiloCode's GET /models, say) hangs, not the registry.
    monkeypatch.setitem(sys.modules, ANY_PROVIDER, SimpleNamespace(AnyProvider=object))
    fake(lambda: time.sleep(30), chunk("never"))
    with pytest.raises(SystemExit) as exit:
        messages_stream.cli(["hi", "--timeout", "0.5"])
    assert exit.value.code == "error: no response from g4f's default provider within 0.5 s"


def test_the_belt_never_rings_while_the_event_loop_runs(fake) -> None:
    fake(*[item for i in range(6) for item in (0.2, chunk(f"{i} "))], last())  # 1.2 s, against --timeout 0.4
    assert messages_stream.cli(["hi", "--timeout", "0.4"]) == 0
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_without_setitimer_there_is_no_belt_and_the_stream_still_works(fake, monkeypatch) -> None:
    alarm = signal.getsignal(signal.SIGALRM)
    fake(chunk("ok"), last())
    with monkeypatch.context() as patch:
        patch.delattr(signal, "setitimer")  # as on Windows
        assert messages_stream.cli(["hi", "--timeout", "0.5"]) == 0
    assert signal.getsignal(signal.SIGALRM) is alarm


def test_all_providers_failed_is_one_short_line_with_the_first_reason(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, ANY_PROVIDER, SimpleNamespace(AnyProvider=object))
    reasons = [f"Provider{i}: ResponseError: " + "a very long explanation " * 20 for i in range(10)]
    error = RetryProviderError("RetryProvider failed:\n" + "\n".join(reasons))
    line = "error: " + messages_stream.describe(error, None, 60)
    assert line.startswith("error: all 10 providers that g4f tried failed; the first, Provider0: Response")
    assert len(line) <= 200


def test_a_failure_of_the_default_provider_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, ANY_PROVIDER, SimpleNamespace(AnyProvider=object))
    assert messages_stream.describe(RuntimeError("boom"), None, 60) == "g4f's default provider failed: boom"


def test_a_registry_that_sends_no_json_is_named_as_the_registry(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, ANY_PROVIDER, raising=False)  # its import failed
    error = requests.JSONDecodeError("Expecting value", "<html>", 0)
    assert messages_stream.describe(error, None, 60) == (
        "g4f's provider registry (https://g4f.dev/dist/js/providers.json) sent no usable list of providers; "
        "try again later"
    )


def test_secrets_are_masked_and_short_dummy_keys_are_left_alone(monkeypatch) -> None:
    url = "http://user:secretpw@127.0.0.1:1/v1"
    assert messages_stream.hide(url) == "http://***@127.0.0.1:1/v1"
    monkeypatch.setenv("G4F_API_KEY", "sk-secret-123")
    assert messages_stream.hide("Bearer sk-secret-123") == "Bearer ***"
    for dummy in ("1", "ollama", "EMPTY"):
        monkeypatch.setenv("G4F_API_KEY", dummy)
        assert messages_stream.hide("http://127.0.0.1:11434/v1 ollama") == "http://127.0.0.1:11434/v1 ollama"


def test_on_a_terminal_control_characters_are_shown_and_elsewhere_passed_unchanged() -> None:
    hostile = "a\tb\n\x1b]52;c;aGk=\x07\x1b[31mred\r\x9b"
    pipe = io.StringIO()
    assert messages_stream.for_terminal(pipe) is pipe
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    messages_stream.for_terminal(terminal).write(hostile)
    assert terminal.getvalue() == "a\tb\n^[]52;c;aGk=^G^[[31mred^M\\x9b"
    dimmed = io.StringIO()
    dimmed.isatty = lambda: True  # type: ignore[method-assign]
    messages_stream.for_terminal(dimmed, "\x1b[2m").write("thinking")
    assert dimmed.getvalue() == "\x1b[2mthinking\x1b[0m"


def test_every_control_character_but_tab_and_newline_is_made_visible_and_nothing_else() -> None:
    controls = {*range(32), *range(127, 160)} - {9, 10}  # C0, DEL and C1
    for code in range(256):
        terminal = io.StringIO()
        terminal.isatty = lambda: True  # type: ignore[method-assign]
        messages_stream.for_terminal(terminal).write(chr(code))
        shown = terminal.getvalue()
        if code in controls:
            assert shown != chr(code) and shown.isprintable(), code
        else:  # tab, newline and every printable character, NBSP included, pass as they are
            assert shown == chr(code), code


def test_the_time_to_the_first_piece_is_measured(fake, caplog) -> None:
    caplog.set_level(logging.INFO, logger="messages_stream")
    fake(0.2, chunk("Hi"), last())
    asyncio.run(messages_stream.main())
    first = float(caplog.messages[0].splitlines()[1].split()[3])  # "first piece after 0.20 s; ..."
    assert 0.2 <= first < 5


def test_debug_sends_each_g4f_log_line_whole_to_stderr(fake, monkeypatch, capsys) -> None:
    monkeypatch.setattr(g4f_debug, "logging", False)  # what cli() changes in g4f, put back after the test
    monkeypatch.setattr(g4f_debug, "log_handler", g4f_debug.log_handler)
    fake(chunk("ok"), last())
    assert messages_stream.cli(["hi", "--debug"]) == 0
    g4f_debug.log("Perplexity:", "Failed to get user info")  # g4f logs some lines in parts
    assert "Perplexity: Failed to get user info\n" in capsys.readouterr().err


def test_cli_gives_the_terminal_back_as_it_found_it(fake, monkeypatch) -> None:
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    fake(chunk("ok"), last())
    assert messages_stream.cli(["hi"]) == 0
    assert sys.stdout is terminal and sys.stderr is terminal  # not the filters it put in front
    terminal.flush()
    assert terminal.buffer.getvalue().decode() == "ok" + final_line("ok")  # type: ignore[attr-defined]


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


def test_the_command_leaves_no_connection_open(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # g4f 8.8.6 never closes its shared aiohttp connector; left open, it warns "Unclosed connector" at exit.
    with openai_server() as server:
        assert messages_stream.cli(["--provider", server.url]) == 0
        for _ in range(50):  # the server thread sees the close a moment later
            if server.connections() == 0:
                break
            time.sleep(0.02)
        assert server.connections() == 0


def test_main_leaves_g4f_shared_connections_open_for_others(isolated: Path) -> None:
    async def two_in_a_row(url: str) -> tuple[str, str]:
        try:
            first = await messages_stream.main(provider=url)
            return first, await messages_stream.main(provider=url)  # on the same connector, still open
        finally:
            await messages_stream.close_shared_connectors()  # what the host does once, at its end

    with openai_server() as server:
        assert asyncio.run(two_in_a_row(server.url)) == ("Hello there!", "Hello there!")


class TinyProvider(AsyncGeneratorProvider):
    """The smallest g4f provider: it streams three pieces of text."""

    working = True
    supports_stream = True

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, **kwargs: Any) -> AsyncResult:
        for piece in ("Real", " g4f", " chunks"):
            yield piece


def test_the_real_client_yields_chunks_shaped_like_the_fake_ones(monkeypatch, capsys, caplog) -> None:
    monkeypatch.setattr(messages_stream, "to_provider", lambda provider, model: TinyProvider)
    caplog.set_level(logging.INFO, logger="messages_stream")
    assert asyncio.run(messages_stream.main()) == "Real g4f chunks"
    assert capsys.readouterr().out == "Real g4f chunks" + final_line("Real g4f chunks")
    assert caplog.messages[0].startswith("TinyProvider answered with gpt-4 (stop); ")
    assert caplog.messages[0].splitlines()[0].endswith(" tokens, estimated by g4f")  # TinyProvider sent none
