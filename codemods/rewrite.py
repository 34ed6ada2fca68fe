"""One file through the codemods: parse, plan moves and routes for the linter's findings, apply, repeat."""

from __future__ import annotations

import ast
import functools
import io
import os
import re
import sys
import tokenize
from dataclasses import dataclass, field

import libcst as cst

from seamfix.analysis.seam_bindings import absolute_module
from seamfix.codemods.adapter_function import AdapterFunction
from seamfix.codemods.alias_definitions import AliasDefinitions
from seamfix.codemods.bindings import Bindings
from seamfix.codemods.codegen import code_of
from seamfix.codemods.context import FileContext, Seam
from seamfix.codemods.extract_arms import ARM_KEPT, ExtractArms, Move
from seamfix.codemods.focus import Focus, focus
from seamfix.codemods.imports import import_seam, seam_name_rebound, unused_mla_imports
from seamfix.codemods.line_diff import followed_line, line_opcodes
from seamfix.codemods.nodes import Span, SpanSet, finding_span
from seamfix.codemods.package_init import imports_without_effects, seam_import_changes_imports
from seamfix.codemods.project import Project
from seamfix.codemods.route_predicates import RoutePredicates
from seamfix.file_checker import FileChecker
from seamfix.findings import Finding
from seamfix.parallel import call_with_room

_BOM = b"\xef\xbb\xbf"
_LONE_CR = re.compile(rb"\r(?!\n)")  # a line break to Python, as CRLF and LF are
_FIXABLE = "SEAM001"
_UNPARSEABLE = "SEAM901"
# Each round routes the MLA parts the linter reports; a test with several (`a and not b`) needs one per part.
_MAX_ROUNDS = 8


@dataclass
class FileRewrite:
    relpath: str
    data: bytes
    functions: list[AdapterFunction] = field(default_factory=list)
    routed: int = 0
    moved: int = 0
    left: list[str] = field(default_factory=list)  # "line:column: why" for findings still there
    kept_arms: list[str] = field(default_factory=list)  # "line:column: why" for MLA arms that stay
    error: str | None = None  # the file is not valid Python (or cannot be read)
    refused: str | None = None  # valid Python that stays untouched, and why

    def refuse(self, why: str, original: bytes) -> None:
        """Leave the file as it was: nothing routed or moved, nothing asked of the adapter."""
        self.data, self.functions, self.routed, self.moved, self.kept_arms, self.left = original, [], 0, 0, [], []
        self.refused = why


def rewrite_file(data: bytes, relpath: str, checker: FileChecker, seam: Seam, project: Project,
                 findings: list[Finding] | None = None) -> FileRewrite:  # fmt: skip
    """``data`` with every fixable finding routed or moved; untouched when it cannot be parsed, and when
    anything goes wrong on valid Python (a construct the codemods do not know, nesting too deep for
    LibCST): that is a per-file refusal, never a crash of the run. ``findings``: ``checker``'s findings of
    ``data``, when the caller has them."""
    try:
        return call_with_room(_rewrite, data, relpath, checker, seam, project, findings)  # a 500-term `+` too
    except (RecursionError, MemoryError):
        result = FileRewrite(relpath, data)
        result.refuse("nested too deeply for the codemods", data)
    except _NotGivenBack as exc:
        result = FileRewrite(relpath, data)
        result.refuse(str(exc), data)
    except (cst.ParserSyntaxError, UnicodeDecodeError, SyntaxError) as exc:
        result = FileRewrite(relpath, data)
        first = str(exc).splitlines()[0]
        if _libcst_parses(data):  # the file is fine: what failed to parse is code the codemods wrote
            result.refuse(f"the codemods failed on it (their code does not parse: {first})", data)
        else:
            result.refuse(f"LibCST cannot parse it: {first}", data)
    except Exception as exc:  # noqa: BLE001 - one file's failure is that file's result, as a LibCST codemod's
        result = FileRewrite(relpath, data)
        result.refuse(f"the codemods failed on it ({type(exc).__name__}: {exc})", data)
    return result


