"""An offline stand-in for the part of the internet that g4f's default provider uses, on 127.0.0.1 over TLS.

It serves g4f's provider registry (g4f.dev), CopilotApp (copilot.microsoft.com: a POST, then a WebSocket)
and Airforce (api.airforce: OpenAI-style SSE, built with tests/server.py's chunks), the first two providers
g4f 8.8.6 tries for gpt-4, each with fault modes. One aiohttp server on a port the OS picks routes by the
Host header; its certificate comes from a throwaway `trustme` CA. The script under test gets `env()`:
standin_site/ on PYTHONPATH, whose sitecustomize sends those names to this server and fails every other
name at once, and the CA file for `requests` (REQUESTS_CA_BUNDLE) and aiohttp (SSL_CERT_FILE). Nothing
leaves 127.0.0.1.

It records every request it receives, whole (`requests`: method, host, path, headers, body, and what the
client sent on a WebSocket), so that a test can search all of it for a secret (`mentions()`). With
`internet(everywhere=True)` every other name reaches it too (a certificate is made for each name as it
is asked for), and it answers those hosts 404: then a request that any provider sends is seen.
With `proxied_env()` no name resolves in the script at all, and HTTPS_PROXY names a CONNECT proxy that
tunnels to the same server: what reaches the stand-in then went through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import trustme
from aiohttp import WSMsgType, web
from server import stop, text_events

REGISTRY_URL = "https://g4f.dev/dist/js/providers.json"
HOSTS = ("g4f.dev", "copilot.microsoft.com", "api.airforce")
# healthy; 500 with an HTML page; 503 with a JSON error body; JSON without providers.default; a body that is
# not JSON; accepts and never answers; nothing listens (connection refused).
REGISTRY_MODES = ("healthy", "html500", "json503", "nodefault", "notjson", "hang", "unreachable")
# streams text; HTTP 500; HTTP 429; a clean stream without text; accepts and never answers; some text, then
# silence.
PROVIDER_MODES = ("text", "500", "429", "empty", "hang", "partial")
SITE = Path(__file__).resolve().parent / "standin_site"

# The live registry's format, cut to what g4f 8.8.6 reads (AbstractClientFactory.create_provider): the
# `default` entry with its backupUrl, and `defaultModels`, whose absence would be a KeyError of its own.
REGISTRY: dict[str, dict[str, Any]] = {
    "providers": {
        "default": {"backupUrl": "https://g4f.space/v1", "quotaEndpoint": None},
        "airforce": {"baseUrl": "https://api.airforce/v1", "backupUrl": "https://g4f.space/api/api.airforce"},
    },
    "defaultModels": {"default": "auto", "airforce": "gpt-4o-mini"},
    "providerLocalStorage": {"airforce": "ApiAirforce-api_key"},
}
HTML_500 = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head><body></body></html>"


class ScriptEnv(TypedDict):
    """What the script's environment needs (its own keys, so that mypy can tell them from run_script's)."""

    PYTHONPATH: str
    STANDIN_HOSTS: str
    STANDIN_EVERYWHERE: str
    REQUESTS_CA_BUNDLE: str
    SSL_CERT_FILE: str


class ProxiedEnv(ScriptEnv):
    """The same, with every request sent through the stand-in's proxy."""

    HTTPS_PROXY: str


@dataclass
class Seen:
    """One request the stand-in received, all of it."""

    method: str
    host: str  # as the client named it, without the port (the Host header); a CONNECT's target, host:port
    path: str  # with its query string; "" for a CONNECT
    headers: list[tuple[str, str]]
    body: bytes = b""
    messages: list[str | bytes] = field(default_factory=list)  # a WebSocket's, as the client sent them

    def __str__(self) -> str:
        return f"{self.method} {self.host}{self.path}"

    def mentions(self, secret: str) -> bool:
        """Whether `secret` is anywhere in the request: its line, a header's name or value, the body, or a
        WebSocket message."""
        parts: list[str | bytes] = [str(self), *(f"{name}: {value}" for name, value in self.headers)]
        parts += [self.body, *self.messages]
        return any(secret in (part.decode("latin-1") if isinstance(part, bytes) else part) for part in parts)


