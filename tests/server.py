"""Loopback peers for the end-to-end tests: an OpenAI-compatible server with fault modes, and a silent one.

Each peer binds to 127.0.0.1 on a port the OS picks, runs in a thread of its own, and is stopped when
its `with` block ends, so tests can run side by side and never touch another machine.

Run on its own, it serves the README's examples until Ctrl-C, and prints its base URL first:

    python tests/server.py [--cut] [--port N] [--delay S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# What the server can do instead of a clean `data: [DONE]` ending.
FAULTS = ("cut", "hang")
# The reply of the README's "Example output", in the pieces a real provider might send.
EXAMPLE = ["Hello", " there!", " How", " can", " I", " help", " you", " today?"]


def delta(content: Any = None, **extra: Any) -> dict[str, Any]:
    """One chat.completion.chunk whose first choice carries `content` (and any other delta fields)."""
    fields = {"content": content, **extra}
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "test-model",
        "choices": [{"index": 0, "delta": fields, "finish_reason": None}],
    }


def text_events(pieces: Sequence[str]) -> list[Any]:
    """The events of an ordinary answer: one chunk per piece, then a chunk with only a finish reason."""
    final = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "test-model",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    return [delta(piece) for piece in pieces] + [final]


@dataclass
class Server:
    """What a test sets up (the reply) and reads back (the requests the server saw)."""

    events: list[Any] = field(default_factory=lambda: text_events(["Hello", " there", "!"]))
    delay: float = 0.0  # seconds between two events
    fault: str | None = None  # None ends with [DONE]; "cut" drops the connection; "hang" goes silent
    status: int = 200  # anything else answers the chat request with this status and `error_body`
    error_body: Any = None  # a dict is sent as JSON, a str as plain text
    models_status: int = 200
    gate: threading.Event | None = None  # if given, the events after the first wait until it is set
    page: str | None = None  # if given, every GET and POST answers 200 with this HTML page instead
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    first_write: float | None = None  # time.monotonic() of the first write, for the benchmark
    sent: int = 0  # how many of `events` have been written so far
    connections: Callable[[], int] = lambda: 0  # how many client connections are open right now


SERVER = web.AppKey("server", Server)


def _page(server: Server) -> web.Response | None:
    """The HTML page that answers every request, when the server was given one (a captive portal, a
    web UI at the API's URL); else None."""
    if server.page is None:
        return None
    return web.Response(text=server.page, content_type="text/html", charset="utf-8")


async def _any(request: web.Request) -> web.Response:
    server: Server = request.app[SERVER]
    page = _page(server)
    if page is None:
        raise web.HTTPNotFound()  # aiohttp's own 404, as without this route
    return page


async def _models(request: web.Request) -> web.Response:
    server: Server = request.app[SERVER]
    if page := _page(server):
        return page
    if server.models_status != 200:
        return web.json_response({"error": {"message": "not found"}}, status=server.models_status)
    return web.json_response({"object": "list", "data": [{"id": "test-model", "object": "model"}]})


async def _chat(request: web.Request) -> web.StreamResponse:
    server: Server = request.app[SERVER]
    server.requests.append({"headers": dict(request.headers), "json": await request.json()})
    if page := _page(server):
        return page
    if server.status != 200:
        if isinstance(server.error_body, str):
            return web.Response(status=server.status, text=server.error_body)
        return web.json_response(server.error_body, status=server.status)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the client went away (a signal, a timeout)
        await _stream(server, request, response)
    return response


async def _stream(server: Server, request: web.Request, response: web.StreamResponse) -> None:
    for number, event in enumerate(server.events):
        if number == 1 and server.gate is not None:
            while not server.gate.is_set():  # polled, so that stopping the server cancels the wait
                await asyncio.sleep(0.01)
        line = event if isinstance(event, str) else json.dumps(event)
        await response.write(f"data: {line}\n\n".encode())
        server.sent += 1
        if server.first_write is None:
            server.first_write = time.monotonic()
        if server.delay:
            await asyncio.sleep(server.delay)
    if server.fault == "cut":
        await asyncio.sleep(0.2)  # let the client read what was sent, as on a real network
        assert request.transport is not None
        request.transport.close()  # no [DONE] and no end of the chunked body: a broken stream
        return
    if server.fault == "hang":
        await asyncio.sleep(3600)  # cancelled when the server stops
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()


async def stop(runner: web.AppRunner, *others: asyncio.AbstractServer) -> None:
    """Close the server (and `others`), then end the requests still held (a "hang" would outlive them)."""
    for other in others:
        other.close()
    await runner.cleanup()
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@contextlib.contextmanager
def openai_server(port: int = 0, **reply: Any) -> Iterator[Server]:
    """Serve `GET /v1/models` and streaming `POST /v1/chat/completions` on 127.0.0.1 until the block ends.

    `reply` sets the Server's fields: events, delay, fault, status, error_body, models_status, gate, and
    page (an HTML page that answers every GET and POST with 200, as a web UI or a captive portal does).

    `port` 0 lets the OS pick a free one, so that tests can run side by side.
    """
    server = Server(**reply)
    assert server.fault in (None, *FAULTS), server.fault
    app = web.Application()
    app[SERVER] = server
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/{path:.*}", _any)  # any other page: `page` if given, else 404
    app.router.add_post("/{path:.*}", _any)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, shutdown_timeout=0.1, handle_signals=False)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", port)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    server.connections = lambda: len(runner.server.connections) if runner.server else 0
    server.url = f"http://127.0.0.1:{port}/v1"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(stop(runner), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@contextlib.contextmanager
def silent_peer(lifetime: float = 60.0, accepted: list[float] | None = None) -> Iterator[str]:
    """Accept TCP connections on 127.0.0.1 and never answer; yield its `host:port`.

    It holds what it accepts until the block ends, or until `lifetime` seconds pass, whichever is first.
    If `accepted` is given, the time.monotonic() of each connection it accepts is appended to it.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        deadline = time.monotonic() + lifetime
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # the 0.05 s accept timeout is an OSError too
                held.append(listener.accept()[0])
                if accepted is not None:
                    accepted.append(time.monotonic())

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=10)
        for connection in held:
            connection.close()
        listener.close()


def serve(argv: list[str] | None = None) -> None:
    """Serve the README's example reply (or, with --cut, two chunks and a dropped connection) until Ctrl-C."""
    parser = argparse.ArgumentParser(description=serve.__doc__)
    parser.add_argument("--cut", action="store_true", help='send "Hel", "lo", then drop the connection')
    parser.add_argument("--port", type=int, default=0, help="the port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds between chunks (default: 0.2)")
    args = parser.parse_args(argv)
    cut = {"events": [delta("Hel"), delta("lo")], "fault": "cut"}
    reply: dict[str, Any] = cut if args.cut else {"events": text_events(EXAMPLE)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as quietly as Ctrl-C
    with contextlib.suppress(KeyboardInterrupt), openai_server(args.port, delay=args.delay, **reply) as peer:
        print(peer.url, flush=True)  # the only line on stdout, for a script to read
        threading.Event().wait()


if __name__ == "__main__":
    serve()
