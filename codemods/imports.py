"""Import edits of a rewritten builder: import the seam; drop MLA imports that only moved code used."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator

import libcst as cst
import libcst.helpers
from libcst import matchers

from seamfix.analysis.seam_bindings import absolute_module
from seamfix.codemods.context import PLACEHOLDER_PREFIX, FileContext
from seamfix.codemods.nodes import Span, SpanSet
from seamfix.vocabulary.names import NameClassifier

_NOQA = "# noqa: F401"
# a bare noqa comment, or one that names F401 (unused import), as ruff reads them: meant to stay unused
_NOQA_COMMENT = re.compile(r"#\s*noqa(?!:)|#\s*noqa:[^#\n]*\bF401\b", re.IGNORECASE)
# the code list of a noqa comment naming codes (E402, E501), as ruff reads it: separated by commas or spaces
_NOQA_CODES = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:(?:\s*,\s*|\s+)[A-Z]+[0-9]+)*", re.IGNORECASE)


def import_seam(context: FileContext, module: cst.Module) -> cst.Module:
    """``module`` with ``from <package> import <seam>`` among its first-party imports, unless already there.

    It goes after the docstring, the ``__future__`` imports and any change of ``sys.path`` made before the
    first definition (a script that puts its repository on the path imports the seam from there), unless
    the imports before that change load the seam's package already (the path added is another's); then
    where isort and ruff would put it in the leading imports (or, when those do not load the seam's package,
    in the first later run of imports that does, see ``_run_loading_package``): into an existing ``from <package> import
    ...`` (names ordered by type, then name), else among the first-party ``from`` imports in module order,
    before the relative ones; and always before the first module-level statement that calls the seam."""
    seam = context.seam
    code = f"from {seam.package} import {seam.name}" if seam.package else f"import {seam.name}"
    body = list(module.body)
    if any(_imports_seam(statement, seam) for statement in body):
        return module
    earliest, run_end = _leading_imports(module, body)
    first, first_end = _leading_imports(module, body, past_path_changes=False)
    if (
        first < earliest
        and seam.package
        and any(_loads_package(body[i], seam.package) for i in range(first, first_end))
    ):
        earliest, run_end = first, first_end
    later = _run_loading_package(body, earliest, run_end, seam)
    if later is not None and _before_first_use(module, body, earliest, later[0]) == later[0]:
        earliest, run_end = later
    position = _before_first_use(module, body, earliest, _sorted_position(body, earliest, run_end, seam))
    merged = _merge_into(body, earliest, min(position, run_end), seam)
    if merged is not None:
        index, statement = merged
        body[index] = statement
        return module.with_changes(body=body)
    statement = cst.parse_statement(code + module.default_newline, config=module.config_for_parsing)
    following = body[position] if position < len(body) else None
    if following is not None and (_first_party_absolute(following, seam) or _is_relative_import(following)):
        # first in its section, it takes the section's blank line (the relative imports get one of their own)
        statement = statement.with_changes(leading_lines=following.leading_lines)
        blank = [cst.EmptyLine()] if _is_relative_import(following) else []
        body[position] = following.with_changes(leading_lines=blank)
    elif 0 < position and _is_import(body[position - 1]) and not _first_party_absolute(body[position - 1], seam):
        statement = statement.with_changes(leading_lines=[cst.EmptyLine()])  # a section of its own
    body.insert(position, statement)
    if position < len(body) - 1 and isinstance(body[position + 1], (cst.FunctionDef, cst.ClassDef)):
        following = body[position + 1]
        blank = sum(1 for line in following.leading_lines if line.comment is None)
        body[position + 1] = following.with_changes(
            leading_lines=[cst.EmptyLine()] * max(0, 2 - blank) + list(following.leading_lines)
        )
    return module.with_changes(body=body)


def _leading_imports(
    module: cst.Module, body: list[cst.BaseStatement], past_path_changes: bool = True
) -> tuple[int, int]:
    """Where the seam import may go at the earliest (``past_path_changes``: after the last change of
    ``sys.path`` before the first definition), and the end of the imports that follow there."""
    earliest = 0
    for index, statement in enumerate(body):
        if index == 0 and _is_docstring(statement) or _is_future_import(statement):
            earliest = index + 1
        elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            break
        elif past_path_changes and not _is_import(statement) and _changes_path(module.code_for_node(statement)):
            earliest = index + 1
    end = earliest
    while end < len(body) and _is_import(body[end]):
        end += 1
    return earliest, end


def _run_loading_package(body: list[cst.BaseStatement], start: int, end: int, seam) -> tuple[int, int] | None:
    """The first later run of top-level imports (before any definition) that loads the seam's package, when
    the leading run ``body[start:end]`` does not: imports after a ``try:`` import, a start-time stamp or a
    logging setup (Megatron-LM's ``training.py``). The seam import goes there: the package is loaded at that
    point already (importing it earlier would run it before that code), and isort and ruff sort each run of
    imports on its own."""
    if not seam.package or any(_loads_package(body[index], seam.package) for index in range(start, end)):
        return None
    index = end
    while index < len(body) and not isinstance(body[index], (cst.FunctionDef, cst.ClassDef)):
        if not _is_import(body[index]):
            index += 1
            continue
        run_start = index
        while index < len(body) and _is_import(body[index]):
            index += 1
        if any(_loads_package(body[i], seam.package) for i in range(run_start, index)):
            return run_start, index
    return None


def _loads_package(statement: cst.CSTNode, package: str) -> bool:
    """Whether an absolute import in ``statement`` loads ``package`` (``from pkg.sub.x import y`` loads ``pkg.sub``)."""
    for node in statement.body if isinstance(statement, cst.SimpleStatementLine) else ():
        if isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None:
            names = [cst.helpers.get_full_name_for_node(node.module)]
        elif isinstance(node, cst.Import):
            names = [cst.helpers.get_full_name_for_node(alias.name) for alias in node.names]
        else:
            continue
        if any(name == package or name.startswith(package + ".") for name in names):
            return True
    return False


def _sorted_position(body: list[cst.BaseStatement], earliest: int, end: int, seam) -> int:
    """Where isort would put the seam import in the imports ``body[earliest:end]``: before the first
    first-party ``from`` import of a later module, else after the last first-party absolute import, else
    before the relative imports, else after them all."""
    absolute = [index for index in range(earliest, end) if _first_party_absolute(body[index], seam)]
    if seam.package:
        for index in absolute:
            module = _from_module(body[index])
            if module is not None and module.lower() > seam.package.lower():
                return index
    if absolute:
        return absolute[-1] + 1
    relative = next((index for index in range(earliest, end) if _is_relative_import(body[index])), None)
    return relative if relative is not None else end


def _before_first_use(module: cst.Module, body: list[cst.BaseStatement], earliest: int, position: int) -> int:
    for index in range(earliest, position):
        if not _is_import(body[index]) and PLACEHOLDER_PREFIX in module.code_for_node(body[index]):
            return index
    return position


def _merge_into(body: list[cst.BaseStatement], start: int, end: int, seam) -> tuple[int, cst.BaseStatement] | None:
    """An existing ``from <package> import a, b`` among ``body[start:end]`` with the seam's name added
    where isort orders it (constants, then classes, then the rest; by name within each)."""
    if not seam.package:
        return None
    for index in range(start, end):
        statement = body[index]
        node = statement.body[0] if len(statement.body) == 1 else None
        if not isinstance(node, cst.ImportFrom) or node.relative or _from_module(statement) != seam.package:
            continue
        if isinstance(node.names, cst.ImportStar) or any(alias.asname for alias in node.names):
            continue
        names = list(node.names)
        key = _isort_key(seam.name)
        at = next((i for i, alias in enumerate(names) if _isort_key(alias.evaluated_name) > key), len(names))
        separator = next((alias.comma for alias in names[:-1]), cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        new = cst.ImportAlias(cst.Name(seam.name), comma=separator if at < len(names) else names[-1].comma)
        if at == len(names):
            names[-1] = names[-1].with_changes(comma=separator)
        names.insert(at, new)
        return index, statement.with_changes(body=[node.with_changes(names=names)])
    return None


def _imports_seam(statement: cst.CSTNode, seam) -> bool:
    """Whether ``statement`` binds the seam's name to the seam (``from <package> import <seam>``, alone or
    with other names; ``import <seam>`` for a top-level seam)."""
    for node in statement.body if isinstance(statement, cst.SimpleStatementLine) else ():
        if isinstance(node, cst.ImportFrom) and seam.package:
            module = cst.helpers.get_full_name_for_node(node.module) if node.module and not node.relative else None
            names = [] if module != seam.package or isinstance(node.names, cst.ImportStar) else node.names
        else:
            names = node.names if isinstance(node, cst.Import) and not seam.package else []
        if any(alias.evaluated_name == seam.name and alias.asname is None for alias in names):
            return True
    return False


def _isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name.lower()


def _from_module(statement: cst.CSTNode) -> str | None:
    node = statement.body[0] if isinstance(statement, cst.SimpleStatementLine) else None
    if isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None:
        return cst.helpers.get_full_name_for_node(node.module)
    return None


def _first_party_absolute(statement: cst.CSTNode, seam) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and any(
        _is_first_party(node, seam.parts[0]) and not (isinstance(node, cst.ImportFrom) and node.relative)
        for node in statement.body
    )


def _is_relative_import(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and any(
        isinstance(node, cst.ImportFrom) and node.relative for node in statement.body
    )


def _changes_path(code: str) -> bool:
    return "sys.path" in code or "addsitedir" in code


def _is_first_party(node: cst.BaseSmallStatement, package: str) -> bool:
    if isinstance(node, cst.ImportFrom):
        if node.relative:
            return True
        name = cst.helpers.get_full_name_for_node(node.module) if node.module else ""
        return name.split(".")[0] == package
    return isinstance(node, cst.Import) and any(
        cst.helpers.get_full_name_for_node(alias.name).split(".")[0] == package for alias in node.names
    )


def _is_future_import(statement: cst.CSTNode) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.ImportFrom)
        and isinstance(statement.body[0].module, cst.Name)
        and statement.body[0].module.value == "__future__"
    )


def unused_mla_imports(
    module: cst.Module,
    tree: ast.Module,
    names: NameClassifier,
    edited: Iterable[Span],
    droppable: Callable[[], set[int]],
    written: Iterable[cst.CSTNode] = (),
) -> dict[cst.CSTNode, cst.CSTNode]:
    """Edits removing module-level imports of MLA names whose every use lies in ``edited`` code (moved into
    the adapter or replaced by a seam call) and that the code ``written`` in its place does not read (a
    name passed to the adapter function as an argument, ``mla_seam.mla_build(config, Attention)``). Imports
    that nothing used, or that a string names (``__all__``), are re-exports: they stay. An import statement
    that would go whole, but whose line is not among ``droppable()`` (importing its module may run code or
    fail: ``imports_without_effects``), stays too, marked ``# noqa: F401`` for the names it binds that
    nothing reads any more."""
    uses = _uses(tree)
    passed = {name.value for node in written for name in matchers.findall(node, matchers.Name())}
    edited = SpanSet(edited)
    edits: dict[cst.CSTNode, cst.CSTNode] = {}
    first_lines = iter(_first_lines(module, tree))
    for statement in module.body:
        line = next(first_lines)
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            continue
        node = statement.body[0]
        if not isinstance(node, (cst.Import, cst.ImportFrom)) or isinstance(node.names, cst.ImportStar):
            continue
        kept = []
        for alias in node.names:
            bound = alias.evaluated_alias or alias.evaluated_name.split(".")[0]
            is_mla = names.is_name(alias.evaluated_name.split(".")[-1]) or names.is_module(alias.evaluated_name)
            spans = uses.get(bound, [])
            if not (is_mla and spans and all(edited.any_enclosing(span) for span in spans)) or bound in passed:
                kept.append(alias)
        if len(kept) == len(node.names) or _declared_used(module, statement):
            continue
        if not kept and line in droppable():
            edits[statement] = cst.RemovalSentinel.REMOVE
        elif not kept:
            marked = _marked_unused(statement)
            if marked is not None:
                edits[statement] = marked
        else:
            # keyed by the statement (a child of the module), which the focus module need not hold; the
            # last name takes the last comma's layout (a parenthesized list keeps its line before `)`)
            kept[-1] = kept[-1].with_changes(comma=node.names[-1].comma)
            edits[statement] = statement.with_changes(body=[node.with_changes(names=kept)])
    return edits


def _declared_used(module: cst.Module, statement: cst.SimpleStatementLine) -> bool:
    """Does the import carry a ``# noqa`` or ``# noqa: F401`` comment (re-exported for code outside the
    project)? Its names stay whatever the module itself reads, and so does the comment."""
    comments = [statement.trailing_whitespace.comment, module.code_for_node(statement.body[0])]
    return any(comment is not None and _NOQA_COMMENT.search(getattr(comment, "value", comment)) for comment in comments)


def _first_lines(module: cst.Module, tree: ast.Module) -> Iterator[int]:
    """The first line of each of ``module``'s statements, from the same source's ``ast`` (``a; b`` is one
    statement to LibCST, two to ``ast``)."""
    statements = iter(tree.body)
    for statement in module.body:
        yield next(statements).lineno
        for _ in range(len(statement.body) - 1 if isinstance(statement, cst.SimpleStatementLine) else 0):
            next(statements)


def _marked_unused(statement: cst.SimpleStatementLine) -> cst.SimpleStatementLine | None:
    """The import with ``# noqa: F401`` where ruff reads it (its first line: after the ``(`` of a
    parenthesized list), added to a comment already there (``# noqa: E402`` becomes ``# noqa: E402, F401``);
    None where that cannot be said safely (the self-check then decides)."""
    node = statement.body[0]
    opening = getattr(node, "lpar", None)
    if opening is not None and isinstance(opening.whitespace_after, cst.ParenthesizedWhitespace):
        first = opening.whitespace_after.first_line
        comment = _with_unused_code(first.comment)
        if comment is None:
            return None
        whitespace = first.whitespace if first.comment is not None else cst.SimpleWhitespace("  ")
        first = first.with_changes(whitespace=whitespace, comment=comment)
        whitespace = opening.whitespace_after.with_changes(first_line=first)
        return statement.with_changes(body=[node.with_changes(lpar=opening.with_changes(whitespace_after=whitespace))])
    trailing = statement.trailing_whitespace
    comment = _with_unused_code(trailing.comment)
    if comment is None:
        return None
    whitespace = trailing.whitespace if trailing.comment is not None else cst.SimpleWhitespace("  ")
    return statement.with_changes(trailing_whitespace=trailing.with_changes(whitespace=whitespace, comment=comment))


def _with_unused_code(comment: cst.Comment | None) -> cst.Comment | None:
    """``comment`` saying F401 too: a new ``# noqa: F401``, F401 added to the codes of a ``# noqa: E402``
    (ruff reads one list of codes per comment), or the noqa put after another comment (``# keep  # noqa: F401``:
    ruff reads it anywhere, while a ``# type: ignore`` or ``# fmt: skip`` must come first for mypy and black)."""
    if comment is None:
        return cst.Comment(_NOQA)
    codes = _NOQA_CODES.search(comment.value)
    if codes is not None:
        return cst.Comment(f"{comment.value[: codes.end()]}, F401{comment.value[codes.end() :]}")
    if "noqa" in comment.value.lower():
        return None  # a noqa apply cannot read as ruff does
    return cst.Comment(f"{comment.value}  {_NOQA}")


def _uses(tree: ast.Module) -> dict[str, list[Span]]:
    """Where each name is read, and a string naming it counts as a use that nothing can move."""
    uses: dict[str, list[Span]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            span = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
            uses.setdefault(node.id, []).append(span)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            uses.setdefault(node.value, []).append((0, 0, 0, 0))
    return uses


def _is_import(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body
    )


def _is_docstring(statement: cst.CSTNode) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def seam_name_rebound(tree: ast.Module, seam, package_parts: tuple[str, ...]) -> int | None:
    """The first line where the module binds the seam's name to anything but the seam (a variable, a
    parameter, a function, a loop or ``except`` target, another import), in any scope; None if nowhere.
    There the calls apply writes (``mla_seam.multi_latent_attention(config)``) would read that binding."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(_binds_seam_name(node, alias, seam, package_parts) for alias in node.names):
                return node.lineno
        elif _binding_name(node) == seam.name:
            return node.lineno
    return None


def _binds_seam_name(node: ast.Import | ast.ImportFrom, alias: ast.alias, seam, package_parts: tuple[str, ...]) -> bool:
    """Whether ``alias`` binds the seam's name to something other than the seam (a relative import counted
    from the file's package ``package_parts``)."""
    if (alias.asname or alias.name.split(".")[0]) != seam.name:
        return False
    if isinstance(node, ast.ImportFrom):
        module = absolute_module(package_parts, node.level, node.module)
        return not (module == seam.package and alias.name == seam.name and not alias.asname)
    return bool(seam.package) or alias.name != seam.name or bool(alias.asname)


def _binding_name(node: ast.AST) -> str | None:
    """The name ``node`` binds, for the nodes that bind one (imports aside)."""
    if isinstance(node, ast.Name):
        return node.id if isinstance(node.ctx, (ast.Store, ast.Del)) else None
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler, ast.MatchAs,
                         ast.MatchStar)):  # fmt: skip
        return node.name
    return node.rest if isinstance(node, ast.MatchMapping) else None
