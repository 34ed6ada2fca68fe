"""What each hunk of a change changes, on syntax trees: a formatter re-indenting a block, re-wrapping a call,
adding or removing parentheses or a trailing comma, changing quotes or comments changes no statement; a
statement added, deleted, rewritten or moved into or out of a block does.

Trees are compared without positions and without the text of docstrings (which a formatter re-indents and which
decide nothing). The two sides' blocks are aligned statement by statement, as a diff aligns lines: statements
that are the same pair up (SAME); in a run that changed, those with the same header pair up in order
(SAME_HEADER), then what is left one for one by kind when the counts agree (NEW_HEADER), and the blocks of each
such pair are aligned in turn; the rest were added or deleted. The lines a hunk changes are those of the
statements with code on its lines that are not SAME (nor inside one): a SAME_HEADER statement on its own
header lines changes nothing, a NEW_HEADER one changes its header lines, an added or deleted one all its lines,
from those of the outermost statement added or deleted with it, wherever git put them; one whose lines no hunk
touches (git kept them and moved the `else:` beside them) counts in the hunk nearest to it. Each side is judged on
its own: git pairs the lines of a re-indented function with whatever lines happen to be equal, often another
statement's. A hunk that alone, applied to the old side, leaves the old tree, and taken back from the new side
the new tree, changes nothing either.
"""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import cached_property

from seamfix.audit.diff import Hunk

_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")  # git's lines: each ends at `\n`
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCKS = ("body", "orelse", "finalbody")
_CLAUSES = ("handlers", "cases")
SAME, SAME_HEADER, NEW_HEADER = "same", "same header", "new header"  # how a statement pairs with the other side's


class Layout:
    """The two sides of one changed file, and its hunks (``git diff -U0`` numbering)."""

    def __init__(self, old: bytes, new: bytes, hunks: Sequence[Hunk]) -> None:
        self._sources = old, new
        self._hunks = hunks

    def changed_lines(self, index: int) -> tuple[list[int], list[int]] | None:
        """The lines (old numbering, new numbering) of the statements that ``self._hunks[index]`` changes: none
        when it only lays code out anew. A statement added, deleted or moved to another block counts whole,
        wherever its lines are (a decision moved out of an `if` may keep the text of its first line); one that
        changed only in its header counts by its header (its blocks are judged statement by statement). None
        when a side does not parse (the caller then compares tokens)."""
        sides = self._sides
        if sides is None:
            return None
        old, new = sides
        if old.digests == new.digests:
            return [], []
        hunk = self._hunks[index]
        old_unseen, new_unseen = (unseen.get(index, ()) for unseen in self._unseen)
        if old_unseen or new_unseen:
            return sorted({*old.changed(hunk.old_lines), *old_unseen}), sorted(
                {*new.changed(hunk.new_lines), *new_unseen}
            )
        changed = old.changed(hunk.old_lines), new.changed(hunk.new_lines)
        if any(changed) and self._alone_changes_no_tree(hunk):
            return [], []
        return changed

    @cached_property
    def _unseen(self) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
        """Per side, hunk index -> the lines of statements added, deleted or moved that no hunk touches, each
        given to the hunk nearest to it: git may keep a moved statement's lines and change the `else:` beside
        them instead."""
        old, new = self._sides
        return old.unseen([hunk.old_lines for hunk in self._hunks]), new.unseen(
            [hunk.new_lines for hunk in self._hunks]
        )

    @cached_property
    def _sides(self) -> tuple[_Side, _Side] | None:
        """Both sides parsed (on the first question: audit asks only of files with MLA sites), blocks aligned."""
        old = _Side.of(self._sources[0])
        new = _Side.of(self._sources[1]) if old is not None else None
        if old is None or new is None:
            return None
        if old.digests != new.digests:
            try:
                _align(old.body, new.body, old.marks, new.marks)
            except RecursionError:  # nothing is paired: each hunk is then judged alone
                old.marks.clear()
                new.marks.clear()
        return old, new

    def _alone_changes_no_tree(self, hunk: Hunk) -> bool:
        old, new = self._sides
        span = _span(hunk)
        forward = _Side.of(_patched(old.lines, new.lines, span))
        if forward is None or forward.digests != old.digests:
            return False
        backward = _Side.of(_patched(new.lines, old.lines, (*span[2:], *span[:2])))
        return backward is not None and backward.digests == new.digests


