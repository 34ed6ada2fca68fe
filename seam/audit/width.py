"""The seam's width in a tree: MLA findings outside it, calls into it, and the adapter's own size."""

from __future__ import annotations

import ast
from dataclasses import asdict, astuple, dataclass

from seamfix.analysis.seam_bindings import SeamBindings
from seamfix.config import Settings, package_parts
from seamfix.engine import check_options, not_ignored
from seamfix.file_checker import FileChecker
from seamfix.prefilter import fold
from seamfix.seam_surface import surface_of


@dataclass(frozen=True)
class SeamWidth:
    findings: int  # lint findings outside the seam
    call_sites: int  # calls into the adapter module from outside the seam
    adapter_functions: int
    adapter_lines: int  # non-blank, non-comment lines

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: SeamWidth) -> SeamWidth:
        """Two projects' widths as one (each measured against its own adapter)."""
        return SeamWidth(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))


def measure(files: dict[str, bytes], settings: Settings) -> SeamWidth:
    """Width of a tree given as project-relative path -> bytes (already filtered by include/exclude): lint's
    findings, ``per-file-ignores`` applied."""
    adapter = settings.adapter
    surface = surface_of(adapter, files.get(adapter)) if adapter else None
    checker = FileChecker(check_options(settings, surface))
    adapter_stem = fold(settings.adapter_module_parts[-1].encode()) if settings.adapter else None
    findings = call_sites = 0
    for relpath, data in files.items():
        if settings.is_seam(relpath):
            continue
        findings += len(not_ignored(checker.check(data, relpath), settings, relpath))
        if adapter_stem is not None and adapter_stem in fold(data):
            call_sites += _seam_calls(data, relpath, settings)
    functions, lines = _adapter_size(files.get(settings.adapter or ""))
    return SeamWidth(findings, call_sites, functions, lines)


def _bindings(data: bytes, relpath: str, settings: Settings) -> tuple[ast.Module, SeamBindings] | None:
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return None
    return tree, SeamBindings(settings.adapter_module_parts, package_parts(relpath, settings.src)).collect(tree)


def _seam_calls(data: bytes, relpath: str, settings: Settings) -> int:
    parsed = _bindings(data, relpath, settings)
    if parsed is None:
        return 0
    tree, seam = parsed
    return sum(isinstance(node, ast.Call) and seam.refers_to_seam(node.func) for node in ast.walk(tree))


@dataclass(frozen=True)
class SeamUse:
    """How a file reaches the seam: the names it uses for it (``mla_seam``, ``multi_latent_attention``, the adapter's
    package path) and where its calls into the adapter are. Using them is the seam working, not MLA leaking."""

    names: frozenset[str] = frozenset()
    calls: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = ()


def seam_use(data: bytes, relpath: str, settings: Settings) -> SeamUse:
    if not settings.adapter:
        return SeamUse()
    parsed = _bindings(data, relpath, settings)
    if parsed is None:
        return SeamUse(frozenset(settings.adapter_module_parts))
    tree, seam = parsed
    dotted = {part for module in seam.dotted_modules for part in module.split(".")}
    calls = tuple(
        ((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and seam.refers_to_seam(node.func)
    )
    return SeamUse(frozenset({*seam.modules, *seam.functions, *dotted, *settings.adapter_module_parts}), calls)


def _adapter_size(data: bytes | None) -> tuple[int, int]:
    if data is None:
        return 0, 0
    text = data.decode("utf-8", errors="replace")
    lines = sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return 0, lines
    functions = sum(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in tree.body)
    return functions, lines