class _NotGivenBack(Exception):
    """LibCST parsed a text that it does not give back as it read it, so any rewrite would change lines apply
    did not touch."""


def _given_back(module: cst.Module, text: str) -> None:
    """Raise ``_NotGivenBack`` naming the first line of ``text`` that ``module``, parsed from it, does not give back
    (a form feed before an indented statement: LibCST keeps only the indentation)."""
    code = code_of(module)
    if code == text:
        return
    lines = zip(code.splitlines(keepends=True), text.splitlines(keepends=True), strict=False)
    line = next((number for number, (ours, theirs) in enumerate(lines, 1) if ours != theirs), None)
    where = f"line {line}" if line is not None else "its end"
    raise _NotGivenBack(f"LibCST does not give back {where} as it reads it (a form feed in an indentation): writing "
                        f"the file would change lines apply did not touch")  # fmt: skip


def _libcst_parses(data: bytes) -> bool:
    try:
        call_with_room(cst.parse_module, data)
    except Exception:  # noqa: BLE001 - any failure means no
        return False
    return True


def _rewrite(data: bytes, relpath: str, checker: FileChecker, seam: Seam, project: Project,
             known: list[Finding] | None) -> FileRewrite:  # fmt: skip
    result = FileRewrite(relpath, data)
    found = checker.check(data, relpath) if known is None else known
    findings = [f for f in found if f.code in (_FIXABLE, _UNPARSEABLE)]
    broken = next((f for f in findings if f.code == _UNPARSEABLE), None)
    if broken is not None:
        result.error = f"{broken.line}:{broken.column}: {broken.message}"
        return result
    if _LONE_CR.search(data):
        result.refuse("its lines end in a lone CR (classic Mac OS), which the codemods would not keep", data)
        return result
    encoding = _lossy_encoding(data)
    if encoding is not None:
        result.refuse(f"its encoding ({encoding}) does not give back the bytes it decodes from: writing the file "
                      f"would change lines apply did not touch", data)  # fmt: skip
        return result
    rebound = _seam_name_rebound(data, seam, project.package_parts(relpath))
    if rebound is not None:
        result.refuse(f"line {rebound} binds `{seam.name}`, the name the seam is imported as: the calls apply "
                      f"writes would read that instead", data)  # fmt: skip
        return result
    submodule = _submodule_named_like_the_seam(relpath, seam, project)
    if submodule is not None:
        result.refuse(f"its package holds `{submodule}`, which importing binds to `{seam.name}` in this "
                      f"`__init__.py` as well: the calls apply writes would read that module", data)  # fmt: skip
        return result
    star = _star_importer_binding_seam_name(data, relpath, seam, project)
    if star is not None:
        result.refuse(f"`{star}` imports `*` from it and binds `{seam.name}` itself, which the seam import here would "
                      f"replace there (the module has no `__all__` listing its names)", data)  # fmt: skip
        return result
    current = data
    given_up: dict[tuple[str, str, str], str] = {}  # findings no codemod could touch, by what they say
    for _ in range(_MAX_ROUNDS):
        if not findings:
            break
        if all(_identity(f) in given_up for f in findings):
            # Another round would parse the file again only to give up on the same findings.
            result.left = [f"{f.line}:{f.column}: {given_up[_identity(f)]}" for f in findings]
            break
        changed, untouched = _round(current, relpath, findings, checker, seam, project, result)
        if changed is None:
            result.left = [f"{f.line}:{f.column}: {untouched.get(f, 'no codemod handles it')}" for f in findings]
            break
        given_up.update((_identity(f), why) for f, why in untouched.items())
        result.kept_arms = relocated(result.kept_arms, current, changed)
        current = changed
        findings = [f for f in checker.check(current, relpath) if f.code == _FIXABLE]
    result.data = current
    if current != data:
        before = _parse(data)
        root = project.source_root(relpath)

        def beside(module: str) -> bool:  # a module of the file's own source root: imported, the root is on the path
            found = project.project_file(module)
            return found is not None and project.source_root(found) == root

        runs = seam_import_changes_imports(before, _parse(current), project.module_parts(relpath),
                                           project.package_parts(relpath), seam, project.seam_packages,
                                           _adapter_root_unused(before, relpath, project), beside,
                                           project.imported_by_its_package(relpath))  # fmt: skip
        runs = runs or _imported_as_top_level(before, relpath, seam, project)
        if runs is not None:
            result.refuse(runs, data)
    return result


