"""Mutation check: make small breaks of messages_stream.py and run the test suite on each.

    python tests/mutate.py [--jobs 2] [--lines A-B] [--kinds tuple,branch] [--tests tests/test_cli.py ...]
                           [--timeout S] [--list]

A break that no test notices "survives". The kinds of break (--kinds: classic,tuple,branch,condition), each
scored alone and all together:
- classic: a statement deleted, an operator swapped, a constant or string changed, a keyword argument
  removed, a `not` removed: the kinds of the earlier runs, so that their scores stay comparable;
- tuple, "new: tuple member": one element of a tuple, list or set written out with 2 or more removed
  (`(a, b)` becomes `(a,)`, still a tuple); not in a target, an annotation, an import or `__all__`;
- branch, "new: branch collapsed": `A if C else B` becomes `A`, and `B`;
- condition, "new: condition forced": the test of an `if`, `elif` or `while` becomes `True`, and `False`.
Each break is one contiguous edit; one that spans lines is padded with blank lines, to keep the numbering.
mutmut 3 does not fit: per mutant it runs only the tests that called the function in-process, so the
subprocess tests never meet a mutant. Each mutant is written into a private copy of the checkout, never
over the real file: an interrupted run leaves nothing to restore.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import re
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
    "tests/test_g4f_bugs.py",
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
KINDS = {  # --kinds' names of the kinds of break, and the report's
    "classic": "classic",
    "tuple": "new: tuple member",
    "branch": "new: branch collapsed",
    "condition": "new: condition forced",
}
Edit = tuple[int, int, int, int, str]  # replace (row, col) to (row, col), in characters, with a text
# Line number, kind, the lines changed and what they became (for the report), the whole mutated source
Mutant = tuple[int, str, str, str, str]
Results = Generator[tuple[Mutant, str], None, None]


def mutants(source: str) -> list[Mutant]:
    """Each break of each kind (see KINDS), by line; of two that make one source, the first kind's."""
    lines, tree = source.splitlines(keepends=True), ast.parse(source)
    docstrings = {
        node.body[0].lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and ast.get_docstring(node, clean=False) is not None
    }
    edits: dict[str, list[Edit]] = {kind: [] for kind in KINDS.values()}
    classic, skip = edits["classic"], inert(tree)
    for node in ast.walk(tree):
        # Deleting an import fails at once and teaches nothing; a docstring or `pass` is no behaviour.
        if (
            isinstance(node, ast.stmt)
            and not hasattr(node, "body")
            and node.lineno not in docstrings
            and not isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass))
        ):
            classic.append((*span(lines, node), "pass"))
        if isinstance(node, ast.keyword) and node.lineno == node.end_lineno:
            row, start, _, end = span(lines, node)  # drop it with the comma after it, else the one before
            after, before = lines[row - 1][end:], lines[row - 1][:start].rstrip()
            if after.lstrip().startswith(","):
                end += len(after) - len(after.lstrip()[1:].lstrip())
            elif before.endswith(","):
                start = len(before) - 1
            classic.append((row, start, row, end, ""))
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) > 1 and id(node) not in skip:
            edits[KINDS["tuple"]] += members(lines, node)
        if isinstance(node, ast.IfExp):
            for part in node.body, node.orelse:
                edits[KINDS["branch"]].append((*span(lines, node), segment(lines, *span(lines, part))))
        if isinstance(node, (ast.If, ast.While)):  # an `elif` is an If of its own
            edits[KINDS["condition"]] += [(*span(lines, node.test), value) for value in ("True", "False")]
    for token in tokenize.generate_tokens(io.StringIO(source).readline):  # comments are no tokens
        (row, start), (end_row, end) = token.start, token.end
        if token.string in SWAP and token.type in (tokenize.NAME, tokenize.OP):
            classic.append((row, start, row, end, SWAP[token.string]))
        elif token.string == "not":  # `not x` -> `x`, `not in` -> `in`, `is not` -> `is`
            classic.append((row, start, row, end + 1, ""))
        elif token.type == tokenize.NUMBER:
            classic.append((row, start, row, end, repr(ast.literal_eval(token.string) + 1)))
        elif token.type == tokenize.STRING and row == end_row and row not in docstrings:
            classic.append((row, start, row, end, '"XX"'))  # f-strings too, up to 3.11 (3.12 splits them)
    found: dict[str, Mutant] = {}
    for kind, group in edits.items():  # classic first, so that its mutants stay those of the earlier runs
        for row, start, end_row, end, text in sorted(group):
            # A statement over several lines becomes `pass` on its first one, a branch or a tuple a shorter
            # text; blank lines after it keep the numbering.
            new = [
                *lines[: row - 1],
                lines[row - 1][:start] + text + lines[end_row - 1][end:],
                *["\n"] * (end_row - row - text.count("\n")),
                *lines[end_row:],
            ]
            with contextlib.suppress(SyntaxError):  # e.g. `not(x)` -> `x)`
                if compile(mutated := "".join(new), TARGET, "exec") and mutated != source:
                    changed = flat(*lines[row - 1 : end_row]), flat(new[row - 1])
                    found.setdefault(mutated, (row, kind, *changed, mutated))
    return sorted(found.values(), key=lambda mutant: mutant[0])  # a stable sort: within a line, by kind


def span(lines: list[str], node: ast.expr | ast.stmt | ast.keyword) -> tuple[int, int, int, int]:
    """Where `node` is, in characters (ast counts a line's columns in UTF-8 bytes)."""

    def col(row: int, byte: int) -> int:
        return len(lines[row - 1].encode()[:byte].decode())

    end = node.end_lineno or node.lineno
    return node.lineno, col(node.lineno, node.col_offset), end, col(end, node.end_col_offset or 0)


