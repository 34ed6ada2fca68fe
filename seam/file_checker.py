"""Checking one file's bytes: prefilter, parse, rules, positions, suppressions."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from bisect import bisect_right
from dataclasses import dataclass

from seamfix.analysis.expressions import MLAExpressions, nested_statements
from seamfix.analysis.seam_bindings import SeamBindings
from seamfix.analysis.source import Hit, SourceFile
from seamfix.config import package_parts
from seamfix.findings import Finding
from seamfix.lint_rules import RULES, ast_rules
from seamfix.lint_rules.syntax_error import SyntaxErrorRule
from seamfix.lint_rules.undefined_seam_function import UndefinedSeamFunction
from seamfix.lint_rules.unused_suppression import UnusedSuppression
from seamfix.prefilter import SUPPRESSION_ANCHOR, Prefilter, fold
from seamfix.seam_surface import SeamSurface
from seamfix.suppressions import apply_directives, directives
from seamfix.vocabulary import Vocabulary
from seamfix.vocabulary.names import NameClassifier

_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(rb"\r\n?|\n")


@dataclass(frozen=True)
class CheckOptions:
    """What per-file results depend on (and so what the cache is keyed by), picklable for workers."""

    codes: frozenset[str]
    vocabulary: Vocabulary
    adapter_parts: tuple[str, ...]
    surface: SeamSurface | None = None  # what the adapter defines (None: no adapter configured)
    src: tuple[str, ...] = ("",)  # the source roots, where import names (and relative imports) start


class FileChecker:
    """Findings of one file, with paths left empty (the caller knows where the file is)."""

    def __init__(self, options: CheckOptions) -> None:
        self.options = options
        self.names = NameClassifier(options.vocabulary)
        self.rules = ast_rules(options.codes)
        self.report_unused = UnusedSuppression.code in options.codes
        anchors = self.names.anchors()
        if self.report_unused:
            anchors.append(SUPPRESSION_ANCHOR)
        self.prefilter = Prefilter(anchors)
        self._adapter_anchor = fold(options.adapter_parts[-1].encode()) if options.adapter_parts else None

    def check(self, data: bytes, relpath: str) -> list[Finding]:
        folded = fold(data)
        parsed = self._parse(data, folded, relpath)
        if parsed is None or isinstance(parsed, Finding):
            return [] if parsed is None else [parsed]
        tree, text, hits = parsed
        if not hits and SUPPRESSION_ANCHOR not in folded:
            return []
        scopes = _Scopes(tree)
        findings = [text.finding(rule.code, rule.name, hit, scopes) for rule, hit in hits]
        if SUPPRESSION_ANCHOR not in folded:
            return findings
        findings, complaints = apply_directives(findings, directives(text.decoded()), frozenset(RULES))
        if self.report_unused:
            rule = UnusedSuppression
            findings += [
                Finding("", d.line, d.column, d.line, d.end_column, rule.code, rule.name, message, "", message)
                for d, message in complaints
            ]
        return findings

    def sites(self, data: bytes, relpath: str, ignored: frozenset[str] = frozenset()) -> list[Finding] | None:
        """What the MLA rules on for this file (those selected, less the ``ignored`` codes ``per-file-ignores``
        turn off for it) report in it before any suppression comment is applied (a suppressed decision is still
        one; calls into the seam are none); None when the file does not parse and such a rule is on."""
        rules = [rule for rule in self.rules if rule.code not in ignored]
        if not rules:
            return []
        parsed = self._parse(data, fold(data), relpath)
        if isinstance(parsed, Finding):
            return None
        if parsed is None:
            return []
        tree, text, hits = parsed
        scopes = _Scopes(tree)
        return [text.finding(rule.code, rule.name, hit, scopes) for rule, hit in hits if rule in rules]

    def _parse(self, data: bytes, folded: bytes, relpath: str):
        """None for a file no rule can report on, a SEAM901 finding for one that does not parse, else its
        tree, text and the rules' hits."""
        calls_seam = self._adapter_anchor is not None and self._adapter_anchor in folded
        if not (self.prefilter.is_candidate(folded) or (calls_seam and self.options.surface is not None)):
            return None
        try:
            tree = ast.parse(data, filename=relpath)
            encoding = _source_encoding(data)
            text = _Text(data, encoding)  # decoding strictly: the interpreter refuses what ast.parse lets through
        except SyntaxError as exc:
            line = exc.lineno or (_line_of(data, data.find(b"\0")) if b"\0" in data else 1)
            # an encoding the tokenizer refuses (an unknown or BOM-contradicting cookie) has no column: -1
            return _syntax_error(exc.msg, line, exc.offset if exc.offset and exc.offset > 0 else 1)
        except ValueError as exc:  # NUL bytes on some Pythons; bytes invalid in the declared encoding
            offset = getattr(exc, "start", None)
            line = _line_of(data, data.find(b"\0") if offset is None else offset + len(_BOM) * data.startswith(_BOM))
            return _syntax_error(str(exc), line, 1)
        seam = SeamBindings(self.options.adapter_parts, package_parts(relpath, self.options.src))
        if calls_seam:
            seam.collect(tree)
        source = SourceFile(tree, MLAExpressions(self.names, seam), self.prefilter.anchor_lines(folded), b":=" in data)
        hits = [(rule, hit) for rule in self.rules for hit in rule.check(source)]
        if calls_seam and self.options.surface is not None:
            gate = UndefinedSeamFunction
            hits += [(gate, hit) for hit in gate.references(tree, seam, self.options.surface)]
        return tree, text, hits


