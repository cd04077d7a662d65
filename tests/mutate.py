"""Mutation check: make single-line breaks of messages_stream.py and run the test suite on each.

    python tests/mutate.py [--jobs 2] [--lines A-B] [--tests tests/test_cli.py ...] [--timeout S] [--list]

A break that no test notices "survives". mutmut 3 does not fit: per mutant it runs only the tests that
called the function in-process, so the subprocess tests never meet a mutant. Each mutant is written into a
private copy of the checkout, never over the real file: an interrupted run leaves nothing to restore.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize
from collections.abc import Generator
from pathlib import Path

ROOT, TARGET = Path(__file__).resolve().parent.parent, "messages_stream.py"
# -x: a mutant is killed at the first failure. One worker each (-n 0): --jobs runs copies side by side.
PYTEST = (sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-n", "0")
# The fast in-process tests first, so that most mutants die within seconds; then the rest, by file.
ORDER = [
    "tests/test_docs.py",
    "tests/test_main.py",
    "tests/test_cli.py",
    "tests/test_edges.py",
    "tests/test_content.py",
    "tests/test_faults.py",
    "tests/test_default.py",
    "tests/test_hosts.py",
]
SWAP = {
    "and": "or",
    "or": "and",
    "<": "<=",
    "<=": "<",
    ">": ">=",
    ">=": ">",
    "==": "!=",
    "!=": "==",
    "True": "False",
    "False": "True",
    "+=": "=",
    "-=": "=",
}
Mutant = tuple[int, str, str]  # line number, the mutated line (for the report), the whole mutated source
Results = Generator[tuple[Mutant, str], None, None]


def mutants(source: str) -> list[Mutant]:
    """Each single-line break: a statement deleted, an operator flipped, a constant or keyword changed."""
    lines, tree = source.splitlines(keepends=True), ast.parse(source)
    docstrings = {
        node.body[0].lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and ast.get_docstring(node, clean=False) is not None
    }
    edits: list[tuple[int, int, int, int, str]] = []  # replace (row, col) to (row, col) with a text

    def span(node: ast.stmt | ast.keyword) -> tuple[int, int, int, int]:
        """Where `node` is, in characters (ast counts a line's columns in UTF-8 bytes)."""

        def col(row: int, byte: int) -> int:
            return len(lines[row - 1].encode()[:byte].decode())

        end = node.end_lineno or node.lineno
        return node.lineno, col(node.lineno, node.col_offset), end, col(end, node.end_col_offset or 0)

    for node in ast.walk(tree):
        # Deleting an import fails at once and teaches nothing; a docstring or `pass` is no behaviour.
        if (
            isinstance(node, ast.stmt)
            and not hasattr(node, "body")
            and node.lineno not in docstrings
            and not isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass))
        ):
            edits.append((*span(node), "pass"))
        if isinstance(node, ast.keyword) and node.lineno == node.end_lineno:
            row, start, _, end = span(node)  # drop it with the comma after it, else the one before
            after, before = lines[row - 1][end:], lines[row - 1][:start].rstrip()
            if after.lstrip().startswith(","):
                end += len(after) - len(after.lstrip()[1:].lstrip())
            elif before.endswith(","):
                start = len(before) - 1
            edits.append((row, start, row, end, ""))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):  # comments are no tokens
        (row, start), (end_row, end) = token.start, token.end
        if token.string in SWAP and token.type in (tokenize.NAME, tokenize.OP):
            edits.append((row, start, row, end, SWAP[token.string]))
        elif token.string == "not":  # `not x` -> `x`, `not in` -> `in`, `is not` -> `is`
            edits.append((row, start, row, end + 1, ""))
        elif token.type == tokenize.NUMBER:
            edits.append((row, start, row, end, repr(ast.literal_eval(token.string) + 1)))
        elif token.type == tokenize.STRING and row == end_row and row not in docstrings:
            edits.append((row, start, row, end, '"XX"'))  # f-strings too, up to 3.11 (3.12 splits them)
    found: dict[str, Mutant] = {}
    for row, start, end_row, end, text in sorted(edits):
        # A statement over several lines becomes `pass` on its first one; blank lines keep the numbering.
        new = [
            *lines[: row - 1],
            lines[row - 1][:start] + text + lines[end_row - 1][end:],
            *["\n"] * (end_row - row),
            *lines[end_row:],
        ]
        with contextlib.suppress(SyntaxError):  # e.g. `not(x)` -> `x)`
            if compile(mutated := "".join(new), TARGET, "exec") and mutated != source:
                found.setdefault(mutated, (row, new[row - 1].strip(), mutated))
    return list(found.values())


