"""Stream a chat completion with g4f's AsyncClient: main() is the lesson; "The command line" is below it."""

import asyncio
import logging
import os
import sys

from g4f.client import AsyncClient, ChatCompletionChunk
from g4f.client.factory import create_custom_provider

if sys.version_info >= (3, 11):
    from asyncio import timeout as time_limit
else:  # the same, from a package that aiohttp already installs on 3.10
    from async_timeout import timeout as time_limit

PROMPT, MODEL, TIMEOUT = "Say hello there!", "gpt-4", 60.0  # TIMEOUT: seconds to wait for the next chunk


async def main(prompt: str | list[dict[str, str]] = PROMPT, model: str = MODEL,
               provider: str | None = None, timeout: float = TIMEOUT) -> str:
    """Stream the answer to `prompt` (a user message, or a list of messages), printing each piece; return it.
    `provider`: a g4f provider name, an OpenAI-compatible API's base URL, or None for g4f's choice. After
    the final text, raises TimeoutError (`timeout` s without a chunk), ValueError (no text), g4f's errors."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    text, thought, pieces, started, first, until = "", False, 0, asyncio.get_running_loop().time(), 0.0, 0.0
    try:
        client = AsyncClient(provider=to_provider(provider, model), api_key=os.environ.get("G4F_API_KEY"))
        # Not awaited: create() returns an async iterator at once. It can raise already, hence in the `try`.
        # g4f's look-ups (registry, `GET /models`) block the loop, untimed: the command line bounds those.
        stream = client.chat.completions.create(model=model, messages=messages, stream=True)
        async with time_limit(timeout) as limit:  # bounds the wait for the first chunk...
            move = getattr(limit, "reschedule" if sys.version_info >= (3, 11) else "update")  # 3.10: update()
            async for chunk in stream:
                if until - (now := asyncio.get_running_loop().time()) < timeout:  # ...and for each next one:
                    move(until := now + 1.1 * timeout)  # moved 10% further, a fast stream seldom moves it
                delta = chunk.choices[0].delta if chunk.choices else None  # `choices` can be empty
                if delta and delta.reasoning:  # a thinking model's thoughts: shown on stderr, not the answer
                    thought = True
                    print(delta.reasoning, end="", file=sys.stderr, flush=True)
                if delta and delta.content is not None:  # None at the end; web sources, images: as markdown
                    text += str(delta.content)  # first: a signal may end the run before the next line
                    print(delta.content, end="", flush=True)  # flushed, or the stream arrives all at once
                    pieces, first = pieces + 1, first or now - started
        if not text:  # g4f drops the errors some providers yield instead of raising: silence hides one
            raise ValueError("the provider sent only reasoning" if thought
                             else "the provider returned an empty response")
    finally:  # even after an error: keep what came, and end the reasoning's line
        print(f"\n\nFinal accumulated text: {text}", flush=True)
        print(end="\n" if thought else "", file=sys.stderr, flush=True)
    logging.getLogger(__name__).info("%s\nfirst piece after %.2f s; %d pieces in %.2f s",  # two lines
                                     who_answered(chunk, messages), first, pieces, now - started)
    return text


def who_answered(chunk: ChatCompletionChunk, messages: list[dict[str, str]]) -> str:
    """The provider and the model that answered (after any fallback), why it ended, and the token usage."""
    usage = getattr(chunk, "usage", None)  # the last chunk's; g4f estimates it when the provider sent none:
    guess = 1 + sum(len(str(m["content"]).encode()) // 4 + 4 for m in messages)  # its prompt_tokens guess
    source = "estimated by g4f" if usage and usage.prompt_tokens == guess else "reported by the provider"
    return (f"{chunk.provider} answered with {chunk.model} ({chunk.choices[0].finish_reason}); "
            f"{usage and usage.total_tokens} tokens, {source}")  # g4f's last chunk always has one choice


def to_provider(provider: str | None, model: str) -> object:
    """A base URL becomes a g4f provider that knows its model (so no blocking `GET /models`); a name stays."""
    if provider and provider.lower().startswith(("http://", "https://")):  # named without a `user:password@`
        return create_custom_provider(provider, models=[model], name=provider.split("@")[-1])
    return provider or None  # "" too means g4f's own choice


# ---- The command line ---------------------------------------------------------------------------------
# Below, what makes main() a dependable command. It owns the process: signals, a POSIX alarm, exit codes,
# the terminal, and g4f's shared connections.

import argparse
import re
import signal
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import TextIO, cast

import aiohttp
import requests
from g4f import debug
from g4f.config import get_cache_dir
from g4f.errors import MissingAuthError, ProviderNotFoundError, RetryProviderError
from g4f.requests import close_shared_connectors

REGISTRY, URL = "g4f's provider registry", "https://g4f.dev/dist/js/providers.json"
ENDS = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGALRM", signal.SIGTERM)}  # what ends a run
# A provider's control characters, made visible on a terminal (ESC as ^[): no escape sequence gets through.
VISIBLE = {c: f"^{chr(c ^ 64)}" for c in [*range(9), *range(11, 32), 127]}  # all but tab and newline
VISIBLE |= {c: f"\\x{c:x}" for c in range(128, 160)}  # the C1 controls, CSI (\\x9b) among them


def stop(code: int | str) -> None:
    """End the run at once, even inside a blocking call. Later signals wait, blocked, until the process has
    ended, so that none cuts the ending short; one that came before them finds the run already ending."""
    if hasattr(signal, "pthread_sigmask") and signal.pthread_sigmask(signal.SIG_BLOCK, ENDS) >= ENDS:
        return
    sys.exit(code)  # SystemExit gets past g4f's `except Exception`, which would only try the next provider


async def run(messages: list[dict[str, str]], args: argparse.Namespace) -> None:
    """Run main() with a bound on g4f's blocking look-ups, then close g4f's shared connections."""
    if hasattr(signal, "setitimer"):  # not on Windows: there, a look-up that hangs is not bounded
        def ring(signum: int, frame: object) -> None:  # the event loop has been blocked for --timeout s
            where = args.provider or ("g4f's default provider" if has_registry() else REGISTRY)
            stop(f"error: no response from {hide(where)} within {args.timeout:g} s")
        signal.signal(signal.SIGALRM, ring)
        loop, beat = asyncio.get_running_loop(), min(1.0, args.timeout / 4)
        def heartbeat() -> None:  # re-arms the alarm from the loop: only a call that blocks it lets it ring
            signal.setitimer(signal.ITIMER_REAL, args.timeout + beat)
            loop.call_later(beat, heartbeat)
        heartbeat()
    try:
        await main(messages, args.model, args.provider, args.timeout)
    finally:
        await close_shared_connectors()  # g4f never closes them: "Unclosed connector" at exit otherwise


def has_registry() -> bool:
    """Whether g4f has its provider list: importing any_provider downloads it, then defines AnyProvider
    (a failed import leaves no module), so the registry is what a failure or a hang before that is in."""
    return hasattr(sys.modules.get("g4f.providers.any_provider"), "AnyProvider")


def describe(error: Exception, provider: str | None, timeout: float) -> str:
    """Say in plain words, on one line, what failed and where."""
    where = hide(provider) if provider else "g4f's default provider"
    if error.__traceback__ and traceback.extract_tb(error.__traceback__)[-1].name == "main":  # main()'s words
        message = f"cannot write to stdout ({error.strerror})" if isinstance(error, OSError) else str(error)
    elif isinstance(error, requests.ConnectionError):  # in one of g4f's blocking look-ups
        url = str(error.request.url) if error.request else where
        where = f"{REGISTRY} ({URL})" if url == URL else url
        message = f"cannot reach {where}; check the network and any proxy settings"
    elif provider is None and not has_registry():  # failed before g4f had its list of providers
        message = f"{REGISTRY} ({URL}) sent no usable list of providers; try again later"
    elif isinstance(error, ProviderNotFoundError):
        message = (f"unknown provider {provider!r}; list the valid names with: "
                   'python -c "import g4f.Provider; print(*g4f.Provider.ProviderLoader.names)"')
    elif isinstance(error, RetryProviderError):  # a line for each provider follows the first line
        first, *others = str(error).splitlines()[1:] or [str(error)]
        message = f"all {1 + len(others)} providers that g4f tried failed; the first, {first[:120]}"
    elif isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        message = f"no response from the provider within {timeout:g} s"
    elif isinstance(error, aiohttp.ClientConnectorError):
        reason = os.strerror(error.errno) if error.errno and error.errno > 0 else str(error.strerror)
        message = f"cannot connect to {where} ({reason.lower()})"
    elif isinstance(error, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        message = f"the connection to {where} broke off mid-stream"
    elif isinstance(error, MissingAuthError) or str(error).startswith(("Error 403", "Response 403")):
        message = f"{where} refused the request ({error}); check G4F_API_KEY"
    elif isinstance(error, NameError):  # g4f's parser found no `data:` line at all: a web page, not an API
        message = f"{where} did not answer as an OpenAI-compatible API (an HTML page?); check the URL"
    else:
        message = f"{where} failed: {error or type(error).__name__}"
    return " ".join(message.split())  # a server's message can span lines


def hide(text: str) -> str:
    """Mask the secrets: a URL's `user:password@`, and the API key where it is long enough to be one."""
    key = os.environ.get("G4F_API_KEY", "")
    text = re.sub(r"(?<=://)[^/@\s]+@", "***@", text)
    return text.replace(key, "***") if len(key) >= 8 else text  # `ollama`, `EMPTY`: dummies, not secrets