def _round(data: bytes, relpath: str, findings: list[Finding], checker: FileChecker, seam: Seam, project: Project,
           result: FileRewrite) -> tuple[bytes | None, dict[Finding, str]]:  # fmt: skip
    """One pass over ``findings``: the new bytes (None if nothing could change), and the findings no edit
    touched, with why."""
    encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    encoding = "utf-8" if encoding == "utf-8-sig" else encoding  # the BOM is kept by hand
    bom = data.startswith(_BOM)
    text = data.removeprefix(_BOM).decode(encoding)
    module = cst.parse_module(text)
    _given_back(module, text)
    tree = ast.parse(text)
    bindings = Bindings(tree, text, relpath)
    aliases = AliasDefinitions.of_file(tree, text, project.package_parts(relpath), bindings, checker.names, seam)
    lines = [line for f in findings for line in range(f.line, f.end_line + 1)]
    lines += aliases.lines(f.atom for f in findings if f.atom is not None)
    area = focus(module, tree, lines)
    context = FileContext(area, tree, text, relpath, checker.names, seam, bindings, project)
    local = {finding: _in_focus(finding, area) for finding in findings}
    router = RoutePredicates(context, aliases)
    extractor = ExtractArms(router)
    edits: dict[cst.CSTNode, cst.CSTNode] = {}
    reasons: dict[Finding, str] = {}
    untouched: dict[Finding, str] = {}
    moved_spans = SpanSet()
    edited_spans = SpanSet()  # moved arms and routed parts: an edit inside another would be lost

    def inside_moved(finding: Finding) -> bool:
        return moved_spans.any_enclosing(finding_span(*local[finding][1:5]))

    for finding in findings:
        if (compiled := context.compiled_by(finding.line)) is not None:
            untouched[finding] = compiled
    findings = [finding for finding in findings if finding not in untouched]
    for finding in findings:
        if inside_moved(finding):
            continue
        plan = extractor.plan(local[finding])
        if isinstance(plan, Move):
            edits[plan.suite] = plan.replacement
            moved_spans.add(context.span(plan.suite))
            edited_spans.add(context.span(plan.suite))
            result.functions.append(plan.function)
            result.moved += 1
        elif isinstance(plan, str):
            reasons[finding] = plan
    for finding in findings:
        if inside_moved(finding):
            continue
        routes = router.routes(local[finding])
        if isinstance(routes, str):
            untouched[finding] = reasons.get(finding, routes)
            continue
        if reasons.get(finding, "").startswith(ARM_KEPT):  # only an arm whose test is routed: the summary says so
            result.kept_arms.append(f"{finding.line}:{finding.column}: {reasons[finding]}")
        for route in routes:
            span = context.span(route.node)
            if edited_spans.any_enclosing(span) or edited_spans.any_inside(span):
                continue  # an alias's definition that another finding routed, or that moved with its arm
            edited_spans.add(span)
            edits[route.node] = route.call
            result.functions.append(route.function)
            result.routed += 1
    if not edits:
        return None, untouched
    edited = [_in_original(context.span(node), area) for node in edits]
    droppable = functools.cache(
        lambda: imports_without_effects(tree, project.package_parts(relpath), project.root, project.project_file)
    )
    written = [node for node in edits.values() if isinstance(node, cst.CSTNode)]
    edits.update(unused_mla_imports(module, tree, checker.names, edited, droppable, written))
    rewritten = import_seam(context, module.visit(_ReplaceNodes(edits, context.parents, area.originals, module)))
    return (_BOM if bom else b"") + code_of(rewritten).encode(encoding), untouched