class _Statement:
    """A statement as the alignment needs it, its expressions' trees dropped: its kind, digests of the whole and of
    its header (see ``_header``), its lines, the statement whose block holds it, and its own blocks. Equal whole
    digests are equal trees: each is its header's and its blocks' digests, digested."""

    __slots__ = ("kind", "name", "digest", "header", "first", "last", "header_lines", "parent", "blocks", "clauses")

    def __init__(self, node: ast.stmt, parent: _Statement | None) -> None:
        self.kind = type(node)
        self.name = node.name if isinstance(node, _DEFINITIONS) else None
        self.first, self.last = _first_line(node), _last_line(node)
        self.parent = parent
        self.blocks = [
            [_Statement(inner, self) for inner in getattr(node, name)]
            for name in _BLOCKS
            if isinstance(getattr(node, name, None), list)
        ]
        self.clauses = [
            [_Statement(inner, self) for inner in clause.body]
            for name in _CLAUSES
            for clause in getattr(node, name, None) or ()
        ]
        self.header = _digest(_header(node))
        # a simple statement's header is all of it
        self.header_lines = _header_lines(node) if self.blocks else range(self.first, self.last + 1)
        whole = hashlib.blake2b(self.header, digest_size=16)
        for block in (*self.blocks, *self.clauses):
            whole.update(len(block).to_bytes(4, "little"))
            whole.update(b"".join(inner.digest for inner in block))
        self.digest = whole.digest()

    def nested(self) -> Iterator[_Statement]:
        """The statements directly inside it (its blocks, handlers' and cases' bodies)."""
        for block in (*self.blocks, *self.clauses):
            yield from block


class _Side:
    """One side's statements (docstrings blanked; no expression trees kept: a large module's two trees would
    double audit's memory), its lines, and the lines inside strings that span lines."""

    def __init__(self, source: bytes, tree: ast.Module) -> None:
        self.body = [_Statement(statement, None) for statement in tree.body]
        self.digests = [statement.digest for statement in self.body]  # the module, statement by statement
        self.lines: list[bytes] = _LINE.findall(source)
        self.string_lines = _string_lines(tree)
        self.marks: dict[int, str] = {}  # id of a statement -> SAME, SAME_HEADER or NEW_HEADER (``_align``)

    @classmethod
    def of(cls, source: bytes) -> _Side | None:
        try:
            tree = ast.parse(source)
            for node in ast.walk(tree):
                if isinstance(node, _DOCUMENTED) and node.body and _is_docstring(node.body[0]):
                    node.body[0].value.value = ""
            return cls(source, _ConditionalExpressions().visit(tree))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None

    def changed(self, lines: range) -> list[int]:
        """The lines of the statements that changed among those with code on ``lines`` (``changed_lines``).
        Blank lines and comments hold no code."""
        owners = self._owners
        found: set[int] = set()
        for line in lines:
            if not self._holds_code(line):
                continue
            for statement in owners.get(line, (None,)):
                if statement is None:
                    found.add(line)
                    continue
                mark = self._mark_around(statement)
                if mark == NEW_HEADER:
                    found.update(statement.header_lines)
                elif mark is None:
                    while (holder := statement.parent) is not None and id(holder) not in self.marks:
                        statement = holder  # the outermost statement added, deleted or moved with it
                    found.update(range(statement.first, statement.last + 1))
        return sorted(found)

    def unseen(self, spans: list[range]) -> dict[int, set[int]]:
        """Span index -> the lines of the outermost statements added, deleted or moved that no span touches,
        each given to the nearest span (``Layout._unseen``); none where nothing was aligned."""
        touched = {line for span in spans for line in span}
        found: dict[int, set[int]] = {}
        for statement in self._unpaired(self.body) if self.marks and spans else ():
            lines = range(statement.first, statement.last + 1)
            if touched.isdisjoint(lines):
                nearest = min(range(len(spans)), key=lambda index: _distance(spans[index], lines))
                found.setdefault(nearest, set()).update(lines)
        return found

    def _unpaired(self, block: list[_Statement]) -> Iterator[_Statement]:
        for statement in block:
            mark = self.marks.get(id(statement))
            if mark is None:
                yield statement
            elif mark != SAME:
                yield from self._unpaired(list(statement.nested()))

    def _mark_around(self, statement: _Statement) -> str | None:
        """SAME when ``statement`` lies in a statement the same on the other side; else its own mark."""
        current: _Statement | None = statement
        while current is not None:
            if self.marks.get(id(current)) == SAME:
                return SAME
            current = current.parent
        return self.marks.get(id(statement))

    def _holds_code(self, line: int) -> bool:
        """Blank lines and comments hold no code; a line inside a string spanning lines does, whatever it reads."""
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else b""
        return bool(text and not text.startswith(b"#")) or line in self.string_lines

    @cached_property
    def _owners(self) -> dict[int, list[_Statement]]:
        """Line -> the statements with code of their own over it: the innermost (several: ``a = 1; b = 2``), and
        those whose header is on it (``if x: y = 1``)."""
        owners: dict[int, list[_Statement]] = {}
        statements: list[_Statement] = []
        stack = list(reversed(self.body))
        while stack:  # parents first: an inner statement takes its lines over from its block's statement
            statement = stack.pop()
            statements.append(statement)
            for line in range(statement.first, statement.last + 1):
                over = owners.get(line)
                if over and over[0].parent is statement.parent:
                    over.append(statement)  # a sibling on the same line
                else:
                    owners[line] = [statement]
            stack += reversed(list(statement.nested()))
        for statement in statements:
            for line in statement.header_lines:
                if statement not in owners[line]:
                    owners[line].append(statement)  # `if x: y = 1`: the test is on y's line
        return owners


