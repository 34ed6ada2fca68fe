"""A function that a codemod asks the adapter module to hold, named once every file has asked."""

from __future__ import annotations

import ast
import hashlib
import io
import keyword
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from tokenize import COMMENT

import libcst as cst

from seamfix.codemods.codegen import code_of
from seamfix.codemods.context import PLACEHOLDER_PREFIX


@dataclass(frozen=True)
class AdapterFunction:
    """``code`` defines the function under ``placeholder``; identical code means the same function."""

    placeholder: str
    suggested_name: str
    code: str
    kind: str  # "predicate" or "arm"
    alternatives: tuple[str, ...] = ()  # more qualified names, for when another function wants the suggested one
    avoid: frozenset[str] = frozenset()  # the requesting builder's own top-level names: never one of those

    @property
    def shape_key(self) -> str:
        """``shape_key(self.code)``, which the placeholder ends in."""
        return self.placeholder.removeprefix(PLACEHOLDER_PREFIX)


def adapter_function(
    kind: str,
    suggested_name: str,
    parameters: Sequence[str],
    body: Sequence[cst.BaseStatement | str],
    alternatives: Sequence[str] = (),
    avoid: frozenset[str] = frozenset(),
) -> AdapterFunction:
    """``def <placeholder>(parameters): <body>``; the placeholder is derived from the code, so that the same
    function asked for by two files (or two runs) is one function. Blank lines and comments inside the body
    are kept."""
    if all(isinstance(item, str) for item in body):  # a predicate: the same one is asked for again and again
        function = _from_text(kind, suggested_name, tuple(parameters), tuple(body))
    else:
        function = _from_statements(kind, suggested_name, parameters, body)
    return replace(function, alternatives=tuple(identifier(name) for name in alternatives), avoid=frozenset(avoid))


@lru_cache(maxsize=4096)
def _from_text(kind: str, suggested_name: str, parameters: tuple[str, ...], body: tuple[str, ...]) -> AdapterFunction:
    return _from_statements(kind, suggested_name, parameters, body)


def _from_statements(
    kind: str, suggested_name: str, parameters: Sequence[str], body: Sequence[cst.BaseStatement | str]
) -> AdapterFunction:
    statements = [_parsed(item) if isinstance(item, str) else item for item in body]
    definition = cst.FunctionDef(
        name=cst.Name(PLACEHOLDER_PREFIX),
        params=cst.Parameters([cst.Param(cst.Name(name)) for name in parameters]),
        body=cst.IndentedBlock([_without_leading_blank_lines(statements[0]), *statements[1:]]),
    )
    shape = code_of(cst.Module(body=[definition]))
    placeholder = PLACEHOLDER_PREFIX + shape_key(shape)
    code = shape.replace(PLACEHOLDER_PREFIX, placeholder, 1)
    return AdapterFunction(placeholder, identifier(suggested_name), code, kind)


def shape_key(code: str) -> str:
    """16 hex digits naming ``function_shape(code)`` and the comments of ``code``: functions with the same key
    are the same function. The comments count so that an arm's comments are never dropped for a function of
    the same code without them (the arm's text is replaced by a call to the one function kept)."""
    return hashlib.sha1((function_shape(code) + "\n".join(_comments(code))).encode()).hexdigest()[:16]


def _comments(code: str) -> list[str]:
    if "#" not in code:
        return []
    try:
        return [token.string for token in tokenize.generate_tokens(io.StringIO(code).readline) if token.type == COMMENT]
    except (tokenize.TokenError, SyntaxError):
        return [code]  # unreadable as tokens: only the very same text is the same function


def function_shape(code: str) -> str:
    """What makes two functions the same: their code with the name, parameter names and annotations left out
    (and ``async`` too: only plain functions are compared)."""
    (parsed,) = ast.parse(code).body
    positions = {arg.arg: f"_{index}" for index, arg in enumerate(parsed.args.args)}
    definition = ast.FunctionDef(**{**vars(parsed), "name": "_"})
    for node in ast.walk(definition):  # renamed in place: the tree is this call's own
        if isinstance(node, ast.Name):
            node.id = positions.get(node.id, node.id)
        elif isinstance(node, ast.arg):
            node.arg = positions.get(node.arg, node.arg)
            node.annotation = node.type_comment = None
    return ast.dump(definition, annotate_fields=False)


@lru_cache(maxsize=4096)
def _parsed(statement: str) -> cst.BaseStatement:
    """A statement the codemods write as text (``return x``, an import), parsed once per run: LibCST's nodes
    are immutable, and these only ever become code."""
    return cst.parse_statement(statement)


def _without_leading_blank_lines(statement: cst.BaseStatement) -> cst.BaseStatement:
    lines = getattr(statement, "leading_lines", ())
    while lines and lines[0].comment is None:
        lines = lines[1:]
    return statement.with_changes(leading_lines=lines) if hasattr(statement, "leading_lines") else statement


_NAME_LENGTH = 60


def identifier(text: str) -> str:
    """A readable Python identifier from free text (``"mla_up_proj"`` in ... -> ``mla_up_proj_in_...``), at most
    ``_NAME_LENGTH`` characters, cut after a whole word where one ends within them (``..._query_projection``,
    not ``..._query_projection_siz``)."""
    name = re.sub(r"\W+", "_", text).strip("_").lower()
    if len(name) > _NAME_LENGTH:
        reach = name[: _NAME_LENGTH + 1]  # a word ending right at the limit is followed by its `_`
        name = reach.rsplit("_", 1)[0] if "_" in reach else name[:_NAME_LENGTH]
    name = name.rstrip("_") or "mla_predicate"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "is_" + name
    return name
