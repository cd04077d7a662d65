"""Benchmark: does messages_stream.py add anything measurable to g4f's own cost?

    python tests/benchmark.py [--runs 5] [--sizes 1000,10000,100000]

Run by hand, never by pytest (it prints figures; it asserts only that each process printed the answer).
It serves N chunks as fast as it can from the tests' loopback OpenAI-compatible server, in a process of
its own, and runs each of these as a process with stdout to a pipe, interleaved, several times:
- product: `python messages_stream.py --provider URL`;
- bare g4f loop: the smallest script that streams the same request through AsyncClient and prints each
  delta flushed, the floor for any g4f client;
- raw aiohttp: the same stream read with aiohttp alone, the floor for any Python client.
Wall and CPU time and peak RSS come from the kernel (wait4). It also measures time to first token (one
chunk every 50 ms), start-up, and the example's own cost: the CPU time of messages_stream.main() with
g4f's AsyncClient replaced by a fake stream that yields to the event loop at every chunk, as a real
stream does (the fake stream's own share is printed beside it).

The targets: at 10,000 chunks the product takes at most 1.10 times the bare g4f loop; the example's own
cost is at most 6 µs a chunk, the same at every length (100,000 / 10,000 chunks at most 1.1).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SCRIPT = TESTS.parent / "messages_stream.py"
MODEL = "bench-model"


def pieces(size: int) -> list[str]:
    """The streamed text: `size` chunks of 9 characters."""
    return [f"tok{i % 100000:05d} " for i in range(size)]


# The server runs in a process of its own: on Linux a child's peak RSS counts its parent's memory from
# before exec, and 100,000 prepared events would inflate every figure. For each line read on stdin it
# answers with the time.monotonic() of the latest stream's first write (the clock is system-wide).
SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from benchmark import pieces
from server import openai_server, text_events
with openai_server(events=text_events(pieces(int(sys.argv[2]))), delay=float(sys.argv[3])) as server:
    print(server.url, flush=True)
    for _ in sys.stdin:
        print(server.first_write, flush=True)
        server.first_write = None
"""

BARE_LOOP = f"""
import asyncio, sys
from g4f.client import AsyncClient
from g4f.client.factory import create_custom_provider

async def main():
    client = AsyncClient(provider=create_custom_provider(sys.argv[1], models=["{MODEL}"]))
    stream = client.chat.completions.create(
        model="{MODEL}", messages=[{{"role": "user", "content": "hi"}}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)

asyncio.run(main())
"""

RAW_READER = f"""
import asyncio, json, sys
import aiohttp

async def main():
    body = {{"model": "{MODEL}", "messages": [{{"role": "user", "content": "hi"}}], "stream": True}}
    async with aiohttp.ClientSession() as session:
        async with session.post(sys.argv[1] + "/chat/completions", json=body) as response:
            async for line in response.content:
                if line.startswith(b"data: {{"):
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        print(choices[0]["delta"]["content"], end="", flush=True)

asyncio.run(main())
"""

# The example's own cost: messages_stream.main() with g4f's AsyncClient replaced by a fake stream of N
# chunks (stdout to /dev/null), free of g4f's and of the network's cost. The fake stream yields to the event
# loop before each chunk, as a real one does, so that main()'s timeout and its moves are paid as in life.
# It prints two figures, in CPU seconds per chunk: main() with the fake stream, and the fake stream alone.
OWN_LOOP = """
import asyncio, os, sys, time
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
import messages_stream
from benchmark import pieces

def chunk(content, finish_reason=None):
    delta = SimpleNamespace(content=content, reasoning=None)
    choice = SimpleNamespace(delta=delta, finish_reason=finish_reason)
    return SimpleNamespace(choices=[choice], provider="fake-provider", model="fake-model")

chunks = [chunk(piece) for piece in pieces(int(sys.argv[2]))] + [chunk(None, "stop")]

async def stream():
    for item in chunks:
        await asyncio.sleep(0)  # a real stream waits for the network: the event loop runs in between
        yield item

async def stream_alone():
    async for _ in stream():
        pass

async def per_chunk(coroutine):  # CPU time, inside the loop: not the loop's start, nor other processes
    started = time.process_time()
    await coroutine
    return (time.process_time() - started) / len(chunks)

fake = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=lambda **_: stream())))
messages_stream.AsyncClient = lambda **_: fake
sys.stdout = open(os.devnull, "w")
with_main = asyncio.run(per_chunk(messages_stream.main("hi", model="fake-model")))
alone = asyncio.run(per_chunk(stream_alone()))
print(with_main, alone, file=sys.stderr)
"""


