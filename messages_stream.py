"""Stream a chat completion with g4f's AsyncClient: main() is the lesson, then the command line."""

import asyncio
import logging
import os
import sys

from g4f.client import AsyncClient
from g4f.client.factory import create_custom_provider

PROMPT = "Say hello there!"
MODEL = "gpt-4"
TIMEOUT = 60.0  # seconds of silence allowed: before the first chunk, and between two
log = logging.getLogger(__name__)


async def main(prompt: str | list[dict[str, str]] = PROMPT, model: str = MODEL,
               provider: str | None = None, timeout: float = TIMEOUT) -> str:
    """Stream the answer to `prompt` (a user message, or a list of them); print and return it.
    What arrived is always printed. Then it raises TimeoutError after `timeout` s of silence,
    ValueError if no text came, or g4f's error. Copy end_reasoning() and to_provider() too.
    Without a base URL, g4f's look-ups block the loop untimed. Close g4f's connections at exit."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    text = reasoning = ""
    try:
        async with asyncio.timeout(timeout) as idle:
            client = AsyncClient(provider=to_provider(provider, model))
            stream = client.chat.completions.create(model=model, messages=messages, stream=True)
            async for chunk in stream:  # not awaited: with stream=True, create() gave the stream
                idle.reschedule(asyncio.get_running_loop().time() + timeout)  # a chunk: wait anew
                for choice in chunk.choices:
                    if choice.delta.reasoning:  # thoughts go to stderr, never into the answer
                        reasoning += choice.delta.reasoning
                        print(choice.delta.reasoning, end="", file=sys.stderr, flush=True)
                    if choice.delta.content is not None:
                        end_reasoning(reasoning, text)
                        text += str(choice.delta.content)  # an image or sources: their markdown
                        print(choice.delta.content, end="", flush=True)
                    if choice.finish_reason:  # the last chunk: who answered, after any fallback
                        log.info("%s answered with %s", chunk.provider, chunk.model)
    finally:
        end_reasoning(reasoning, text)
        print(f"\n\nFinal accumulated text: {text}", flush=True)
        if idle.expired():  # our own wait ran out: asyncio's TimeoutError says nothing, so say why
            raise TimeoutError(f"no response from the provider within {timeout:g} s")
    if not text:
        raise ValueError("the provider sent only reasoning" if reasoning else "the answer is empty")
    return text


def end_reasoning(reasoning: str, text: str) -> None:
    """Before the answer starts (or the final line, if it never did), end the reasoning's line."""
    if reasoning and not text and not reasoning.endswith("\n"):
        print(file=sys.stderr, flush=True)


def to_provider(provider: str | None, model: str) -> object:
    """`provider`: a g4f provider name, a base URL (whose provider knows `model`), or None."""
    if provider and provider.lower().startswith(("http://", "https://")):
        key = os.environ.get("G4F_API_KEY")  # a base URL only: g4f would give it to every provider
        name = provider.split("@")[-1]  # the URL without its user:password, which g4f would show
        return create_custom_provider(provider, api_key=key, models=[model], name=name)
    return provider or None  # an empty name means no name: g4f's default path


# ---- The command line ----------------------------------------------------------------------------
# Below: a function for each g4f bug (tests/test_g4f_bugs.py), then the command, which owns the process.

import argparse
import importlib
import io
import re
import signal
import threading
import traceback
from contextlib import redirect_stderr, redirect_stdout
from datetime import date
from pathlib import Path
from typing import TextIO

import aiohttp
import g4f.config
import g4f.requests
import requests
from g4f import debug
from g4f.errors import MissingAuthError, ProviderNotFoundError, RetryProviderError

REGISTRY = "g4f's provider registry"  # the list of providers that g4f's default path downloads
ENDS = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGALRM", signal.SIGTERM)}  # what ends a run
LIST = "python -c 'import g4f.Provider; print(*g4f.Provider.ProviderUtils.convert.keys())'"  # the names
VISIBLE = {c: f"^{chr(c ^ 64)}" for c in [*range(9), *range(11, 32), 127]}  # ESC as ^[; not tab, newline
VISIBLE |= {c: f"\\x{c:x}" for c in range(128, 160)}  # the C1 controls, CSI (\\x9b) among them

def load_provider_list() -> None:
    """g4f downloads its provider list in create(), with requests.get() and no timeout (seen on 8.5.0 to
    8.8.6): loaded first, apart, it is bounded by the alarm, and a failure here is the registry's."""
    importlib.import_module("g4f.providers.any_provider")