def run(todo: list[Mutant], copies: list[Path], tests: list[str], timeout: float) -> Results:
    """Run the suite on each mutant, one per copy at a time; yield it: "killed", "survived" or "timeout"."""
    pending, running = list(todo), dict[Path, tuple[Mutant, subprocess.Popen[bytes], float]]()
    # The copy's module first on the path: so the one imported, and the one conftest's SCRIPT runs. No .pyc:
    # a mutant of the same size, written within the same second, would reuse the last one's.
    env = {**os.environ, "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("MESSAGES_STREAM_INSTALLED", None)  # conftest's guard for CI's installed package
    try:
        while pending or running:
            for copy in [copy for copy in copies if copy not in running][: len(pending)]:
                (copy / TARGET).write_text(pending[0][2], encoding="utf-8")
                env["PYTHONPATH"] = str(copy)
                # A session of its own, so that ending it ends the scripts and servers the tests started.
                running[copy] = (
                    pending.pop(0),
                    subprocess.Popen(
                        [*PYTEST, *tests],
                        cwd=copy,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    ),
                    time.monotonic(),
                )
            time.sleep(0.1)
            for copy, (mutant, proc, began) in list(running.items()):
                if (code := proc.poll()) is None and time.monotonic() - began < timeout:
                    continue
                end(running.pop(copy)[1])
                yield mutant, "timeout" if code is None else "survived" if code == 0 else "killed"
    finally:  # closed (Ctrl-C reaches only this process, not the suites' sessions): end the suites
        for _, proc, _ in running.values():
            end(proc)


def end(proc: subprocess.Popen[bytes]) -> None:
    """Kill `proc`'s session: it, and whatever it started and left behind."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", default="1-999999", help="only break lines A-B")
    parser.add_argument("--tests", nargs="*", default=ORDER, help="run only these tests (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="suites run at once, each in a copy of its own")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x the clean run + 10)")
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    args = parser.parse_args()
    first, last = map(int, args.lines.split("-"))
    source = (ROOT / TARGET).read_text(encoding="utf-8")  # one snapshot: others may edit the checkout
    original, results = source.splitlines(), list[tuple[Mutant, str]]()
    todo = [mutant for mutant in mutants(source) if first <= mutant[0] <= last]
    if args.list:
        print(*(f"line {row}: {original[row - 1].strip()} -> {new}" for row, new, _ in todo), sep="\n")
        print(f"{len(todo)} mutants")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutate-") as work:
        skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*_cache")
        copies = [Path(shutil.copytree(ROOT, Path(work, str(n)), ignore=skip)) for n in range(args.jobs)]
        # A file that cannot even be imported must be killed: else the tests did not run the copy's file.
        started, sane = time.monotonic(), [(0, "unbroken", source), (0, "broken", "raise SystemExit(3)\n")]
        with contextlib.closing(run(sane, copies[:1], args.tests, 3600)) as checks:
            said = {"survived": "passes", "killed": "fails", "timeout": "times out"}
            clean, broken = (said[result] for _, result in checks)
        if (clean, broken) != ("passes", "fails"):
            sys.exit(f"the suite {clean} on the unbroken file, and {broken} on a broken one, in a copy")
        timeout = args.timeout or 3 * (time.monotonic() - started) + 10
        print(f"checks {time.monotonic() - started:.0f} s; {len(todo)} mutants, at most {timeout:.0f} s each")
        with (
            contextlib.suppress(KeyboardInterrupt),
            contextlib.closing(run(todo, copies, args.tests, timeout)) as done,
        ):  # Ctrl-C: a summary of the mutants run
            for mutant, result in done:
                results.append((mutant, result))
                print(f"[{len(results)}/{len(todo)}] {result:8} line {mutant[0]}: {mutant[1]}", flush=True)
    survivors = sorted(mutant for mutant, result in results if result == "survived")
    total, timeouts = len(results), sum(result == "timeout" for _, result in results)
    score = 100 * (total - len(survivors)) / (total or 1)
    print(
        f"\n{total} of {len(todo)} mutants run: {total - len(survivors) - timeouts} killed, "
        f"{timeouts} timed out (counted as killed), {len(survivors)} survived; score {score:.1f} %"
    )
    for row, new, _ in survivors:
        print(f"line {row}: {original[row - 1].strip()} -> {new}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
