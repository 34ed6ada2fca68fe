"""The last gate before `seamfix apply` writes: every output compiles and pyflakes finds nothing new.

Each rewritten builder, and the adapter module with the functions they ask for, must compile with its own
``from __future__`` flags, and ``ruff check --select F`` (undefined names, unused or duplicate imports,
redefinitions, ...) must report no error in it that the original did not have. A builder that fails is
left untouched, named with the reason, and its functions are not added to the adapter; an error in the
adapter is charged to the builders that asked for the function it is in. The check runs ruff once over
every output (and once more after a refusal, on what is left), in a scratch folder, not per file.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import symtable
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from seamfix.codemods.adapter_module import name_placeholders
from seamfix.codemods.bindings import global_declarations, top_level_names
from seamfix.codemods.formatting import ruff_environment, ruff_executable
from seamfix.codemods.rewrite import FileRewrite
from seamfix.errors import SeamfixError
from seamfix.parallel import call_with_deep_stack, call_with_room

# Ruff's messages name lines ("Redefinition of unused `x` from line 3"), which an inserted import shifts.
_LINE_NUMBER = re.compile(r"\bline \d+")
_FILES_PER_RUN = 200


@dataclass
class Output:
    relpath: str
    old: bytes
    new: bytes


Merge = Callable[[list], tuple[str, dict[str, str]]]
Polish = Callable[[list[tuple[str, bytes, bytes]]], list[bytes]]  # (relpath, old, new) -> what is written


def refuse_failing(rewrites: list[FileRewrite], originals: Mapping[str, bytes], adapter: tuple[str, str],
                   existing: str | None, merge: Merge, polish: Polish = lambda outputs: [new for *_, new in outputs],
                   ) -> None:  # fmt: skip
    """Refuse, in place, every rewrite whose output or adapter functions fail the check; ``originals`` are
    the bytes each rewrite was made from (by project path), ``adapter`` the adapter's path and import name,
    ``polish`` what apply does to the outputs before writing them (formatting): what is checked is what is
    written."""
    adapter_relpath, adapter_module = adapter
    while True:
        active = [r for r in rewrites if r.error is None and r.refused is None and (r.functions or r.routed or r.moved)]
        if not active:
            return
        adapter_text, names = merge([function for rewrite in active for function in rewrite.functions])
        outputs = []
        for rewrite in active:
            outputs.append(Output(rewrite.relpath, originals[rewrite.relpath], name_placeholders(rewrite.data, names)))
        for output, formatted in zip(outputs, polish([(o.relpath, o.old, o.new) for o in outputs]), strict=True):
            output.new = formatted
        adapter = Output(adapter_relpath, (existing or "").encode(), adapter_text.encode())
        failures, gone = _failures([*outputs, adapter])
        refused = {relpath: problems[0][1] for relpath, problems in failures.items() if relpath != adapter_relpath}
        for line, why, key in _adapter_problems(adapter, failures.get(adapter_relpath, []), adapter_module):
            requesting = _requesting(active, adapter_text, names, line) or [r.relpath for r in active]
            moved = next((relpath for relpath in requesting if gone.get(relpath, Counter())[key]), None)
            if moved is not None:
                gone[moved][key] -= 1  # the builder had it where the code was: moved, not new
                continue
            for relpath in requesting:
                refused.setdefault(relpath, f"the adapter function it needs fails the check: {why}")
        if not refused:
            return
        for rewrite in active:
            if rewrite.relpath in refused:
                rewrite.refuse(f"self-check: {refused[rewrite.relpath]}", originals[rewrite.relpath])


Problem = tuple[int, str, tuple[str, str]]  # line, why, ruff's (code, message) without line numbers


class _TooDeep(Exception):
    """The output needs more room to compile than its original: Python importing it would fail."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _compile(output: Output) -> None:
    """Compile the output as its original compiles. Where the original needs more room than this thread
    has (a 3,000-term `+`, which Python itself cannot compile at its default recursion limit) the output
    gets that room too: it is no worse. Where the original fits, the output must fit: an arm moved into the
    adapter from a file that cannot be imported would stop the adapter, and every builder, from importing."""
    try:
        compile(output.new, output.relpath, "exec", dont_inherit=True)
    except RecursionError:
        if _fits(output.old, output.relpath):
            raise _TooDeep(_first_too_deep(output)) from None
        call_with_deep_stack(compile, output.new, output.relpath, "exec", 0, True)


def _fits(data: bytes, relpath: str) -> bool:
    """Does ``data`` compile in this thread without running out of recursion room (a syntax error is no
    lack of room)?"""
    try:
        compile(data, relpath, "exec", dont_inherit=True)
    except RecursionError:
        return False
    except (SyntaxError, ValueError):
        pass
    return True


def _first_too_deep(output: Output) -> int:
    """The line of the first top-level statement of ``output.new`` that alone cannot compile here (0: none)."""
    try:
        tree = call_with_room(ast.parse, output.new)
    except (SyntaxError, ValueError, RecursionError):
        return 0
    text = output.new.decode("utf-8", "replace")
    lines = text.splitlines(keepends=True)
    for statement in tree.body:
        segment = "".join(lines[statement.lineno - 1 : statement.end_lineno])
        if not _fits(segment.encode(), output.relpath):
            return statement.lineno
    return 0