def forget_provider_list() -> None:
    """g4f keeps the day's list, an error too (seen on 8.5.0 to 8.8.6): after a failed load, it goes."""
    if hasattr(g4f.config, "get_cache_dir"):  # 8.8.0 on; an older g4f does not say where its cache is
        cache = g4f.config.get_cache_dir()
        Path(cache, ".models", str(date.today()), "providers.json").unlink(missing_ok=True)

async def close_connections() -> None:
    """g4f keeps an aiohttp connector for each event loop, and never closes it (seen on 8.5.0 to 8.8.6)."""
    if hasattr(g4f.requests, "close_shared_connectors"):  # 8.5.0 on: before, g4f closed its own
        await g4f.requests.close_shared_connectors()

def found_no_data(error: Exception) -> bool:
    """g4f raises UnboundLocalError when a 200 response has no `data:` line (seen on 7.8.0 to 8.8.6)."""
    return isinstance(error, UnboundLocalError)

def stop(code: int | str) -> None:
    """End the run now, even inside a blocking call, and in 2 s whatever stdout does; later signals wait."""
    if hasattr(signal, "pthread_sigmask") and signal.pthread_sigmask(signal.SIG_BLOCK, ENDS) >= ENDS:
        return
    deadline = threading.Timer(2.0, os._exit, [code if isinstance(code, int) else 1])
    deadline.daemon = True  # it ends the process only if the process has not ended by then
    deadline.start()
    sys.exit(code)  # SystemExit gets past g4f's `except Exception`, which would try the next provider

def hide(text: str) -> str:
    """Mask the secrets: a URL's `user:password@`, and the API key where it is long enough to be one."""
    key = os.environ.get("G4F_API_KEY", "")
    text = re.sub(r"(?<=://)[^/@\s]+@", "***@", text)
    return text.replace(key, "***") if len(key) >= 8 else text  # `ollama`, `EMPTY`: dummies, not secrets

class Shown(io.TextIOBase):
    """stdout or stderr in a run: a terminal sees control characters made visible; a failed write is kept."""
    def __init__(self, stream: TextIO, dim: bool = False) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self.style = "\033[2m" if dim and self.terminal and not os.environ.get("NO_COLOR") else ""
        self.failed: OSError | None = None
    def write(self, text: str) -> int:
        """Write `text` and flush it; on a terminal, its control characters visible, in the style."""
        shown = self.style + text.translate(VISIBLE) + "\033[0m" * bool(self.style) if self.terminal else text
        try:
            self.stream.write(shown if text else "")
            self.stream.flush()
        except OSError as error:
            self.failed = error
            raise
        return len(text)

async def run(args: argparse.Namespace, out: Shown) -> int:
    """Run main() under the alarm, which a heartbeat puts off while the event loop runs; the exit code."""
    def heartbeat() -> None:
        signal.setitimer(signal.ITIMER_REAL, args.timeout + 0.1)  # every 0.1 s, while the loop runs
        asyncio.get_running_loop().call_later(0.1, heartbeat)
    def ring(signum: int, frame: object) -> None:
        stop(f"error: no response from {hide(where)} within {args.timeout:g} s")
    where = REGISTRY
    if hasattr(signal, "setitimer"):  # not on Windows: there, what blocks the loop is not bounded
        signal.signal(signal.SIGALRM, ring)
        heartbeat()
    try:
        if not args.provider:  # g4f's default path: its provider list first, apart
            load_provider_list()
        where = args.provider or "g4f's default provider"
        await main(args.messages, args.model, args.provider, args.timeout)
    except Exception as error:
        if where == REGISTRY:
            forget_provider_list()
        if error is out.failed:  # stdout itself failed: the flush at exit must not try it again
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            where = "stdout"
            if isinstance(error, BrokenPipeError):  # the reader has gone (`| head`): quiet, as SIGPIPE
                return 141
        print(hide((traceback.format_exc() if args.debug else "") + describe(error, where)), file=sys.stderr)
        return 1
    finally:
        if hasattr(signal, "setitimer"):  # a heartbeat may re-arm it as the connections close: unheard
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
        await close_connections()
    return 0

