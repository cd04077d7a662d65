"""Stream a chat completion with g4f's AsyncClient: main() is the lesson, then the command line."""

import asyncio
import logging
import os
import sys

from g4f.client import AsyncClient
from g4f.client.factory import create_custom_provider

PROMPT = "Say hello there!"
MODEL = "gpt-4"
TIMEOUT = 60.0  # seconds to wait for the first chunk, and then for each next one
log = logging.getLogger(__name__)


async def main(prompt: str | list[dict[str, str]] = PROMPT, model: str = MODEL,
               provider: str | None = None, timeout: float = TIMEOUT) -> str:
    """Stream the answer to `prompt` (a user message, or a list of messages); print and return it.
    After printing the final text, raises TimeoutError, ValueError (no text) or g4f's own error."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    text, thought = "", False
    try:
        async with asyncio.timeout(timeout) as limit:
            client = AsyncClient(provider=to_provider(provider, model))
            # Not awaited: create() returns the stream at once. It can raise already, hence the try.
            stream = client.chat.completions.create(model=model, messages=messages, stream=True)
            async for chunk in stream:
                limit.reschedule(asyncio.get_running_loop().time() + timeout)  # restart the wait
                for choice in chunk.choices:
                    if choice.delta.reasoning:  # a thinking model's thoughts are not the answer
                        thought = True
                        print(choice.delta.reasoning, end="", file=sys.stderr, flush=True)
                    if choice.delta.content is not None:
                        text += str(choice.delta.content)  # sources and images come as markdown
                        print(choice.delta.content, end="", flush=True)  # shown now, not at the end
                    if choice.finish_reason:  # the last chunk: who answered, after any fallback
                        log.info("%s answered with %s", chunk.provider, chunk.model)
    except TimeoutError as error:
        if limit.expired():  # asyncio's own TimeoutError has no message
            raise TimeoutError(f"no response from the provider within {timeout:g} s") from error
        raise
    finally:
        print(f"\n\nFinal accumulated text: {text}", flush=True)
        print(end="\n" if thought else "", file=sys.stderr, flush=True)  # end the reasoning's line
    if not text:
        raise ValueError("the provider sent only reasoning" if thought else "the answer is empty")
    return text


def to_provider(provider: str | None, model: str) -> object:
    """`provider`: a g4f provider name, an OpenAI-compatible API's base URL, or None: g4f chooses.
    g4f's provider list and a base URL's model list are look-ups that block the loop, untimed; a
    base URL's provider that knows its model needs neither, and it alone gets G4F_API_KEY."""
    if provider and provider.lower().startswith(("http://", "https://")):
        key = os.environ.get("G4F_API_KEY")
        name = provider.split("@")[-1]  # g4f would show the URL's user:password in the name
        return create_custom_provider(provider, api_key=key, models=[model], name=name)
    return provider or None


# ---- The command line ----------------------------------------------------------------------------
# Below, what makes main() a dependable command. It owns the process: signals, exit codes, the streams.

import argparse
import io
import re
import signal
import threading
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from importlib.metadata import version
from pathlib import Path
from typing import TextIO, TypeGuard

import aiohttp
import g4f.config
import g4f.requests
import requests
from g4f import debug
from g4f.errors import MissingAuthError, ProviderNotFoundError, RetryProviderError

URL = "https://g4f.dev/dist/js/providers.json"
REGISTRY = f"g4f's provider registry ({URL})"
ENDS = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGALRM", signal.SIGTERM)}  # what ends a run
LIST = "python -c 'import g4f.Provider; print(*g4f.Provider.ProviderLoader.names)'"  # valid providers
VISIBLE = {c: f"^{chr(c ^ 64)}" for c in [*range(9), *range(11, 32), 127]}  # ESC as ^[; not tab, newline
VISIBLE |= {c: f"\\x{c:x}" for c in range(128, 160)}  # the C1 controls, CSI (\\x9b) among them

def end_on_signals() -> None:
    """The first SIGINT or SIGTERM ends the run with 130 or 143, the shell's codes (see stop())."""
    for number in signal.SIGINT, signal.SIGTERM:
        signal.signal(number, lambda signum, frame: stop(128 + signum))

def stop(code: int | str) -> None:
    """End the run at once, even inside a blocking call, and in 2 s whatever stdout does. Later signals
    stay blocked, so none cuts the ending short; one that came before finds the run already ending."""
    if hasattr(signal, "pthread_sigmask") and signal.pthread_sigmask(signal.SIG_BLOCK, ENDS) >= ENDS:
        return
    deadline = threading.Timer(2.0, os._exit, [code if isinstance(code, int) else 1])
    deadline.daemon = True  # it ends the process only if the process has not ended by then
    deadline.start()
    sys.exit(code)  # SystemExit gets past g4f's `except Exception`, which would try the next provider

