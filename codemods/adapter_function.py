"""A function that a codemod asks the adapter module to hold, named once every file has asked."""

from __future__ import annotations

import ast
import hashlib
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

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
    statements = [cst.parse_statement(item) if isinstance(item, str) else item for item in body]
    definition = cst.FunctionDef(
        name=cst.Name(PLACEHOLDER_PREFIX),
        params=cst.Parameters([cst.Param(cst.Name(name)) for name in parameters]),
        body=cst.IndentedBlock([_without_leading_blank_lines(statements[0]), *statements[1:]]),
    )
    shape = cst.Module(body=[definition]).code
    placeholder = PLACEHOLDER_PREFIX + hashlib.sha1(function_shape(shape).encode()).hexdigest()[:16]
    code = shape.replace(PLACEHOLDER_PREFIX, placeholder, 1)
    names = tuple(identifier(name) for name in alternatives)
    return AdapterFunction(placeholder, identifier(suggested_name), code, kind, names, frozenset(avoid))


def function_shape(code: str) -> str:
    """What makes two functions the same: their code with the name and parameter names left out."""
    (definition,) = ast.parse(code).body
    positions = {arg.arg: f"_{index}" for index, arg in enumerate(definition.args.args)}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            return ast.Name(positions.get(node.id, node.id), node.ctx)

        def visit_arg(self, node: ast.arg) -> ast.arg:
            return ast.arg(positions.get(node.arg, node.arg))

    return ast.dump(Rename().visit(ast.FunctionDef(**{**vars(definition), "name": "_"})), annotate_fields=False)


def _without_leading_blank_lines(statement: cst.BaseStatement) -> cst.BaseStatement:
    lines = getattr(statement, "leading_lines", ())
    while lines and lines[0].comment is None:
        lines = lines[1:]
    return statement.with_changes(leading_lines=lines) if hasattr(statement, "leading_lines") else statement


def identifier(text: str) -> str:
    """A readable Python identifier from free text (``"mla_up_proj"`` in ... -> ``mla_up_proj_in_...``)."""
    name = re.sub(r"\W+", "_", text).strip("_").lower()[:60].rstrip("_") or "mla_predicate"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "is_" + name
    return name
