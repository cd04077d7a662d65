"""Canaries: each g4f bug that messages_stream.py works around, shown still there in the g4f under test.

The script carries one small named function for each bug (below its boundary line). The day one of these
tests fails, g4f has fixed that bug, and the function can go. Each test says which one. tests/README.md
gives each bug as a few lines a g4f maintainer can run.

A bug that a g4f never had is skipped on it, with the reason: the function does nothing there.
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import g4f.config
import g4f.requests
import pytest
from conftest import WAIT, clean_env, needs_registry
from g4f.client import AsyncClient
from g4f.client.factory import create_custom_provider
from server import openai_server
from standin import REGISTRY_URL, internet

import messages_stream

# Imports g4f's default provider with requests refusing every call, and prints each call it refused.
REFUSED = """
import requests
calls = []
def refuse(self, method, url, **kwargs):
    calls.append((method.upper(), url, kwargs.get("timeout")))
    raise requests.ConnectionError("refused by the test")
requests.Session.request = refuse
try:
    import g4f.providers.any_provider
except Exception:
    pass
print(repr(calls))
"""


def run_python(code: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a Python of its own, in the suite's clean environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=home,
        env=clean_env(home, **env),
        stdin=subprocess.DEVNULL,
    )


@needs_registry
def test_g4f_downloads_its_provider_list_with_no_timeout(isolated: Path) -> None:
    """load_provider_list(): g4f's requests.get() for its list has no timeout, so nothing bounds it but the
    script's alarm (tests/test_faults.py shows a silent proxy holding it)."""
    result = run_python(REFUSED, isolated)
    assert result.returncode == 0, result.stderr
    calls = ast.literal_eval(result.stdout.strip())
    assert ("GET", REGISTRY_URL, None) in calls, calls  # None: no timeout


@needs_registry
def test_g4f_caches_a_broken_provider_list_for_the_day(isolated: Path) -> None:
    """forget_provider_list(): the registry answers 503 with a JSON error, and g4f keeps that error as the
    day's list, to be read back by every run until midnight."""
    with internet(registry="json503") as net:
        result = run_python("import g4f.providers.any_provider", isolated, **net.env())
    assert result.returncode == 1, result.stderr  # the import failed: no default provider in that list
    cached = [path.read_text(encoding="utf-8") for path in isolated.rglob("providers.json")]
    assert len(cached) == 1 and '"default"' not in cached[0], cached  # and yet g4f kept it


@pytest.mark.skipif(
    not hasattr(g4f.requests, "close_shared_connectors"),
    reason="needs g4f's shared aiohttp connector, from g4f 8.5.0 on (before, each session closed its own)",
)
def test_g4f_leaves_its_shared_connection_open_after_a_stream() -> None:
    """close_connections(): after a stream has ended, g4f still holds its connection to the server, and
    only close_shared_connectors() lets it go."""

    async def stream_then_close(url: str) -> tuple[int, int]:
        provider = create_custom_provider(url, api_key=None, models=["m"], name="canary")
        stream = AsyncClient(provider=provider).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for _ in stream:
            pass
        await asyncio.sleep(0.2)  # time for g4f to let it go, were it going to
        held = server.connections()
        await messages_stream.close_connections()
        for _ in range(100):  # the server's thread sees the close a moment later
            if server.connections() == 0:
                break
            await asyncio.sleep(0.02)
        return held, server.connections()

    with openai_server() as server:
        assert asyncio.run(stream_then_close(server.url)) == (
            1,
            0,
        )  # held after the stream; the workaround closes it


def test_g4f_raises_unbound_local_error_for_a_page_without_data_lines() -> None:
    """found_no_data(): a 200 answer that is an HTML page, not an event stream, ends in g4f's parser as an
    UnboundLocalError, not an error of g4f's own."""

    async def stream(url: str) -> None:
        provider = create_custom_provider(url, api_key=None, models=["m"], name="canary")
        chunks = AsyncClient(provider=provider).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        try:
            async for _ in chunks:
                pass
        finally:
            await messages_stream.close_connections()

    with openai_server(page="<!doctype html><html><body>Sign in</body></html>") as server:
        with pytest.raises(UnboundLocalError):
            asyncio.run(stream(server.url))
        assert messages_stream.found_no_data(UnboundLocalError("x"))  # what the script then says instead


def test_each_workaround_does_nothing_on_a_g4f_without_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a g4f without these names (neither before 8.5.0), the workarounds do nothing, and say nothing."""
    monkeypatch.delattr(g4f.config, "get_cache_dir", raising=False)
    monkeypatch.delattr(g4f.requests, "close_shared_connectors", raising=False)
    messages_stream.forget_provider_list()  # no AttributeError: nothing to forget
    asyncio.run(messages_stream.close_connections())  # nothing to close