def _string_lines(tree: ast.Module) -> set[int]:
    """The lines after the first of each string that spans lines."""
    return {
        line
        for node in ast.walk(tree)
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and (node.end_lineno or 0) > node.lineno
        for line in range(node.lineno + 1, node.end_lineno + 1)
    }


def _align(
    old: list[_Statement],
    new: list[_Statement],
    old_marks: dict[int, str],
    new_marks: dict[int, str],
) -> None:
    """Mark the statements of two blocks that are the same (SAME), as a diff pairs lines; within a run that
    changed, see ``_align_changed``. A definition moved within its block (functions reordered) is the same: the
    order of definitions decides nothing, unless its name is defined twice there (the later one wins)."""
    for before, after in _moved_definitions(old, new):
        old_marks[id(before)] = new_marks[id(after)] = SAME
    old = [statement for statement in old if id(statement) not in old_marks]
    new = [statement for statement in new if id(statement) not in new_marks]
    matcher = difflib.SequenceMatcher(None, [s.digest for s in old], [s.digest for s in new], autojunk=False)
    for tag, old_first, old_end, new_first, new_end in matcher.get_opcodes():
        if tag == "equal":
            old_marks.update((id(o), SAME) for o in old[old_first:old_end])
            new_marks.update((id(n), SAME) for n in new[new_first:new_end])
        elif tag == "replace":
            _align_changed(old[old_first:old_end], new[new_first:new_end], old_marks, new_marks)


def _moved_definitions(old: list[_Statement], new: list[_Statement]) -> list[tuple[_Statement, _Statement]]:
    """The definitions (`def`, `class`) the same on both sides of a block, paired, whose name each side defines
    once."""
    once = []
    for block in (old, new):
        count = Counter(statement.name for statement in block if statement.name is not None)
        once.append({s.name: s for s in block if s.name is not None and count[s.name] == 1})
    return [
        (before, after)
        for name, before in once[0].items()
        if (after := once[1].get(name)) is not None and after.digest == before.digest
    ]


def _align_changed(
    old: list[_Statement], new: list[_Statement], old_marks: dict[int, str], new_marks: dict[int, str]
) -> None:
    """A run of statements that changed: those with the same header pair up in order (SAME_HEADER: an `if` whose
    body lost a statement to the block around it), what is left between them one for one by kind when the
    counts agree (NEW_HEADER: an `if` whose test changed); the blocks of each pair are aligned in turn. The rest
    are added or deleted."""
    matcher = difflib.SequenceMatcher(None, [s.header for s in old], [s.header for s in new], autojunk=False)
    for tag, old_first, old_end, new_first, new_end in matcher.get_opcodes():
        if tag == "equal":
            mark = SAME_HEADER
        elif tag == "replace" and old_end - old_first == new_end - new_first:
            mark = NEW_HEADER
        else:
            continue
        for o, n in zip(old[old_first:old_end], new[new_first:new_end], strict=True):
            if o.kind is not n.kind:
                continue
            old_marks[id(o)] = new_marks[id(n)] = mark
            for inner_old, inner_new in _paired_blocks(o, n):
                _align(inner_old, inner_new, old_marks, new_marks)