def _source_encoding(data: bytes) -> str:
    try:
        return tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        return "utf-8"


def _line_of(data: bytes, offset: int) -> int:
    return len(_LINE_BREAK.findall(data, 0, max(offset, 0))) + 1


def _syntax_error(message: str, line: int, column: int) -> Finding:
    rule = SyntaxErrorRule
    text = f"cannot parse: {message}"
    return Finding("", line, column, line, column, rule.code, rule.name, text, "", text)


class _Text:
    """Byte offsets (what ``ast`` reports, into the UTF-8 form of the source) to character columns."""

    def __init__(self, data: bytes, encoding: str) -> None:
        self.text = data.removeprefix(_BOM).decode(encoding)
        self.lines = self.text.encode("utf-8").splitlines()

    def decoded(self) -> str:
        return self.text

    def column(self, line: int, byte_offset: int) -> int:
        raw = self.lines[line - 1] if 0 < line <= len(self.lines) else b""
        return len(raw[:byte_offset].decode("utf-8", errors="replace")) + 1

    def segment(self, node: ast.AST) -> str:
        first, last = node.lineno - 1, node.end_lineno - 1
        chunk = self.lines[first : last + 1]
        if not chunk:
            return ""
        chunk = [*chunk[:-1], chunk[-1][: node.end_col_offset]]
        chunk[0] = chunk[0][node.col_offset :]
        return " ".join(b" ".join(chunk).decode("utf-8", errors="replace").split())

    def span(self, node: ast.AST) -> tuple[int, int, int, int]:
        """1-based line and character column of the start, and of one past the end."""
        end_line = node.end_lineno or node.lineno
        end_offset = node.end_col_offset if node.end_col_offset is not None else node.col_offset
        return node.lineno, self.column(node.lineno, node.col_offset), end_line, self.column(end_line, end_offset)

    def finding(self, code: str, name: str, hit: Hit, scopes: _Scopes) -> Finding:
        node = hit.node
        atom = self.span(hit.atom) if hit.atom is not None else None
        scope = scopes.qualname(node.lineno)
        return Finding("", *self.span(node), code, name, hit.message, scope, self.segment(node), hit.kind, atom)


class _Scopes:
    """The qualified name of the innermost function or class around a line (a baseline matching key).

    Each block's statements are sorted by line once and bisected: a module with thousands of findings has
    thousands of statements."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self._blocks: dict[int, tuple[list[int], list[ast.stmt]]] = {}

    def qualname(self, line: int) -> str:
        names: list[str] = []
        around = self._around(self.tree, line)
        while around is not None:
            if isinstance(around, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(around.name)
            around = self._around(around, line)
        return ".".join(names)

    def _around(self, owner: ast.AST, line: int) -> ast.stmt | None:
        """The statement directly in ``owner``'s blocks whose lines hold ``line`` (blocks are disjoint but for
        simple statements sharing a line, which hold no names)."""
        block = self._blocks.get(id(owner))
        if block is None:
            statements = sorted(nested_statements(owner), key=lambda s: s.lineno)
            block = self._blocks[id(owner)] = [s.lineno for s in statements], statements
        firsts, statements = block
        index = bisect_right(firsts, line) - 1
        if index < 0:
            return None
        statement = statements[index]
        return statement if line <= (statement.end_lineno or statement.lineno) else None