def relocated(entries: list[str], old: bytes, new: bytes) -> list[str]:
    """``"line:column: why"`` entries about ``old``, each at its line in ``new``: a summary names lines of
    the file as written, after every round and the formatting moved them."""
    if old == new or not entries:
        return entries
    opcodes = line_opcodes(old.splitlines(), new.splitlines())
    moved = []
    for entry in entries:
        line, rest = entry.split(":", 1)
        moved.append(f"{followed_line(opcodes, int(line))}:{rest}")
    return moved


def _seam_name_rebound(data: bytes, seam: Seam, package_parts: tuple[str, ...]) -> int | None:
    """Where the file binds the seam's name to something else (``seam_name_rebound``); a file that never
    spells the name is not parsed for it."""
    if seam.name.encode() not in data:
        return None
    return seam_name_rebound(_parse(data), seam, package_parts)


def _submodule_named_like_the_seam(relpath: str, seam: Seam, project: Project) -> str | None:
    """A package's ``__init__.py`` shares its namespace with the package's attributes: a module of the
    package named like the seam import (other than the adapter) rebinds that name when it is imported."""
    if project.root is None or not relpath.endswith("__init__.py"):
        return None
    folder = (project.root / relpath).parent
    package = ".".join(project.module_parts(relpath))
    if f"{package}.{seam.name}".lstrip(".") == ".".join(seam.parts):
        return None
    for candidate in (f"{seam.name}.py", seam.name):
        if (folder / candidate).exists():
            return os.path.relpath(folder / candidate, project.root).replace(os.sep, "/")
    return None


def _lossy_encoding(data: bytes) -> str | None:
    """The file's encoding when decoding and encoding again changes its bytes (cp932 maps several byte pairs to
    one character, UTF-7 spells a character several ways): apply writes text, so it would rewrite them."""
    encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    if encoding in ("utf-8", "utf-8-sig"):
        return None  # a decoding error is no round trip to check: the parse reports it
    body = data.removeprefix(_BOM)
    try:
        return None if body.decode(encoding).encode(encoding) == body else encoding
    except (UnicodeError, LookupError):
        return None


def _adapter_root_unused(tree: ast.Module, relpath: str, project: Project) -> str | None:
    """The adapter's source root when the file lives in another (``src/pkg/model.py``, ``mla_seam.py`` at the
    top) and imports no module of it: where the file runs, that root need not be importable."""
    adapter_root = project.source_root(project.adapter) if project.adapter else None
    if adapter_root is None or adapter_root == project.source_root(relpath):
        return None
    for node in tree.body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        for name in names:
            found = project.project_file(name.split(".")[0])
            if found is not None and project.source_root(found) == adapter_root:
                return None
    return adapter_root


