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
from those of the outermost statement added or deleted with it, wherever git put them. Each side is judged on
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
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property

from seamfix.analysis.expressions import nested_statements
from seamfix.audit.diff import Hunk

_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")  # git's lines: each ends at `\n`
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
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
        changed = old.changed(hunk.old_lines), new.changed(hunk.new_lines)
        if any(changed) and self._alone_changes_no_tree(hunk):
            return [], []
        return changed

    @cached_property
    def _sides(self) -> tuple[_Side, _Side] | None:
        """Both sides parsed (on the first question: audit asks only of files with MLA sites), blocks aligned."""
        old = _Side.of(self._sources[0])
        new = _Side.of(self._sources[1]) if old is not None else None
        if old is None or new is None:
            return None
        if old.digests != new.digests:
            try:
                _align(old.tree.body, new.tree.body, old.marks, new.marks, (old.digests, new.digests))
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


class _Side:
    """One side's tree (docstrings blanked), its lines, and which of them hold code (not only comments)."""

    def __init__(self, source: bytes, tree: ast.Module) -> None:
        self.tree = tree
        self.digests = _digests(tree.body)  # the module's tree, statement by statement
        self.lines: list[bytes] = _LINE.findall(source)
        self.marks: dict[int, str] = {}  # id of a statement -> SAME, SAME_HEADER or NEW_HEADER (``_align``)
        self._strings: dict[int, set[int]] = {}  # id of a statement -> ``_string_lines``

    @classmethod
    def of(cls, source: bytes) -> _Side | None:
        try:
            tree = ast.parse(source)
            for node in ast.walk(tree):
                if isinstance(node, _DOCUMENTED) and node.body and _is_docstring(node.body[0]):
                    node.body[0].value.value = ""
            return cls(source, tree)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None

    def changed(self, lines: range) -> list[int]:
        """The lines of the statements that changed among those with code on ``lines`` (``changed_lines``).
        Blank lines and comments hold no code."""
        owners, parent = self._statements
        found: set[int] = set()
        for line in lines:
            if not self._holds_code(line, owners):
                continue
            for statement in owners.get(line, (None,)):
                if statement is None:
                    found.add(line)
                    continue
                mark = self._mark_around(statement)
                if mark == NEW_HEADER:
                    found.update(_header_lines(statement))
                elif mark is None:
                    while (holder := parent.get(id(statement))) is not None and id(holder) not in self.marks:
                        statement = holder  # the outermost statement added, deleted or moved with it
                    found.update(range(_first_line(statement), _last_line(statement) + 1))
        return sorted(found)

    def _mark_around(self, statement: ast.stmt) -> str | None:
        """SAME when ``statement`` lies in a statement the same on the other side; else its own mark."""
        _, parent = self._statements
        current: ast.stmt | None = statement
        while current is not None:
            if self.marks.get(id(current)) == SAME:
                return SAME
            current = parent.get(id(current))
        return self.marks.get(id(statement))

    def _holds_code(self, line: int, owners: dict[int, list[ast.stmt]]) -> bool:
        """Blank lines and comments hold no code; a line inside a string spanning lines does, whatever it reads."""
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else b""
        if text and not text.startswith(b"#"):
            return True
        return any(line in self._string_lines(statement) for statement in owners.get(line, ()))

    def _string_lines(self, statement: ast.stmt) -> set[int]:
        """The lines after the first of each string in ``statement`` that spans lines."""
        if id(statement) not in self._strings:
            self._strings[id(statement)] = {
                line
                for node in ast.walk(statement)
                if isinstance(node, (ast.Constant, ast.JoinedStr)) and (node.end_lineno or 0) > node.lineno
                for line in range(node.lineno + 1, node.end_lineno + 1)
            }
        return self._strings[id(statement)]

    @cached_property
    def _statements(self) -> tuple[dict[int, list[ast.stmt]], dict[int, ast.stmt]]:
        """Line -> the statements with code of their own over it: the innermost (several: ``a = 1; b = 2``), and
        those whose header is on it (``if x: y = 1``); id of a statement -> the statement whose block holds it."""
        owners: dict[int, list[ast.stmt]] = {}
        parent: dict[int, ast.stmt] = {}
        statements: list[ast.stmt] = []
        stack: list[tuple[ast.stmt, ast.stmt | None]] = [(s, None) for s in reversed(self.tree.body)]
        while stack:  # parents first: an inner statement takes its lines over from its block's statement
            statement, holder = stack.pop()
            statements.append(statement)
            if holder is not None:
                parent[id(statement)] = holder
            for line in range(_first_line(statement), _last_line(statement) + 1):
                over = owners.get(line)
                if over and parent.get(id(over[0])) is holder:
                    over.append(statement)  # a sibling on the same line
                else:
                    owners[line] = [statement]
            stack += [(inner, statement) for inner in reversed(list(nested_statements(statement)))]
        for statement in statements:
            for line in _header_lines(statement):
                if statement not in owners[line]:
                    owners[line].append(statement)  # `if x: y = 1`: the test is on y's line
        return owners, parent


