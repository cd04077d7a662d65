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


def test_the_readme_is_short_and_says_on_its_first_screen_where_the_prompt_goes() -> None:
    readme = (CHECKOUT / "README.md").read_text(encoding="utf-8")
    assert len(readme) <= 12_000, len(readme)
    first_screen = "\n".join(readme.splitlines()[:8])
    assert "**Where your prompt goes.**" in first_screen
    assert "third-party services" in first_screen and "--provider" in first_screen


# What a reviewer rejects in an example: control flow that reads tracebacks or half-imported modules, that
# takes a NameError to mean something about a server, or that asks which version of a library it runs on.
NOT_PUBLIC = ("extract_tb", "__traceback__", "tb_frame", "sys.modules", "NameError", "importlib.metadata")


def test_the_file_decides_by_exception_type_and_where_it_stands_not_by_library_internals() -> None:
    names = {
        ast.unparse(node)
        for node in ast.walk(ast.parse(SOURCE))
        if isinstance(node, (ast.Name, ast.Attribute))
    }
    imported = {
        alias.name if isinstance(node, ast.Import) else f"{node.module}"
        for node in ast.walk(ast.parse(SOURCE))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert [(word, name) for word in NOT_PUBLIC for name in names | imported if word in name] == []
    assert 'startswith(("Error 403"' not in SOURCE and "version(" not in SOURCE