def _failures(outputs: list[Output]) -> tuple[dict[str, list[Problem]], dict[str, Counter]]:
    """For each output that fails, what is wrong in it and was not in the original; and for each output,
    the errors its original had and it has no more (those moved with its code into the adapter)."""
    found: dict[str, list[Problem]] = {}
    gone: dict[str, Counter] = {}
    checked = []
    for output in outputs:
        try:
            _compile(output)
        except SyntaxError as exc:
            found[output.relpath] = [(exc.lineno or 0, f"it does not compile: {exc.msg} (line {exc.lineno})", ("", ""))]
        except _TooDeep as exc:
            why = f"it is too deeply nested for Python to compile, unlike its original (line {exc.line})"
            found[output.relpath] = [(exc.line, why, ("", ""))]
        except (ValueError, RecursionError, MemoryError) as exc:
            found[output.relpath] = [(0, f"it does not compile: {type(exc).__name__}", ("", ""))]
        else:
            checked.append(output)
    for output, (old, new) in zip(checked, _pyflakes(checked), strict=True):
        remaining = Counter(_key(d) for d in old)
        for diagnostic in sorted(new, key=lambda d: d["location"]["row"]):
            key = _key(diagnostic)
            if remaining[key]:
                remaining[key] -= 1
            else:
                why = f"{key[0] or 'syntax'} {diagnostic['message']}"
                found.setdefault(output.relpath, []).append((diagnostic["location"]["row"], why, key))
        gone[output.relpath] = +remaining
    return found, gone


def _pyflakes(outputs: list[Output]) -> list[tuple[list[dict], list[dict]]]:
    """Per output, ruff's F diagnostics of its old and its new text."""
    if not outputs:
        return []
    with tempfile.TemporaryDirectory(prefix="seamfix-check-") as scratch:
        files: dict[str, tuple[int, str]] = {}
        for index, output in enumerate(outputs):
            for side, data in (("old", output.old), ("new", output.new)):
                path = Path(scratch, side, str(index), output.relpath)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                files[str(path)] = (index, side)
        reported: dict[tuple[int, str], list[dict]] = {}
        paths = sorted(files)
        for start in range(0, len(paths), _FILES_PER_RUN):
            for diagnostic in _ruff(paths[start : start + _FILES_PER_RUN], scratch):
                reported.setdefault(files[str(Path(diagnostic["filename"]))], []).append(diagnostic)
    return [(reported.get((index, "old"), []), reported.get((index, "new"), [])) for index in range(len(outputs))]


def _ruff(paths: list[str], cwd: str) -> list[dict]:
    command = [ruff_executable(), "check", "--isolated", "--select", "F", "--output-format", "json", "--no-cache",
               "--exit-zero", "--", *paths]  # fmt: skip
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300, env=ruff_environment())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SeamfixError(f"cannot run ruff for the self-check: {exc}") from None
    if proc.returncode != 0:
        raise SeamfixError(f"ruff failed in the self-check: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout or "[]")


def _key(diagnostic: dict) -> tuple[str, str]:
    return diagnostic.get("code") or "", _LINE_NUMBER.sub("line #", diagnostic["message"])


def _adapter_problems(adapter: Output, failures: list[Problem], module: str) -> list[Problem]:
    """The adapter's failures, and any import in it of the adapter module itself."""
    problems = list(failures)
    try:
        tree = ast.parse(adapter.new)
    except (SyntaxError, ValueError, RecursionError):
        return problems
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            imported = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        else:
            continue
        if module in imported:
            problems.append((node.lineno, f"it imports the adapter module `{module}` itself", ("self", "")))
    return problems + _shadowed_builtins(adapter, tree)


def _shadowed_builtins(adapter: Output, tree: ast.Module) -> list[Problem]:
    """A new function of the adapter reading as a global a name that the adapter binds at its top level
    (hand-written code: `import types as sorted`): every global it reads was a builtin in its builder (the
    rest it is passed or imports), and would be that binding in the adapter. A hand-written ``import *`` may
    bind any name, and a function declaring a name ``global`` binds it when called."""
    bound = top_level_names(tree) | global_declarations(tree)
    try:
        existing = {node.name for node in ast.parse(adapter.old).body if isinstance(node, ast.FunctionDef)}
        table = symtable.symtable(adapter.new.decode("utf-8-sig"), "adapter", "exec")
    except (SyntaxError, ValueError, RecursionError):
        return []
    lines = {node.name: node.lineno for node in tree.body if isinstance(node, ast.FunctionDef)}
    problems = []
    for function in table.get_children():
        if function.get_type() != "function" or function.get_name() in existing:
            continue
        reads = set(function.get_globals())
        for name in sorted(reads & bound):
            why = f"it reads `{name}`, which the adapter module binds at its top level, not its builder"
            problems.append((lines.get(function.get_name(), 0), why, ("shadow", name)))
        for name in sorted(reads - bound if "*" in bound else ()):
            why = f"it reads `{name}`, which the adapter module's `import *` may bind, unlike its builder"
            problems.append((lines.get(function.get_name(), 0), why, ("shadow", name)))
    return problems


def _requesting(active: list[FileRewrite], adapter_text: str, names: dict[str, str], line: int) -> list[str]:
    """The builders that asked for the adapter function holding ``line`` (none: a line outside them)."""
    try:
        tree = call_with_room(ast.parse, adapter_text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    holding = {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= node.end_lineno
    }
    placeholders = {placeholder for placeholder, name in names.items() if name in holding}
    return [r.relpath for r in active if any(f.placeholder in placeholders for f in r.functions)]