class _ConditionalExpressions(ast.NodeTransformer):
    """An `if` whose two arms each assign the same target (or each return) one value is written as that one
    statement with a conditional expression: the same decision either way, so turning one into the other changes
    no statement."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in _BLOCKS:
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(node, name, _with_conditional_expressions(block))
        return node


def _with_conditional_expressions(block: list[ast.stmt]) -> list[ast.stmt]:
    return [
        _one_statement(statement)
        if isinstance(statement, ast.If) and len(statement.body) == len(statement.orelse) == 1
        else statement
        for statement in block
    ]


def _one_statement(statement: ast.If) -> ast.stmt:
    """``if test: x = a`` / ``else: x = b`` as ``x = a if test else b`` (``return`` alike) on the `if`'s lines, where
    both arms assign the same targets or both return a value; else the `if` as it was."""
    then, otherwise = *statement.body, *statement.orelse
    if isinstance(then, ast.Assign) and isinstance(otherwise, ast.Assign):
        if [ast.dump(t) for t in then.targets] != [ast.dump(t) for t in otherwise.targets]:
            return statement
        merged: ast.stmt = ast.Assign(then.targets, ast.IfExp(statement.test, then.value, otherwise.value))
    elif isinstance(then, ast.Return) and isinstance(otherwise, ast.Return) and then.value and otherwise.value:
        merged = ast.Return(ast.IfExp(statement.test, then.value, otherwise.value))
    else:
        return statement
    return ast.copy_location(merged, statement)


def _header(statement: ast.stmt) -> bytes:
    """The statement without its blocks (the clauses of a `try` or `match` kept, without their bodies), dumped."""
    shallow = copy.copy(statement)
    for name in _BLOCKS:
        if isinstance(getattr(shallow, name, None), list):
            setattr(shallow, name, [])
    for name in _CLAUSES:
        clauses = getattr(shallow, name, None)
        if clauses:
            setattr(shallow, name, [_without_body(clause) for clause in clauses])
    return ast.dump(shallow, include_attributes=False).encode()


def _without_body(clause: ast.AST) -> ast.AST:
    shallow = copy.copy(clause)
    shallow.body = []
    return shallow


def _header_lines(statement: ast.stmt) -> set[int]:
    """The lines of a compound statement's own code, outside its blocks: its decorators, its first line and what
    follows its keyword (an `if` test, a `def`'s parameters), and the clauses of a `try` or `match`."""
    parts = [
        node
        for name, value in ast.iter_fields(statement)
        if name not in _BLOCKS and name not in _CLAUSES
        for node in (value if isinstance(value, list) else [value])
        if isinstance(node, ast.AST)
    ]
    last = max([statement.lineno, *(n.end_lineno for p in parts for n in ast.walk(p) if hasattr(n, "end_lineno"))])
    lines = set(range(_first_line(statement), last + 1))
    for clause in getattr(statement, "handlers", ()):
        lines.update(range(clause.lineno, (clause.type.end_lineno if clause.type else clause.lineno) + 1))
    for clause in getattr(statement, "cases", ()):
        ends = [clause.pattern.end_lineno, *([clause.guard.end_lineno] if clause.guard else [])]
        lines.update(range(clause.pattern.lineno, max(ends) + 1))
    return lines


def _paired_blocks(old: _Statement, new: _Statement) -> Iterator[tuple[list[_Statement], list[_Statement]]]:
    """The blocks of two statements of one kind, and their clauses' bodies where they have as many clauses."""
    yield from zip(old.blocks, new.blocks, strict=True)
    if len(old.clauses) == len(new.clauses):
        yield from zip(old.clauses, new.clauses, strict=True)


def _distance(span: range, lines: range) -> float:
    """Lines between a hunk's span (an empty one lies after its ``start``: git's numbering) and a statement's."""
    first, last = (span.start, span[-1]) if span else (span.start + 0.5, span.start + 0.5)
    return max(lines.start - last, first - lines[-1], 0)


def _digest(dump: bytes) -> bytes:
    """A statement's dump, digested: a large module's dumps need not stay in memory."""
    return hashlib.blake2b(dump, digest_size=16).digest()


def _first_line(statement: ast.stmt) -> int:
    decorators = getattr(statement, "decorator_list", None)
    return min([statement.lineno, *(d.lineno for d in decorators)]) if decorators else statement.lineno


def _last_line(statement: ast.stmt) -> int:
    return statement.end_lineno or statement.lineno


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _span(hunk: Hunk) -> tuple[int, int, int, int]:
    """0-based (old start, old count, new start, new count); git numbers an empty side by the line before it."""
    old_start = hunk.old_start - 1 if hunk.old_count else hunk.old_start
    new_start = hunk.new_start - 1 if hunk.new_count else hunk.new_start
    return old_start, hunk.old_count, new_start, hunk.new_count


def _patched(base: list[bytes], other: list[bytes], span: tuple[int, int, int, int]) -> bytes:
    """``base`` with its lines of ``span`` replaced by the other side's."""
    base_start, base_count, other_start, other_count = span
    return b"".join(
        [*base[:base_start], *other[other_start : other_start + other_count], *base[base_start + base_count :]]
    )