def describe(error: Exception, where: str) -> str:
    """The `error:` line: what failed, in plain words, by the type of `error` and `where` it happened."""
    if isinstance(error, TimeoutError):  # main()'s own words, when its wait ran out
        message = str(error) or f"no response from {where}"
    elif isinstance(error, requests.ConnectionError):  # in one of g4f's blocking look-ups
        url = f" ({error.request.url!s})" if error.request else ""
        message = f"cannot reach {where}{url}; check the network and any proxy settings"
    elif where == REGISTRY:
        message = f"{REGISTRY} sent no usable list of providers; try again later"
    elif isinstance(error, ProviderNotFoundError):
        message = f"unknown provider {where!r}; list the valid names with: {LIST}"
    elif isinstance(error, RetryProviderError):  # g4f chains the first provider's error to it
        message = f"every provider that g4f tried failed; the first: {str(error.__cause__ or error)[:150]}"
    elif isinstance(error, aiohttp.ClientConnectorError):
        reason = os.strerror(error.errno) if error.errno and error.errno > 0 else str(error.strerror)
        message = f"cannot connect to {where} ({reason.lower()})"
    elif isinstance(error, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        message = f"the connection to {where} broke off mid-stream"
    elif isinstance(error, MissingAuthError):
        message = f"{where} refused the request ({error}); check G4F_API_KEY"
    elif found_no_data(error):
        message = f"{where} did not answer as an OpenAI-compatible API (an HTML page?); check the URL"
    else:
        message = f"{where} failed: {str(error) or type(error).__name__}"
    return "error: " + " ".join(message.split())  # a server's message can span lines

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line into the messages and options; defaults come from g4f's own variables."""
    parser = argparse.ArgumentParser(description="Stream a chat completion with g4f. API key: $G4F_API_KEY.")
    parser.add_argument("prompt", nargs="?", default=PROMPT, help="the message, or - to read it from stdin")
    parser.add_argument("-s", "--system", help="a system message, sent before the prompt")
    parser.add_argument("--model", default=os.environ.get("G4F_MODEL") or MODEL, help="$G4F_MODEL or gpt-4")
    parser.add_argument("--provider", default=os.environ.get("G4F_PROVIDER", ""),
                        help="a g4f provider name, or an OpenAI-compatible API's base URL ($G4F_PROVIDER)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds to wait for a chunk (60)")
    parser.add_argument("-v", "--verbose", action="store_true", help="say who answered")
    parser.add_argument("--debug", action="store_true", help="log what g4f does, and show tracebacks")
    args = parser.parse_args(argv)
    if sys.stdout is None:  # `>&-`: a usage error in one line, before anything is sent
        parser.exit(2, "error: stdout is closed, so the answer has nowhere to go\n")
    url = args.provider
    if args.prompt == "-":  # read as UTF-8 whatever the locale; a bad byte becomes a lone surrogate
        args.prompt = sys.stdin.buffer.read().decode(errors="surrogateescape") if sys.stdin else ""
    for wrong, message in (
        (re.search("[\ud800-\udfff]", args.prompt + (args.system or "")), "the prompt is not valid UTF-8"),
        (not args.prompt.strip(), "the prompt is empty"),
        (not args.model, "--model is empty"),
        (not 0 < args.timeout <= 86400, "--timeout must be a positive number of seconds, at most 86400"),
        (re.fullmatch(r"[\w.-]+:\d+", url), f"--provider {url}: did you mean http://{url}/v1?"),
        ("://" in url and re.search("[?#]", url), "--provider: a base URL cannot have a query string"),
    ):
        if wrong:
            parser.error(message)
    system = [{"role": "system", "content": args.system}] if args.system else []
    args.messages = [*system, {"role": "user", "content": args.prompt}]
    return args

def cli(argv: list[str] | None = None) -> int:
    """Run main() as a command: one `error:` line and an exit code for what fails; signals end it in order."""
    for number in signal.SIGINT, signal.SIGTERM:  # the first ends the run with 130 or 143, as a shell says
        signal.signal(number, lambda signum, frame: stop(128 + signum))
    args = parse_args(argv)
    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]  # what it cannot encode: "?"
    with redirect_stdout(Shown(sys.stdout)) as out, redirect_stderr(Shown(sys.stderr, dim=True)):
        logging.basicConfig(format="%(message)s")  # other libraries' warnings, as Python shows them
        log.setLevel(logging.INFO if args.verbose else logging.WARNING)  # -v: this file's own line
        if args.debug:  # g4f logs to stdout by default, and stdout is for the answer alone
            debug.enable_logging(lambda *text, **_: print(hide(" ".join(map(str, text))), file=sys.stderr))
        return asyncio.run(run(args, out))

if __name__ == "__main__":
    sys.exit(cli())