@dataclass
class Run:
    """What one process cost: seconds of wall and CPU time, peak RSS in bytes; what it printed, and when."""

    wall: float
    cpu: float
    rss: int
    out: bytes
    first_byte: float  # time.monotonic() when the first byte arrived on its stdout


def measure(argv: list[str], env: dict[str, str]) -> Run:
    """Run `argv` with stdout to a pipe; read its cost from the kernel (wait4) rather than guess it."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert process.stdout is not None
    out = process.stdout.read(1)
    first_byte = time.monotonic()
    out += process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # Linux reports KiB
    return Run(wall, usage.ru_utime + usage.ru_stime, rss, out, first_byte)


@contextlib.contextmanager
def serve(size: int, delay: float = 0.0) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start the loopback server in its own process; yield its base URL and the process."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(TESTS), str(size), str(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        yield server.stdout.readline().strip(), server
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        server.stdout.close()


def fmt(values: list[float], scale: float = 1.0) -> str:
    """Median (min-max) of `values`, each multiplied by `scale`."""
    scaled = [value * scale for value in values]
    return f"{statistics.median(scaled):.3g} ({min(scaled):.3g}-{max(scaled):.3g})"


def median(runs: list[Run], field: str) -> float:
    """The median of one field over `runs`."""
    return float(statistics.median(getattr(run, field) for run in runs))


def main() -> None:
    """Run every measurement, print the tables and the ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each process (default: %(default)s)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="chunk counts (default: %(default)s)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"messages-stream-bench-{os.getpid()}"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("G4F_", "HTTP"))}
    env.update(HOME=str(home), G4F_CONFIG_DIR=str(home / "g4f"), G4F_CACHE_DIR=str(home / "cache"))
    python, names = sys.executable, ("product", "bare g4f loop", "raw aiohttp")

    def commands(url: str) -> dict[str, list[str]]:
        """The three processes, for a server at `url`."""
        return {
            "product": [python, str(SCRIPT), "--provider", url, "--model", MODEL],
            "bare g4f loop": [python, "-c", BARE_LOOP, url],
            "raw aiohttp": [python, "-c", RAW_READER, url],
        }

    print(
        f"Measured on loopback, {time.strftime('%Y-%m-%d')}: Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores; {args.runs} runs each, stdout to a pipe; "
        "median (min-max).\n"
    )
    print("| chunks | process | wall s | CPU s | µs per chunk (wall) | peak RSS MiB |")
    print("|---:|---|---|---|---|---|")
    verdicts: list[str] = []
    extra_rss: dict[int, float] = {}
    for size in sizes:
        text = "".join(pieces(size)).encode()
        runs: dict[str, list[Run]] = {name: [] for name in names}
        with serve(size) as (url, _):
            for _ in range(args.runs):  # interleaved, so that drift hits all three alike
                for name, argv in commands(url).items():
                    run = measure(argv, env)
                    assert run.out.startswith(text), f"{name} printed something else"
                    run.out = b""  # a large parent would inflate its children's peak RSS
                    runs[name].append(run)
        for name in names:
            results = runs[name]
            print(
                f"| {size:,} | {name} | {fmt([r.wall for r in results])} | {fmt([r.cpu for r in results])} "
                f"| {fmt([r.wall / size for r in results], 1e6)} | {fmt([r.rss for r in results], 2**-20)} |"
            )
        product, bare = runs["product"], runs["bare g4f loop"]
        target = "target <= 1.10" if size == 10000 else "the target is set at 10,000 chunks"
        verdicts.append(
            f"wall, product / bare loop, {size:,} chunks: "
            f"{median(product, 'wall') / median(bare, 'wall'):.3f} ({target})"
        )
        extra_rss[size] = median(product, "rss") - median(bare, "rss")
        verdicts.append(
            f"peak RSS, product - bare loop, {size:,} chunks: {extra_rss[size] / 2**20:+.2f} MiB, "
            f"for {len(text) / 2**20:.2f} MiB of text (target <= 2x the text)"
        )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        grown = extra_rss[large] - extra_rss[small]
        text_grown = len("".join(pieces(large))) - len("".join(pieces(small)))
        verdicts.append(
            f"peak RSS, what product - bare loop grows by from {small:,} to {large:,} chunks: "
            f"{grown / 2**20:+.2f} MiB = {grown / text_grown:+.2f}x the text it grew by"
        )

    # The example's own cost, g4f replaced by a fake stream: at most 6 µs a chunk, at every length.
    own: dict[int, list[float]] = {}
    alone: dict[int, list[float]] = {}
    for size in sizes:
        for _ in range(args.runs):
            printed = subprocess.run(
                [python, "-c", OWN_LOOP, str(TESTS), str(size)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stderr.split()
            own.setdefault(size, []).append(float(printed[0]))
            alone.setdefault(size, []).append(float(printed[1]))
    print("\n| chunks | main() with g4f replaced by a fake stream, CPU µs a chunk | the fake stream alone |")
    print("|---:|---|---|")
    for size in sizes:
        print(f"| {size:,} | {fmt(own[size], 1e6)} | {fmt(alone[size], 1e6)} |")
        cost, stream_cost = statistics.median(own[size]) * 1e6, statistics.median(alone[size]) * 1e6
        verdicts.append(
            f"the example's own cost, {size:,} chunks: {cost:.2f} µs a chunk of CPU time (target <= 6), "
            f"{cost - stream_cost:.2f} without the fake stream's"
        )
    if 10000 in own and 100000 in own:
        ratio = statistics.median(own[100000]) / statistics.median(own[10000])
        verdicts.append(
            f"the example's own cost a chunk, 100,000 / 10,000 chunks: {ratio:.2f} (target <= 1.1)"
        )

    # Time to first token: one chunk every 50 ms; from the server's first write to the first byte out.
    print("\n| measurement | product | bare g4f loop | raw aiohttp |")
    print("|---|---|---|---|")
    first: dict[str, list[float]] = {name: [] for name in names}
    with serve(10, delay=0.05) as (url, server):
        assert server.stdin is not None and server.stdout is not None
        for _ in range(args.runs):
            for name, argv in commands(url).items():
                run = measure(argv, env)
                server.stdin.write("\n")
                server.stdin.flush()
                first[name].append(run.first_byte - float(server.stdout.readline()))
    print("| time to first token, ms | " + " | ".join(fmt(first[name], 1e3) for name in names) + " |")
    delay = statistics.median(first["product"]) - statistics.median(first["bare g4f loop"])
    verdicts.append(f"time to first token, product - bare loop: {delay * 1e3:+.2f} ms (target <= 5 ms)")

    # Start-up: the product's --help against importing g4f's client alone.
    helps = [measure([python, str(SCRIPT), "--help"], env).wall for _ in range(args.runs)]
    imports = [measure([python, "-c", "import g4f.client"], env).wall for _ in range(args.runs)]
    print(f"| start-up s: `--help`, and `import g4f.client` | {fmt(helps)} | {fmt(imports)} | |")
    ratio = statistics.median(helps) / statistics.median(imports)
    verdicts.append(f"start-up, --help / import g4f.client: {ratio:.3f} (target <= 1.1)")
    print("\n" + "\n".join(f"- {verdict}" for verdict in verdicts))


if __name__ == "__main__":
    main()