def _imported_as_top_level(tree: ast.Module, relpath: str, seam: Seam, project: Project) -> str | None:
    """Why the seam import may not resolve where a module of a package runs, if it may not: the module imports
    a module beside it by its bare name (``from mla_impl import X`` in ``pkg/model.py``), so it runs with its
    own folder on ``sys.path`` (a script or tool imports it as ``model``), where ``from pkg import mla_seam``
    needs the folder holding ``pkg`` too; unless it imports from ``pkg`` already (or relatively)."""
    top = seam.parts[0]
    beside = None
    for node in tree.body:
        imports = [(a.name, None) for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                return None
            imports = [(node.module or "", [a.name for a in node.names])]
        for name, names in imports:
            first = name.split(".")[0]
            if first == top:
                return None
            # `import logging` beside a `pkg/logging.py` means the standard library's, in a package module
            sibling = (
                first not in sys.stdlib_module_names
                and project.is_script_import(first, relpath)
                and project.sibling_may_answer(name, names, relpath)
            )
            beside = beside or (name if sibling else None)
    if beside is None:
        return None
    return (f"it imports `{beside}`, a module beside it, by its bare name: it runs with its own folder on `sys.path` "
            f"(a script or tool imports it as a top-level module), where the seam import would need `{top}` "
            f"importable; `allow` it or leave it out (`extend-exclude`)")  # fmt: skip


def _star_importer_binding_seam_name(data: bytes, relpath: str, seam: Seam, project: Project) -> str | None:
    """A project file that imports ``*`` from this module and binds the seam's name to something else: without
    an ``__all__``, the star import copies every public name, the seam import's too, over that binding."""
    module = ".".join(project.module_parts(relpath))
    importers = project.importers.get((module, "*"), set()) - {relpath}
    if not importers or project.root is None:
        return None
    if _lists_its_names(_parse(data)):
        return None
    for importer in sorted(importers):
        try:
            source = (project.root / importer).read_bytes()
            if seam.name.encode() not in source:
                continue
            tree = _parse(source)
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
            continue
        package = project.package_parts(importer)
        stars = any(
            isinstance(node, ast.ImportFrom) and node.names[0].name == "*"
            and absolute_module(package, node.level, node.module) == module
            for node in ast.walk(tree)
        )  # fmt: skip
        if stars and seam_name_rebound(tree, seam, package) is not None:
            return importer
    return None


def _lists_its_names(tree: ast.Module) -> bool:
    """Does the module bind ``__all__`` to names written out (``["build", "Spec"]``, ``+= ("x",)``,
    ``.append("y")``)? One computed from its namespace (``[n for n in dir() if ...]``) may list the seam's name."""
    listed = False
    for node in ast.walk(tree):
        values: list[ast.expr] = []
        if isinstance(node, ast.stmt) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in _targets(node)):
            values = [node.value] if node.value is not None else []
            listed = True
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "__all__":
                values = [*node.args, *(keyword.value for keyword in node.keywords)]
        for value in values:
            try:
                ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return False
    return listed


def _targets(statement: ast.stmt) -> list[ast.expr]:
    if isinstance(statement, ast.Assign):
        return statement.targets
    return [statement.target] if isinstance(statement, (ast.AnnAssign, ast.AugAssign)) else []


def _parse(data: bytes) -> ast.Module:
    encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    return ast.parse(data.removeprefix(_BOM).decode(encoding))


def _identity(finding: Finding) -> tuple[str, str, str]:
    """What a finding is, whatever line edits above it moved it to."""
    return finding.scope, finding.content, finding.kind


def _in_focus(finding: Finding, area: Focus) -> Finding:
    """``finding`` with its lines (and its atom's) counted in the focus module."""
    atom = finding.atom
    if atom is not None:
        atom = (area.to_focus(atom[0]), atom[1], area.to_focus(atom[2]), atom[3])
    return finding._replace(line=area.to_focus(finding.line), end_line=area.to_focus(finding.end_line), atom=atom)


def _in_original(span: Span, area: Focus) -> Span:
    return area.to_original(span[0]), span[1], area.to_original(span[2]), span[3]


class _ReplaceNodes(cst.CSTTransformer):
    """Applies planned edits, keyed by the nodes of the tree they were planned on, visiting only the paths
    from the root to them (a big module has a few hundred thousand nodes)."""

    def __init__(self, edits: dict[cst.CSTNode, cst.CSTNode], parents, originals, root: cst.Module) -> None:
        self.edits = edits
        self.on_path: set[cst.CSTNode] = {root}
        for node in edits:
            while node is not None and node not in self.on_path:
                self.on_path.add(originals.get(node, node))
                node = parents.get(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        return node in self.on_path and node not in self.edits

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):
        return self.edits.get(original_node, updated_node)