def _align(
    old: list[ast.stmt],
    new: list[ast.stmt],
    old_marks: dict[int, str],
    new_marks: dict[int, str],
    digests: tuple[list[bytes], list[bytes]] | None = None,
) -> None:
    """Mark the statements of two blocks that are the same (SAME), as a diff pairs lines (``digests``: theirs,
    when known); within a run that changed, see ``_align_changed``."""
    old_digests, new_digests = digests or (_digests(old), _digests(new))
    matcher = difflib.SequenceMatcher(None, old_digests, new_digests, autojunk=False)
    for tag, old_first, old_end, new_first, new_end in matcher.get_opcodes():
        if tag == "equal":
            old_marks.update((id(o), SAME) for o in old[old_first:old_end])
            new_marks.update((id(n), SAME) for n in new[new_first:new_end])
        elif tag == "replace":
            _align_changed(old[old_first:old_end], new[new_first:new_end], old_marks, new_marks)


def _align_changed(
    old: list[ast.stmt], new: list[ast.stmt], old_marks: dict[int, str], new_marks: dict[int, str]
) -> None:
    """A run of statements that changed: those with the same header pair up in order (SAME_HEADER: an `if` whose
    body lost a statement to the block around it), what is left between them one for one by kind when the
    counts agree (NEW_HEADER: an `if` whose test changed); the blocks of each pair are aligned in turn. The rest
    are added or deleted."""
    matcher = difflib.SequenceMatcher(None, [_header(s) for s in old], [_header(s) for s in new], autojunk=False)
    for tag, old_first, old_end, new_first, new_end in matcher.get_opcodes():
        if tag == "equal":
            mark = SAME_HEADER
        elif tag == "replace" and old_end - old_first == new_end - new_first:
            mark = NEW_HEADER
        else:
            continue
        for o, n in zip(old[old_first:old_end], new[new_first:new_end], strict=True):
            if type(o) is not type(n):
                continue
            old_marks[id(o)] = new_marks[id(n)] = mark
            for inner_old, inner_new in _paired_blocks(o, n):
                _align(inner_old, inner_new, old_marks, new_marks)


def _header(statement: ast.stmt) -> str:
    """The statement without its blocks (the clauses of a `try` or `match` kept, without their bodies)."""
    shallow = copy.copy(statement)
    for name in _BLOCKS:
        if isinstance(getattr(shallow, name, None), list):
            setattr(shallow, name, [])
    for name in _CLAUSES:
        clauses = getattr(shallow, name, None)
        if clauses:
            setattr(shallow, name, [_without_body(clause) for clause in clauses])
    return ast.dump(shallow, include_attributes=False)


def _without_body(clause: ast.AST) -> ast.AST:
    shallow = copy.copy(clause)
    shallow.body = []
    return shallow


def _header_lines(statement: ast.stmt) -> Iterable[int]:
    """The lines of a statement's own code, outside its blocks: all of a simple statement; of a compound one its
    decorators, its first line and what follows its keyword (an `if` test, a `def`'s parameters), and the
    clauses of a `try` or `match`."""
    if not any(isinstance(getattr(statement, name, None), list) for name in _BLOCKS):
        return range(_first_line(statement), _last_line(statement) + 1)
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


def _paired_blocks(old: ast.stmt, new: ast.stmt) -> Iterator[tuple[list[ast.stmt], list[ast.stmt]]]:
    for name in _BLOCKS:
        if isinstance(getattr(old, name, None), list):
            yield getattr(old, name), getattr(new, name)
    for name in _CLAUSES:
        old_clauses, new_clauses = getattr(old, name, []), getattr(new, name, [])
        if len(old_clauses) == len(new_clauses):
            yield from ((o.body, n.body) for o, n in zip(old_clauses, new_clauses, strict=True))


def _digests(statements: list[ast.stmt]) -> list[bytes]:
    """Each statement's tree without positions, as a digest: a large module's dump need not stay in memory."""
    return [
        hashlib.blake2b(ast.dump(s, include_attributes=False).encode(), digest_size=16).digest() for s in statements
    ]


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