async def run(messages: list[dict[str, str]], args: argparse.Namespace) -> None:
    """Run main() under an alarm for calls that block the event loop; close g4f's shared connections."""
    def ring(signum: int, frame: object) -> None:
        where = args.provider or ("g4f's default provider" if has_registry() else "g4f's provider registry")
        stop(f"error: no response from {hide(where)} within {args.timeout:g} s")
    def heartbeat() -> None:  # re-arms the alarm from the loop: only a call that blocks the loop lets it ring
        signal.setitimer(signal.ITIMER_REAL, args.timeout + beat)
        loop.call_later(beat, heartbeat)
    loop, beat = asyncio.get_running_loop(), min(1.0, args.timeout / 4)
    if hasattr(signal, "setitimer"):  # not on Windows: there, a look-up that hangs is not bounded
        signal.signal(signal.SIGALRM, ring)
        heartbeat()
    try:
        await main(messages, args.model, args.provider, args.timeout)
    finally:
        if hasattr(signal, "setitimer"):  # the alarm may ring once more, as the connections close: unheard
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
        await g4f.requests.close_shared_connectors()  # g4f never closes them: "Unclosed connector" at exit

def has_registry() -> bool:
    """Whether g4f has its provider list: any_provider, whose import downloads it, defines AnyProvider."""
    return hasattr(sys.modules.get("g4f.providers.any_provider"), "AnyProvider")

def printing_failed(error: BaseException) -> TypeGuard[OSError]:
    """Whether printing raised `error`: an OSError with an errno (not main()'s TimeoutError), in this file."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return isinstance(error, OSError) and bool(error.errno) and frame.filename == __file__

def describe(error: Exception, provider: str) -> str:
    """Say in plain words, on one line, what failed and where."""
    where = provider or "g4f's default provider"
    if printing_failed(error):
        message = f"cannot write to stdout ({error.strerror})"
    elif traceback.extract_tb(error.__traceback__)[-1].name == "main":  # main()'s own words
        message = str(error)
    elif isinstance(error, requests.ConnectionError):  # in one of g4f's blocking look-ups
        url = str(error.request.url) if error.request else where
        message = f"cannot reach {REGISTRY if url == URL else url}; check the network and any proxy settings"
    elif not provider and not has_registry():  # failed before g4f had its list of providers
        message = f"{REGISTRY} sent no usable list of providers; try again later"
    elif isinstance(error, ProviderNotFoundError):
        message = f"unknown provider {provider!r}; list the valid names with: {LIST}"
    elif isinstance(error, RetryProviderError):  # a line for each provider follows the first line
        first, *others = str(error).splitlines()[1:] or [str(error)]
        message = f"all {1 + len(others)} providers that g4f tried failed; the first, {first[:120]}"
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
        message = f"{where} failed: {str(error) or type(error).__name__}"
    return " ".join(message.split())  # a server's message can span lines

def hide(text: str) -> str:
    """Mask the secrets: a URL's `user:password@`, and the API key where it is long enough to be one."""
    key = os.environ.get("G4F_API_KEY", "")
    text = re.sub(r"(?<=://)[^/@\s]+@", "***@", text)
    return text.replace(key, "***") if len(key) >= 8 else text  # `ollama`, `EMPTY`: dummies, not secrets

class Shown(io.TextIOBase):
    """A terminal's stdout or stderr: it shows a provider's control characters, and dims if `dim`."""
    def __init__(self, stream: TextIO, dim: bool = False) -> None:
        self.stream = stream
        self.style = "\033[2m" if dim and not os.environ.get("NO_COLOR") else ""
    def write(self, text: str) -> int:
        """Write `text` and flush it, its control characters made visible (see VISIBLE), in the style."""
        self.stream.write(self.style + text.translate(VISIBLE) + "\033[0m" * bool(self.style) if text else "")
        self.stream.flush()
        return len(text)

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line; the defaults come from g4f's own environment variables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="API key: $G4F_API_KEY.")
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
    return args

def cli(argv: list[str] | None = None) -> int:
    """Run main() as a command: one `error:` line and an exit code for what fails; signals end it in order."""
    end_on_signals()
    args = parse_args(argv)
    if not (8, 8, 6) <= tuple(int(n) for n in re.findall(r"\d+", version("g4f"))[:3]) < (9,):
        sys.exit(f"error: this needs g4f>=8.8.6,<9, not {version('g4f')}: pip install 'g4f>=8.8.6,<9'")
    system = [{"role": "system", "content": args.system}] if args.system else []
    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]  # what it cannot encode: "?"
    out = Shown(sys.stdout) if sys.stdout.isatty() else sys.stdout  # the filter on a terminal only
    err = Shown(sys.stderr, dim=True) if sys.stderr.isatty() else sys.stderr
    with redirect_stdout(out), redirect_stderr(err):
        logging.basicConfig(format="%(message)s", level=logging.INFO if args.verbose else logging.WARNING)
        if args.debug:  # g4f logs to stdout by default, and stdout is for the answer alone
            debug.enable_logging(lambda *text, **_: print(hide(" ".join(map(str, text))), file=sys.stderr))
        try:
            asyncio.run(run([*system, {"role": "user", "content": args.prompt}], args))
        except Exception as error:
            if printing_failed(error):
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stdout broke: the flush at exit must not fail
                if isinstance(error, BrokenPipeError):  # the reader has gone (`| head`): quiet, as SIGPIPE
                    return 141
            if not args.provider and not has_registry():  # g4f keeps a broken registry all day
                cache = Path(g4f.config.get_cache_dir()) / ".models" / time.strftime("%Y-%m-%d")
                (cache / "providers.json").unlink(missing_ok=True)
            error_line = f"error: {describe(error, args.provider)}"
            print(hide(traceback.format_exc() if args.debug else "") + hide(error_line), file=sys.stderr)
            return 1
    return 0

if __name__ == "__main__":
    sys.exit(cli())
