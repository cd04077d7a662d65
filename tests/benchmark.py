"""Benchmark: does messages_stream.py add anything measurable to g4f's own cost?

    python tests/benchmark.py [--runs 5] [--sizes 1000,10000,100000]

Run by hand, never by pytest. It starts the tests' loopback OpenAI-compatible server and runs, each as
a process of its own with stdout to a pipe, side by side and interleaved:
- product: `python messages_stream.py --provider URL`,
- bare g4f loop: the smallest script that streams the same request through AsyncClient and prints each
  delta flushed (the floor for any g4f client),
- raw aiohttp reader: the same stream read with aiohttp alone (the floor for any Python client).
It prints one table of medians (with min-max) and the ratios that the targets are stated in.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import openai_server, text_events

SCRIPT = Path(__file__).resolve().parent.parent / "messages_stream.py"
MODEL = "bench-model"

BARE_LOOP = f"""
import asyncio, sys
from g4f.client import AsyncClient
from g4f.client.factory import create_custom_provider

async def main():
    client = AsyncClient(provider=create_custom_provider(sys.argv[1], models=["{MODEL}"]))
    stream = client.chat.completions.create(model="{MODEL}", messages=[{{"role": "user", "content": "hi"}}],
                                            stream=True)
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


def fmt(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    """Median (min-max) of `values`, each multiplied by `scale`."""
    scaled = [value * scale for value in values]
    return f"{statistics.median(scaled):.3g}{unit} ({min(scaled):.3g}-{max(scaled):.3g})"


def main() -> None:
    """Run every measurement, print the table and the ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="runs of each process per size (default: %(default)s)"
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="chunk counts (default: %(default)s)")
    args = parser.parse_args()
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"messages-stream-bench-{os.getpid()}"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("G4F_", "HTTP"))}
    env.update(HOME=str(home), G4F_CONFIG_DIR=str(home / "g4f"), G4F_CACHE_DIR=str(home / "cache"))
    python = sys.executable
    print(
        f"# {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} cores; {args.runs} runs each, stdout to a pipe, loopback server\n"
    )
    verdicts: list[str] = []
    print("| chunks | process | wall s | CPU s | µs per chunk (wall) | peak RSS MiB |")
    print("|---:|---|---|---|---|---|")
    own_cost: dict[int, float] = {}
    for size in (int(text) for text in args.sizes.split(",")):
        pieces = [f"tok{i % 100000:05d} " for i in range(size)]  # 9 characters each
        expected = "".join(pieces).lstrip().encode()
        runs: dict[str, list[Run]] = {"product": [], "bare g4f loop": [], "raw aiohttp": []}
        with openai_server(events=text_events(pieces)) as server:
            commands = {
                "product": [python, str(SCRIPT), "--provider", server.url, "--model", MODEL],
                "bare g4f loop": [python, "-c", BARE_LOOP, server.url],
                "raw aiohttp": [python, "-c", RAW_READER, server.url],
            }
            for _ in range(args.runs):  # interleaved, so that drift hits all three alike
                for name, argv in commands.items():
                    run = measure(argv, env)
                    assert run.out.startswith(expected.lstrip()), f"{name} printed something else"
                    runs[name].append(run)
        for name, results in runs.items():
            print(
                f"| {size:,} | {name} | {fmt([r.wall for r in results])} | {fmt([r.cpu for r in results])} | "
                f"{fmt([r.wall / size for r in results], 1e6)} | {fmt([r.rss for r in results], 2**-20)} |"
            )
        product, bare = (
            statistics.median(r.wall for r in runs[name]) for name in ("product", "bare g4f loop")
        )
        own_cost[size] = (product - bare) / size
        verdicts.append(f"wall, product / bare loop at {size:,}: {product / bare:.3f} (target <= 1.05)")
        rss = statistics.median(r.rss for r in runs["product"]) - statistics.median(
            r.rss for r in runs["bare g4f loop"]
        )
        verdicts.append(
            f"peak RSS, product - bare loop at {size:,}: {rss / 2**20:+.2f} MiB, "
            f"{rss / len(expected):+.2f}x the {len(expected) / 2**20:.2f} MiB text (target <= 2x)"
        )
    for size, cost in own_cost.items():
        verdicts.append(f"product's own cost per chunk at {size:,}: {cost * 1e6:+.2f} µs")
    if 10000 in own_cost and 100000 in own_cost:
        ratio = own_cost[100000] / own_cost[10000] if own_cost[10000] > 0 else float("nan")
        verdicts.append(
            f"own cost per chunk, 100,000 / 10,000: {ratio:.2f} (target <= 1.1; a negative or "
            "nan ratio means the own cost is below the noise)"
        )

    # Time to first token: one chunk every 50 ms; from the server's first write to our first byte.
    print("\n| measurement | product | bare g4f loop | raw aiohttp |")
    print("|---|---|---|---|")
    first: dict[str, list[float]] = {name: [] for name in ("product", "bare g4f loop", "raw aiohttp")}
    with openai_server(events=text_events([f"tok{i:05d} " for i in range(10)]), delay=0.05) as server:
        commands = {
            "product": [python, str(SCRIPT), "--provider", server.url, "--model", MODEL],
            "bare g4f loop": [python, "-c", BARE_LOOP, server.url],
            "raw aiohttp": [python, "-c", RAW_READER, server.url],
        }
        for _ in range(args.runs):
            for name, argv in commands.items():
                server.first_write = None
                run = measure(argv, env)
                assert server.first_write is not None
                first[name].append(run.first_byte - server.first_write)
    print("| time to first token, ms | " + " | ".join(fmt(first[name], 1e3) for name in first) + " |")
    delay = statistics.median(first["product"]) - statistics.median(first["bare g4f loop"])
    verdicts.append(f"time to first token, product - bare loop: {delay * 1e3:+.2f} ms (target <= 5 ms)")

    # Start-up: the product's --help against importing g4f's client alone.
    helps = [measure([python, str(SCRIPT), "--help"], env).wall for _ in range(args.runs)]
    imports = [measure([python, "-c", "import g4f.client"], env).wall for _ in range(args.runs)]
    print(f"| start-up, s: `--help` / `import g4f.client` | {fmt(helps)} | {fmt(imports)} | |")
    verdicts.append(
        f"start-up, --help / import g4f.client: {statistics.median(helps) / statistics.median(imports):.3f}"
        " (target <= 1.1)"
    )
    print("\n" + "\n".join(f"- {verdict}" for verdict in verdicts))


if __name__ == "__main__":
    main()
