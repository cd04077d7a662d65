"""Stream a chat completion with g4f's AsyncClient, printing the answer as it arrives.

    python messages_stream.py [PROMPT | -] [--model M] [--provider NAME_OR_URL] [--timeout S] [--debug]

stdout carries only the answer and a final line; a failure is one `error: ...` line on stderr.
Exit codes: 0 done, 1 failed, 2 usage error, 130 Ctrl-C, 141 stdout closed early, 143 SIGTERM.
"""

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import requests
from g4f import debug
from g4f.client import AsyncClient
from g4f.client.factory import create_custom_provider
from g4f.errors import MissingAuthError, ProviderNotFoundError
from g4f.requests import close_shared_connectors

PROMPT = "Say hello there!"
MODEL = "gpt-4"
TIMEOUT = 60.0  # seconds to wait for the provider to say anything: the first chunk, or the next one
NO_RESPONSE = "no response from the provider within {:g} s"
# deadline() bounds every wait with a POSIX alarm. g4f's own stream_timeout is only the fallback where
# there is none (Windows): it cannot end g4f's blocking look-ups, and costs an asyncio.wait_for a chunk.
ALARM = hasattr(signal, "setitimer")


async def main(prompt: str = PROMPT, model: str = MODEL, provider: str | None = None,
               timeout: float = TIMEOUT) -> str:
    """Stream the answer to `prompt`, printing each piece as it arrives; return the whole text.

    `provider` is a g4f provider name, the base URL of an OpenAI-compatible API, or None for g4f's choice.
    """
    text = ""
    try:
        with deadline(timeout) as progress:
            client = AsyncClient(provider=to_provider(provider, model), api_key=os.environ.get("G4F_API_KEY"))
            # Not awaited: create() returns an async iterator at once. It can raise already (g4f looks
            # up its providers here), so it belongs inside the `try` too.
            stream = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                stream_timeout=None if ALARM else timeout,  # g4f's own bound; see ALARM
            )
            async for chunk in stream:
                progress()
                # `choices` can be empty; `content` can be None (reasoning, the last chunk) or a media object.
                content = chunk.choices[0].delta.content if chunk.choices else None
                if isinstance(content, str) and content:
                    text += content  # first: a signal may end the run before the next line
                    print(content, end="", flush=True)  # flushed, or the "stream" arrives all at once
        if not text:  # g4f drops the errors some providers yield instead of raising: silence hides one
            raise SystemExit("error: the provider returned an empty response")
    except BrokenPipeError:
        raise  # the reader of stdout has gone (`| head`): nothing to report, cli() ends quietly
    except Exception as error:
        details = traceback.format_exc() if debug.logging else ""  # the traceback only with --debug
        raise SystemExit(hide_key(f"{details}error: {describe(error, provider, timeout)}")) from error
    finally:
        await close_shared_connectors()  # g4f never closes its aiohttp connector: "Unclosed connector"
        print(f"\n\nFinal accumulated text: {text}", flush=True)  # even after an error: keep what came
    return text