@dataclass
class Internet:
    """The modes a test sets (they may change between two runs) and what the stand-in saw."""

    registry: str = "healthy"
    copilot: str = "text"
    airforce: str = "text"
    everywhere: bool = False  # every other name reaches the stand-in too, which answers it 404
    copilot_pieces: tuple[str, ...] = ("Hello", " from", " Copilot!")
    airforce_pieces: tuple[str, ...] = ("Hello", " from", " Airforce!")
    requests: list[Seen] = field(default_factory=list)  # every request the server received, in order
    tunnels: list[Seen] = field(default_factory=list)  # every request the proxy received
    port: int = 0  # where the server listens
    proxy_port: int = 0
    closed_port: int = 0  # a port bound but not listening: "unreachable" sends g4f.dev here
    ca_file: str = ""

    @property
    def seen(self) -> list[str]:
        """The line `METHOD host/path` of every request the server received, in order."""
        return [str(request) for request in self.requests]

    @property
    def proxied(self) -> list[str]:
        """The line `CONNECT host:port` of every tunnel asked for, in order."""
        return [str(tunnel) for tunnel in self.tunnels]

    def env(self) -> ScriptEnv:
        """The environment variables that send the script here; read it anew after changing `registry`."""
        registry = self.closed_port if self.registry == "unreachable" else self.port
        hosts = {"g4f.dev": registry, "copilot.microsoft.com": self.port, "api.airforce": self.port}
        return ScriptEnv(
            PYTHONPATH=str(SITE),
            STANDIN_HOSTS=",".join(f"{name}={port}" for name, port in hosts.items()),
            STANDIN_EVERYWHERE=str(self.port) if self.everywhere else "",
            REQUESTS_CA_BUNDLE=self.ca_file,
            SSL_CERT_FILE=self.ca_file,
        )

    def proxied_env(self) -> ProxiedEnv:
        """Like env(), but no name resolves in the script: only HTTPS_PROXY's proxy reaches the stand-in."""
        env = self.env()
        return ProxiedEnv(
            PYTHONPATH=env["PYTHONPATH"],
            STANDIN_HOSTS="",
            STANDIN_EVERYWHERE="",
            REQUESTS_CA_BUNDLE=env["REQUESTS_CA_BUNDLE"],
            SSL_CERT_FILE=env["SSL_CERT_FILE"],
            HTTPS_PROXY=f"http://127.0.0.1:{self.proxy_port}",
        )

    def answered(self, host: str) -> bool:
        """Whether a provider's host was asked for an answer (not just the registry's JSON)."""
        return any(request.host == host and request.method == "POST" for request in self.requests)

    def hosts(self) -> set[str]:
        """Every host that the server or the proxy was asked for."""
        return {request.host.partition(":")[0] for request in self.requests + self.tunnels}

    def mentions(self, secret: str) -> list[str]:
        """The requests (server's and proxy's) that carry `secret` anywhere."""
        return [str(request) for request in self.requests + self.tunnels if request.mentions(secret)]


INTERNET = web.AppKey("internet", Internet)
SEEN = web.RequestKey("seen", Seen)  # a request's own record, kept with the request
Handler = Callable[[Internet, web.Request], Awaitable[web.StreamResponse]]


async def _forever() -> web.StreamResponse:
    """Accept and never answer; the task is cancelled when the stand-in stops."""
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def _registry(internet: Internet, request: web.Request) -> web.StreamResponse:
    mode = internet.registry
    if mode == "html500":
        return web.Response(status=500, text=HTML_500, content_type="text/html")
    if mode == "json503":
        return web.json_response({"error": {"code": 503, "message": "Service Unavailable"}}, status=503)
    if mode == "nodefault":
        providers = {name: entry for name, entry in REGISTRY["providers"].items() if name != "default"}
        return web.json_response({**REGISTRY, "providers": providers})
    if mode == "notjson":
        return web.Response(text="providers.json is being rebuilt, come back later\n")
    if mode == "hang":
        return await _forever()
    return web.json_response(REGISTRY)


async def _copilot_start(internet: Internet, request: web.Request) -> web.StreamResponse:
    mode = internet.copilot
    if mode == "500":
        return web.Response(status=500, text="Internal Server Error")
    if mode == "429":
        return web.json_response({"error": "Too many requests, slow down"}, status=429)
    if mode == "hang":
        return await _forever()
    return web.json_response({"currentConversationId": "standin-conversation"})


async def _copilot_chat(internet: Internet, request: web.Request) -> web.StreamResponse:
    # g4f's CopilotApp sends `Connection: keep-alive` in place of `Connection: Upgrade`. The real server
    # accepts that; aiohttp's refuses it, so mark the request as the upgrade it is meant to be.
    request._message = request._message._replace(upgrade=True)
    messages = request[SEEN].messages  # what the client sends is recorded with the handshake
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"event": "connected"})
    first = await ws.receive()  # the client's {"event": "send", ...}
    if first.type in (WSMsgType.TEXT, WSMsgType.BINARY):
        messages.append(first.data)
    if internet.copilot != "empty":
        for piece in internet.copilot_pieces:
            await ws.send_json({"event": "appendText", "text": piece})
    if internet.copilot == "partial":
        return await _forever()
    await ws.send_json({"event": "done"})
    async for message in ws:  # until the client closes
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            messages.append(message.data)
    return ws