def for_terminal(stream: TextIO, style: str = "") -> TextIO:
    """On a terminal, show a provider's control characters visibly, in `style`; elsewhere, change nothing."""
    end = "\033[0m" if style else ""  # print() needs only write() and flush(): two functions stand in
    return stream if not stream.isatty() else cast(TextIO, SimpleNamespace(
        write=lambda text: stream.write(text and style + text.translate(VISIBLE) + end), flush=stream.flush))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line; the defaults come from g4f's own environment variables."""
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0], epilog="API key: $G4F_API_KEY.")
    parser.add_argument("prompt", nargs="?", default=PROMPT, help="the message, or - to read it from stdin")
    parser.add_argument("-s", "--system", help="a system message, sent before the prompt")
    parser.add_argument("--model", default=os.environ.get("G4F_MODEL") or MODEL, help="$G4F_MODEL or gpt-4")
    parser.add_argument("--provider", default=os.environ.get("G4F_PROVIDER") or None,
                        help="a g4f provider name, or an OpenAI-compatible API's base URL ($G4F_PROVIDER)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds to wait for a chunk (60)")
    parser.add_argument("-v", "--verbose", action="store_true", help="say who answered, and how fast")
    parser.add_argument("--debug", action="store_true", help="log what g4f does, and show tracebacks")
    args = parser.parse_args(argv)
    if args.prompt == "-":  # read as UTF-8 whatever the locale; a bad byte becomes a lone surrogate
        args.prompt = sys.stdin.buffer.read().decode(errors="surrogateescape") if sys.stdin else ""
    url = args.provider or ""
    for wrong, message in (
        (re.search("[\ud800-\udfff]", args.prompt + (args.system or "")), "the prompt is not valid UTF-8"),
        (not args.prompt.strip(), "the prompt is empty"),
        (not args.model, "--model is empty"),
        (not 0 < args.timeout <= 86400, "--timeout must be a positive number of seconds, at most 86400"),
        (re.fullmatch(r"[\w.-]+:\d+", url), f"--provider {url}: did you mean http://{url}/v1?"),
        ("://" in url and re.search("[?#]", url), "--provider: a base URL cannot have a query string"),
        (sys.stdout is None, "stdout is closed, so the answer has nowhere to go"),
    ):
        if wrong:
            parser.error(message)
    return args