def to_provider(provider: str | None, model: str) -> Any:
    """Turn a base URL into a g4f provider class; leave a provider name (or None) for g4f to resolve."""
    if provider and provider.startswith(("http://", "https://")):
        # Naming the model up front spares g4f its blocking `GET /models`, which has no timeout.
        return create_custom_provider(provider.rstrip("/"), models=[model])
    return provider or None  # "" too means g4f's own choice


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Callable[[], object]]:
    """Give up after `seconds` without progress, even inside a blocking call; yield what marks progress.

    Some of g4f's look-ups block the event loop with no timeout, so no asyncio timeout can end them.
    A POSIX alarm can: its handler raises wherever Python is, in such a call or in the event loop's
    wait, and SystemExit gets past g4f's own `except Exception` (which would only try the next provider).
    """
    if not ALARM:  # Windows: g4f's stream_timeout is the only bound
        yield lambda: None
        return
    message = "error: " + NO_RESPONSE.format(seconds)
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: sys.exit(message))
    progress = functools.partial(signal.setitimer, signal.ITIMER_REAL, seconds)  # (re)starts the countdown
    progress()
    try:
        yield progress
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def describe(error: Exception, provider: str | None, timeout: float) -> str:
    """Say in plain words, on one line, what failed and where."""
    where = provider or "g4f's default provider"
    if isinstance(error, ProviderNotFoundError):
        message = (f"unknown provider {provider!r}; list the valid names with: "
                   'python -c "import g4f.Provider; print(*g4f.Provider.ProviderLoader.names)"')
    elif isinstance(error, (TimeoutError, asyncio.TimeoutError, requests.Timeout)):
        message = NO_RESPONSE.format(timeout)
    elif isinstance(error, requests.ConnectionError):  # from one of g4f's blocking look-ups
        url = str(error.request.url) if error.request else ""
        message = (f"cannot reach g4f's provider registry ({url}); check the network and any proxy settings"
                   if url.endswith("providers.json") else f"cannot connect to {where} (fetching {url})")
    elif isinstance(error, aiohttp.ClientConnectorError):
        reason = os.strerror(error.errno) if error.errno and error.errno > 0 else str(error.strerror)
        message = f"cannot connect to {where} ({reason.lower()})"
    elif isinstance(error, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        message = f"the connection to {where} broke off mid-stream"
    elif isinstance(error, MissingAuthError) or str(error).startswith(("Error 403", "Response 403")):
        message = f"{where} refused the request ({error}); check G4F_API_KEY"
    else:
        message = f"{where} failed: {error or type(error).__name__}"
    return " ".join(message.split())  # a server's message can span lines


def hide_key(text: str) -> str:
    """Mask the API key wherever it appears (servers like to quote a bad key back)."""
    key = os.environ.get("G4F_API_KEY")
    return text.replace(key, "***") if key else text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line; the defaults come from g4f's own environment variables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="API key: $G4F_API_KEY.")
    parser.add_argument("prompt", nargs="?", default=PROMPT, help="the message, or - to read it from stdin")
    parser.add_argument("--model", default=os.environ.get("G4F_MODEL") or MODEL,
                        help="default: $G4F_MODEL, else %(default)s")
    parser.add_argument("--provider", default=os.environ.get("G4F_PROVIDER") or None,
                        help="a g4f provider name, or the base URL of an OpenAI-compatible API "
                             "(default: $G4F_PROVIDER, else g4f's choice)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help="seconds to wait for the first chunk and each next one (default: %(default)g)")
    parser.add_argument("--debug", action="store_true", help="log what g4f does, and show tracebacks")
    args = parser.parse_args(argv)
    if args.prompt == "-":
        args.prompt = sys.stdin.read() if sys.stdin else ""
    if not args.prompt.strip():
        parser.error("the prompt is empty")
    if not 0 < args.timeout < float("inf"):
        parser.error("--timeout must be a positive number of seconds")
    return args


def cli(argv: list[str] | None = None) -> int:
    """Run main() as a command; a failure or a signal ends it earlier, through SystemExit and its code."""
    # Exit with the shell's code for the signal (130 Ctrl-C, 143 SIGTERM), raising wherever Python is:
    # one Ctrl-C is then enough even inside a blocking call, where asyncio.run's own handler would wait.
    for number in signal.SIGINT, signal.SIGTERM:
        signal.signal(number, lambda signum, frame: sys.exit(128 + signum))
    if sys.stdout:  # what the terminal cannot encode becomes "?" instead of an error
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    args = parse_args(argv)
    if args.debug:  # g4f logs to stdout by default, and stdout is for the answer alone
        debug.enable_logging(lambda *text, **_: print(hide_key(" ".join(map(str, text))), file=sys.stderr))
    try:
        asyncio.run(main(args.prompt, args.model, args.provider, args.timeout))
    except BrokenPipeError:
        # The reader of stdout has gone (`| head`): point stdout at /dev/null, so that the flush at exit
        # cannot fail again, and exit as a command killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(cli())