def flat(*texts: str) -> str:
    """The lines of `texts` on one line, for the report: a break that spans lines is shown whole."""
    return " ".join(line.strip() for text in texts for line in text.splitlines() if line.strip())


def segment(lines: list[str], row: int, start: int, end_row: int, end: int) -> str:
    """The text from (row, start) to (end_row, end), columns in characters."""
    text = "".join(lines[row - 1 : end_row])
    return text[start : len(text) - len(lines[end_row - 1]) + end]


def inert(tree: ast.Module) -> set[int]:
    """The ids of the nodes whose literals hold no behaviour to break: in a target (a shorter unpacking
    fails at once, as a deleted import would), in an annotation (a type), in `__all__`, and a literal that
    is a statement of its own. An import's names are no literal to ast."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)) and not isinstance(node.ctx, ast.Load):
            roots.append(node)
        if isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation:
            roots.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            roots.append(node.returns)
        if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Tuple, ast.List, ast.Set)):
            roots.append(node.value)
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets += [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
            roots.append(node)
    return {id(node) for root in roots for node in ast.walk(root)}


def members(lines: list[str], node: ast.Tuple | ast.List | ast.Set) -> list[Edit]:
    """One edit per element of `node`: the element removed, with its comma."""
    spans = [span(lines, element) for element in node.elts]
    *_, end_row, end = span(lines, node)
    # `(a, b)` less b must stay a tuple, `(a,)`, unless its comma is there already, `(a, b,)`. A comment
    # after the last element may hold a comma: not one of the literal's.
    trailing = "," in re.sub("#.*", "", segment(lines, *spans[-1][2:], end_row, end))
    lone = isinstance(node, ast.Tuple) and len(spans) == 2 and not trailing
    edits: list[Edit] = []
    for n, (row, start, last_row, last) in enumerate(spans):
        after = lines[last_row - 1][last:]
        if lone and n == 0:  # `(a, b)` -> `(b,)`: b written anew, with a comma
            edits.append((row, start, *spans[1][2:], segment(lines, *spans[1]) + ","))
        elif after.lstrip().startswith(","):  # it and its comma; and the space up to the next, on one line
            following = spans[n + 1][:2] if n + 1 < len(spans) and spans[n + 1][0] == last_row else None
            edits.append((row, start, *(following or (last_row, last + after.index(",") + 1)), ""))
        elif n:  # the last, or its comma is not right after it: from the end of the one before
            edits.append((*spans[n - 1][2:], last_row, last, "," if lone else ""))
        else:  # the first, its comma not right after it: up to the next one
            edits.append((row, start, *spans[1][:2], ""))
    return edits


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
                (copy / TARGET).write_text(pending[0][4], encoding="utf-8")
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


def tally(label: str, results: list[tuple[Mutant, str]]) -> str:
    """One line of the report: the mutants of `label` run, killed (a timeout counts as killed), survived."""
    total, survived = len(results), sum(result == "survived" for _, result in results)
    if not total:  # no score: a kind with none on these lines must not read as 0 %
        return f"{label}: 0 mutants"
    return (
        f"{label}: {total} mutants, {total - survived} killed, {survived} survived: "
        f"{100 * (total - survived) / total:.1f} %"
    )


def main() -> int:
    """Make the mutants of the kinds and lines asked for; list them, or run the suite on each and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", default="1-999999", help="only break lines A-B")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"only these kinds, of {','.join(KINDS)}")
    parser.add_argument("--tests", nargs="*", default=ORDER, help="run only these tests (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="suites run at once, each in a copy of its own")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x the clean run + 10)")
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    args = parser.parse_args()
    first, last = map(int, args.lines.split("-"))
    if unknown := set(args.kinds.split(",")) - KINDS.keys():
        parser.error(f"--kinds: no kind {', '.join(sorted(unknown))}; the kinds: {','.join(KINDS)}")
    kinds = [kind for name, kind in KINDS.items() if name in args.kinds.split(",")]  # in KINDS' order
    source = (ROOT / TARGET).read_text(encoding="utf-8")  # one snapshot: others may edit the checkout
    results = list[tuple[Mutant, str]]()
    # All kinds made, then chosen: a mutant that two kinds make is the first kind's, whichever are asked for.
    todo = [mutant for mutant in mutants(source) if first <= mutant[0] <= last and mutant[1] in kinds]
    if args.list:
        for row, kind, old, new, _ in todo:
            print(f"line {row} ({kind}): {old} -> {new}")
        for kind in kinds:
            print(f"{kind}: {sum(mutant[1] == kind for mutant in todo)} mutants")
        print(f"all kinds: {len(todo)} mutants")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutate-") as work:
        skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*_cache")
        copies = [Path(shutil.copytree(ROOT, Path(work, str(n)), ignore=skip)) for n in range(args.jobs)]
        # A file that cannot even be imported must be killed: else the tests did not run the copy's file.
        started = time.monotonic()
        sane = [(0, "check", "", "unbroken", source), (0, "check", "", "broken", "raise SystemExit(3)\n")]
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
                row, kind, _, new, _ = mutant
                print(f"[{len(results)}/{len(todo)}] {result:8} line {row} ({kind}): {new}", flush=True)
    survived = {mutant[4] for mutant, result in results if result == "survived"}
    survivors = [mutant for mutant in todo if mutant[4] in survived]  # as listed: by line, then kind
    timeouts = sum(result == "timeout" for _, result in results)
    print(f"\n{len(results)} of {len(todo)} mutants run, {timeouts} timed out (counted as killed)")
    for kind in kinds:
        print(tally(kind, [(mutant, result) for mutant, result in results if mutant[1] == kind]))
    print(tally("all kinds", results))
    for row, kind, old, new, _ in survivors:
        print(f"line {row} ({kind}): {old} -> {new}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