def cli(argv: list[str] | None = None) -> int:
    """Run main() as a command: one `error:` line and an exit code for what fails; signals end it in order."""
    out, err = sys.stdout, sys.stderr
    for number in signal.SIGINT, signal.SIGTERM:  # 130 and 143, the shell's codes, even in a blocking call
        signal.signal(number, lambda signum, frame: stop(128 + signum))
    args = parse_args(argv)
    out.reconfigure(errors="replace")  # type: ignore[union-attr]  # what it cannot encode becomes "?"
    logging.basicConfig(format="%(message)s")  # main() logs who answered; -v shows it
    logging.getLogger(__name__).setLevel(logging.INFO if args.verbose else logging.WARNING)
    if args.debug:  # g4f logs to stdout by default, and stdout is for the answer alone
        debug.enable_logging(lambda *text, **_: print(hide(" ".join(map(str, text))), file=err))
    sys.stdout = for_terminal(out)
    sys.stderr = for_terminal(err, "" if os.environ.get("NO_COLOR") else "\033[2m")  # reasoning, dimmed
    system = [{"role": "system", "content": args.system}] if args.system else []
    try:
        asyncio.run(run([*system, {"role": "user", "content": args.prompt}], args))
    except BrokenPipeError:  # the reader of stdout has gone (`| head`): end quietly, as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())  # so that the flush at exit cannot fail
        return 141
    except Exception as error:
        line = describe(error, args.provider, args.timeout)
        if line.startswith("cannot write to stdout"):  # a full disk: the flush at exit would fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        if "usable list" in line:  # g4f keeps a broken registry for the day: remove it, for the next run
            (Path(get_cache_dir()) / ".models" / time.strftime("%Y-%m-%d") / "providers.json").unlink(True)
        print(hide(traceback.format_exc() if args.debug else "") + f"error: {hide(line)}", file=err)
        return 1
    finally:
        sys.stdout, sys.stderr = out, err
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
