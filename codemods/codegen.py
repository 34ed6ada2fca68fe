"""LibCST code generation without its per-node generator overhead: the code of a module or node, and the
positions and parents of a module's nodes (all but formatting), as LibCST's ``Module.code``,
``PositionProvider`` and ``node.children`` give them (the tests hold them equal).

Every node's code generation enters ``state.record_syntactic_position``, a ``@contextmanager`` generator
that plain code generation does not even use: on a module with thousands of functions that overhead is a
third of the time. The states here give LibCST's nodes cheap context managers and tokens a fast path.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodePosition, CodeRange, PositionProvider
from libcst.metadata.position_provider import NEWLINE_RE, PositionProvidingCodegenState

_UNRECORDED = nullcontext()  # reusable: entering it does nothing


def _kinds(*bases: type) -> frozenset[type]:
    """``bases`` and every class derived from them (node types are compared exactly: ``isinstance`` on
    LibCST's abstract node classes costs more than the rest of a node's bookkeeping)."""
    found, stack = set(), list(bases)
    while stack:
        kind = stack.pop()
        found.add(kind)
        stack.extend(kind.__subclasses__())
    return frozenset(found)


FORMATTING = _kinds(
    cst.BaseParenthesizableWhitespace, cst.Newline, cst.TrailingWhitespace, cst.EmptyLine, cst.Comment,
    cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual, cst.BaseBinaryOp, cst.BaseBooleanOp,
    cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp,
)  # fmt: skip


def code_of(module: cst.Module, node: cst.CSTNode | None = None) -> str:
    """``module.code`` (or ``module.code_for_node(node)``)."""
    state = _PlainState(module.default_indent, module.default_newline)
    (module if node is None else node)._codegen(state)
    return "".join(state.tokens)


def positions_and_parents(module: cst.Module) -> tuple[Mapping[cst.CSTNode, CodeRange], dict[cst.CSTNode, cst.CSTNode]]:
    """LibCST's ``PositionProvider`` positions of the nodes of ``module``, and their parents, from one code
    generation (the provider through ``MetadataWrapper`` costs a second walk of the tree, an empty batch of
    visitors, and a parent map from ``node.children`` a third). Formatting nodes (whitespace, comments,
    commas, operators: ``FORMATTING``), which no codemod locates and which are two thirds of a module's
    nodes, are left out."""
    provider = PositionProvider()
    state = _PositionState(module.default_indent, module.default_newline, provider)
    module._codegen(state)
    return provider._computed, state.parents


@dataclass
class _PlainState(CodegenState):
    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        return _UNRECORDED


@dataclass
class _PositionState(PositionProvidingCodegenState):
    """``PositionProvidingCodegenState`` that also notes the node each node is generated inside of (its
    parent), with a class-based context manager for syntactic positions."""

    parents: dict[cst.CSTNode, cst.CSTNode] = field(default_factory=dict)
    open_nodes: list[cst.CSTNode] = field(default_factory=list)
    starts: list[tuple[int, int]] = field(default_factory=list)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        if "\n" in value or "\r" in value:
            segments = NEWLINE_RE.split(value)
            self.line += len(segments) - 1
            self.column = len(segments[-1])
        else:
            self.column += len(value)

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def before_codegen(self, node: cst.CSTNode) -> None:
        if self.open_nodes and type(node) not in FORMATTING:
            self.parents[node] = self.open_nodes[-1]
        self.open_nodes.append(node)
        self.starts.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        self.open_nodes.pop()
        start = self.starts.pop()
        computed = self.provider._computed
        if node not in computed and type(node) not in FORMATTING:  # a syntactic position recorded inside wins
            computed[node] = CodeRange(start, (self.line, self.column))

    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        return _UNRECORDED if type(node) in FORMATTING else _SyntacticPosition(self, node, start_node, end_node)


class _SyntacticPosition:
    """What ``PositionProvidingCodegenState.record_syntactic_position`` records, without a generator."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: _PositionState, node, start_node, end_node) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = (self.state.line, self.state.column)

    def __exit__(self, *exc_info) -> None:
        state = self.state
        computed = state.provider._computed
        start = computed[self.start_node].start if self.start_node is not None else CodePosition(*self.start)
        end = computed[self.end_node].end if self.end_node is not None else CodePosition(state.line, state.column)
        computed[self.node] = CodeRange(start, end)
