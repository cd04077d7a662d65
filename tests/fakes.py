"""The fake client that the in-process tests stream from, and the one tiny real g4f provider.

FakeClient stands in for g4f's AsyncClient (conftest's `fake` fixture installs it in messages_stream).
Its create() records its arguments and returns a stream of the items a test gives, each of which says
what it does:

    chunk("Hel")            a chunk with that text, shaped as g4f's ChatCompletionChunk
    chunk(reasoning="...")  a thinking model's reasoning, no text
    chunk(choices=False)    a chunk without a choice
    last()                  g4f's last chunk: no text, a finish reason, who answered
    Sleep(0.2)              wait 0.2 s, letting the event loop run (a slow provider)
    Block(30)               block the whole event loop for 30 s (as g4f's look-ups do: no timeout reaches it)
    Call(function)          call function() mid-stream (to send a signal, say)
    an exception            raise it mid-stream

test_main.py checks that chunk() and last() have the fields of g4f's real chunks that main() reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from g4f.providers.base_provider import AsyncGeneratorProvider
from g4f.typing import AsyncResult, Messages

PROVIDER, MODEL = "FakeProvider", "fake-model"  # who a fake chunk says answered


def chunk(content: Any = None, reasoning: str | None = None, choices: bool = True) -> SimpleNamespace:
    """A chunk as g4f yields it: `choices[0].delta` carries the text or the reasoning."""
    delta = SimpleNamespace(content=content, reasoning=reasoning)
    choice = SimpleNamespace(delta=delta, finish_reason=None)
    return SimpleNamespace(choices=[choice] if choices else [], provider=PROVIDER, model=MODEL)


def last(reason: str = "stop") -> SimpleNamespace:
    """g4f's last chunk: no text, a finish reason."""
    end = chunk(None)
    end.choices[0].finish_reason = reason
    return end


@dataclass
class Sleep:
    """Wait this long without blocking the event loop, as a slow provider does."""

    seconds: float


@dataclass
class Block:
    """Block the whole event loop this long, as g4f's blocking look-ups do."""

    seconds: float


@dataclass
class Call:
    """Call this function mid-stream."""

    function: Callable[[], object]


class FakeClient:
    """Records how AsyncClient and create() were called, then streams the items (see the module's text).
    `create_raises` is raised by create() itself, before any streaming, as g4f's registry look-up does."""

    def __init__(self, items: list[Any], create_raises: BaseException | None = None) -> None:
        self.items = items
        self.create_raises = create_raises
        self.calls: list[dict[str, Any]] = []
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
            if isinstance(item, Sleep):
                await asyncio.sleep(item.seconds)
            elif isinstance(item, Block):
                time.sleep(item.seconds)
            elif isinstance(item, Call):
                item.function()
            else:
                yield item
                await asyncio.sleep(0)  # as a real stream yields to the loop between chunks


def tiny_provider(*items: Any) -> type[AsyncGeneratorProvider]:
    """The smallest real g4f provider: it yields `items` (text, g4f's Reasoning, Sources, ImageResponse)."""

    class TinyProvider(AsyncGeneratorProvider):
        working = True
        supports_stream = True

        @classmethod
        async def create_async_generator(cls, model: str, messages: Messages, **kwargs: Any) -> AsyncResult:
            for item in items:
                yield item

    return TinyProvider
