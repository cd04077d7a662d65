"""The lesson as people read it: the README shows main() as it is, and the lesson stays short and plain."""

from __future__ import annotations

import ast
import inspect

from conftest import CHECKOUT

import messages_stream

SOURCE = inspect.getsource(messages_stream)
LINES = SOURCE.splitlines()
# The boundary: the line that starts the command line, below the lesson (0-based).
LESSON_END = next(n for n, line in enumerate(LINES) if line.startswith("# ---- The command line"))


def test_the_readme_shows_main_exactly_as_the_file_has_it() -> None:
    readme = (CHECKOUT / "README.md").read_text(encoding="utf-8")
    assert inspect.getsource(messages_stream.main) in readme


def test_the_lesson_ends_by_line_65_and_main_takes_at_most_32_lines() -> None:
    main = inspect.getsource(messages_stream.main).splitlines()
    assert len(main) <= 32, len(main)
    code_lines = [line for line in LINES[:LESSON_END] if line.strip()]
    last = inspect.getsource(messages_stream.to_provider).splitlines()[-1]  # the lesson's last function
    assert code_lines[-1] == last
    assert LINES.index(last) + 1 <= 65


def test_the_command_line_takes_at_most_190_lines_and_the_file_250() -> None:
    assert len(LINES) - LESSON_END <= 190  # the boundary marker and all below it
    assert len(LINES) <= 250


def test_the_lesson_has_one_idea_per_line() -> None:
    lesson = "\n".join(LINES[:LESSON_END])
    assert [line for line in lesson.splitlines() if len(line) > 100] == []
    for node in ast.walk(ast.parse(lesson)):
        assert not isinstance(node, ast.NamedExpr), "a walrus in the lesson"
        assert not isinstance(node, ast.If) or "version_info" not in ast.unparse(node.test), "a version test"
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
            assert len(node.targets[0].elts) <= 2, ast.unparse(node)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr":
            assert all(isinstance(arg, ast.Constant) for arg in node.args[1:]), "getattr with a computed name"