def _event(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


async def _airforce_chat(internet: Internet, request: web.Request) -> web.StreamResponse:
    mode = internet.airforce
    if mode == "500":
        return web.Response(status=500, text="Internal Server Error")
    if mode == "429":
        return web.json_response({"error": {"message": "Ratelimit Exceeded!", "code": 429}}, status=429)
    if mode == "hang":
        return await _forever()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    *pieces, final = text_events([] if mode == "empty" else internet.airforce_pieces)
    for piece in pieces:
        await response.write(_event(piece))
    if mode == "partial":
        return await _forever()
    await response.write(_event(final) + b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _airforce_models(internet: Internet, request: web.Request) -> web.StreamResponse:
    return web.json_response({"object": "list", "data": [{"id": "gpt-4", "object": "model"}]})


ROUTES: dict[tuple[str, str, str], Handler] = {
    ("GET", "g4f.dev", "/dist/js/providers.json"): _registry,
    ("POST", "copilot.microsoft.com", "/c/api/start"): _copilot_start,
    ("GET", "copilot.microsoft.com", "/c/api/chat"): _copilot_chat,
    ("POST", "api.airforce", "/v1/chat/completions"): _airforce_chat,
    ("GET", "api.airforce", "/v1/models"): _airforce_models,
}


async def _route(request: web.Request) -> web.StreamResponse:
    internet = request.app[INTERNET]
    host = request.host.partition(":")[0].lower()
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.raw_headers]
    request[SEEN] = Seen(request.method, host, request.path_qs, headers, await request.read())
    internet.requests.append(request[SEEN])
    handler = ROUTES.get((request.method, host, request.path))
    if handler is None:
        return web.Response(status=404, text=f"not served by the stand-in: {host}{request.path}")
    with contextlib.suppress(ConnectionResetError):  # the client went away (a timeout, a signal)
        return await handler(internet, request)
    return web.Response(status=499)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _tunnel(internet: Internet, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The proxy: `CONNECT host:443` to one of the stand-in's names opens a tunnel to it; others get 502."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        line, *fields = head.split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = [(name, value.strip()) for name, _, value in (f.partition(":") for f in fields if f)]
        internet.tunnels.append(Seen(method, target.lower(), "", headers))
        if method != "CONNECT" or target.rpartition(":")[0] not in HOSTS:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        upstream = await asyncio.open_connection("127.0.0.1", internet.port)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        writer.close()
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))


def _server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    """The server's TLS: a certificate for the stand-in's names, and one made on the spot for any other
    name the client asks for (SNI), so that `everywhere` can serve every host."""
    contexts: dict[str, ssl.SSLContext] = {}

    def context_for(*names: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        return context

    def choose(connection: ssl.SSLObject, name: str | None, current: ssl.SSLContext) -> None:
        if name and name not in HOSTS:
            if name not in contexts:
                contexts[name] = context_for(name)
            connection.context = contexts[name]

    main = context_for(*HOSTS)
    main.sni_callback = choose
    return main


@contextlib.contextmanager
def internet(
    registry: str = "healthy", copilot: str = "text", airforce: str = "text", everywhere: bool = False
) -> Iterator[Internet]:
    """Serve the stand-in, in these modes, until the block ends."""
    assert registry in REGISTRY_MODES and {copilot, airforce} <= set(PROVIDER_MODES)
    state = Internet(registry, copilot, airforce, everywhere)
    ca = trustme.CA()
    app = web.Application()
    app[INTERNET] = state
    app.router.add_route("*", "/{path:.*}", _route)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, shutdown_timeout=0.1, handle_signals=False)
    with tempfile.TemporaryDirectory() as folder, socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: a connection to it is refused
        state.closed_port = closed.getsockname()[1]
        state.ca_file = str(Path(folder) / "ca.pem")
        ca.cert_pem.write_to_path(state.ca_file)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_server_ssl(ca)).start())
        state.port = runner.addresses[0][1]
        proxy = loop.run_until_complete(
            asyncio.start_server(lambda r, w: _tunnel(state, r, w), "127.0.0.1", 0)
        )
        state.proxy_port = proxy.sockets[0].getsockname()[1]
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield state
        finally:
            asyncio.run_coroutine_threadsafe(stop(runner, proxy), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
