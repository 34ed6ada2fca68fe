"""Apply's output in the project's own style: its import sorter and formatter, on what apply wrote only.

The style is the project's ruff configuration (the nearest ``ruff.toml``, ``.ruff.toml`` or ``pyproject.toml``
with ``[tool.ruff]`` above the file, as ruff finds it); without one, its black and isort settings translated
to ruff's (line length, string normalization, magic trailing comma, isort's known sections and options), also
on top of a ``[tool.ruff]`` that sets nothing of the layout beside them (lint rules only, Megatron-LM's);
without those, ruff's defaults for imports, and black at its defaults (where installed) on the files it
formatted before (a project formatting by a script seamfix cannot read). Ruff's formatter and import sorter
stand in for black and isort: they are built to match them (black's style, isort's ``profile = "black"``).

A rewritten builder keeps every line apply did not write. Of an import block apply touched (the seam import
added, an MLA import dropped) that the project had sorted, ruff's sort is taken; a block that was unsorted
before stays as apply left it. Each statement apply wrote, and each ``if``/``elif``/``while``/``for``/``with``
header, is formatted alone, at its own column, by one ruff run over all of them (ruff's ``--range``
formats a header's whole block, and sometimes the statement after a range too). Formatting that changes a
file's syntax tree is dropped: it must never change behaviour. The adapter module is apply's file: it is
sorted and formatted whole.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from seamfix.codemods.line_diff import line_opcodes
from seamfix.errors import SeamfixError
from seamfix.parallel import call_with_room

_UNIT_MARKER = "__seamfix_unit__ = "
RUFF_THREAD_STACK_BYTES = 256 * 1024 * 1024
_INDENT = "    "  # black's and ruff's indentation: a unit is nested in `if 1:` blocks to sit at its column
_HEADERS = (ast.If, ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)


@dataclass(frozen=True)
class Style:
    """How ruff is run to sort and format like the project does."""

    config: Path | None  # the project's ruff configuration; None: ruff's defaults
    overrides: tuple[str, ...] = ()  # ruff ``--config KEY=VALUE`` settings translated from black and isort, on top
    configured: bool = False  # the project configures a formatter: the lines apply writes are formatted
    known_first_party: tuple[str, ...] = ()
    own_tools: tuple[str, ...] = ()  # "isort", "black": configured in ``tools_root`` (run when installed)
    tools_root: Path | None = None

    @property
    def root(self) -> Path | None:
        """Where ruff runs: it resolves a configuration's relative settings given by ``--config`` (``src``, the
        first-party roots) against its working folder, which must be the configuration's own."""
        return self.config.parent if self.config is not None else self.tools_root

    def arguments(self, first_party: str | None = None) -> list[str]:
        """Ruff's options for this style; ``first_party``: a module to count as first-party besides the
        project's own (the seam's, which may not exist yet for ruff to find). Its package counts: ruff places
        ``from pkg.sub import mla_seam`` by ``pkg.sub``, which ``pkg.sub.mla_seam`` would not make first-party
        where ruff cannot find ``pkg`` itself (no configuration: it runs from the builder's folder); the
        package, not its top level, as a namespace package may be the project's in part only."""
        overrides = [part for override in self.overrides for part in ("--config", override)]
        arguments = (
            ["--config", str(self.config), *overrides] if self.config is not None else ["--isolated", *overrides]
        )
        known = [*self.known_first_party, *([first_party.rpartition(".")[0] or first_party] if first_party else [])]
        if known:
            arguments += ["--config", f"lint.isort.known-first-party = {json.dumps(known)}"]
        return arguments


# No formatter configured: a project can format all the same, by a script or CI step seamfix cannot read
# (mbridge's `isort . && black .`); black at its defaults keeps what it formatted so (see ``_own_tool``).
UNCONFIGURED = Style(None, own_tools=("black",))


def style_for(path: Path) -> Style:
    """The style of ``path`` (a file; it need not exist yet)."""
    return _style_of_folder(Path(os.path.realpath(path)).parent)


@lru_cache(maxsize=256)
def _style_of_folder(folder: Path) -> Style:
    """The nearest configuration of either kind wins: a project's own black settings over a ruff
    configuration further up (a monorepo's, a home folder's)."""
    for directory in (folder, *folder.parents):
        for name in ("ruff.toml", ".ruff.toml"):
            if (directory / name).is_file():
                return Style(directory / name, configured=True, known_first_party=_ruff_first_party(
                    _toml(directory / name)))  # fmt: skip
        ruff = _toml(directory / "pyproject.toml").get("tool", {}).get("ruff")
        if ruff is not None:
            return _pyproject_ruff_style(directory, ruff)
        black_and_isort = _black_and_isort(directory)
        if black_and_isort is not None:
            overrides, first_party, tools = black_and_isort
            source_roots = f"src = {json.dumps([str(directory), str(directory / 'src')])}"
            return Style(None, (source_roots, *overrides), True, first_party, tools, directory)
    return UNCONFIGURED


# Ruff settings of the layout: a `[tool.ruff]` without them leaves formatting to whatever else the file configures.
_RUFF_LAYOUT_KEYS = frozenset({"line-length", "indent-width", "format"})


def _pyproject_ruff_style(directory: Path, ruff: dict) -> Style:
    """A ``pyproject.toml`` with ``[tool.ruff]``. One that sets nothing of the layout (Megatron-LM's holds
    lint rules only) beside black or isort settings in the same file is formatted and sorted by those: their
    settings, translated, go on top of ruff's file (isort's only where ruff has no import settings)."""
    config = directory / "pyproject.toml"
    first_party = _ruff_first_party(ruff)
    translated = None
    if not _RUFF_LAYOUT_KEYS & ruff.keys():
        translated = _black_and_isort(directory, isort_too=not _ruff_isort(ruff))
    if translated is None:
        return Style(config, configured=True, known_first_party=first_party)
    overrides, isort_first_party, tools = translated
    return Style(config, tuple(overrides), True, first_party or isort_first_party, tools, directory)


def _ruff_isort(settings: dict) -> dict:
    """The import settings of a ruff configuration (``[lint.isort]``, or the older ``[isort]``)."""
    return settings.get("lint", {}).get("isort") or settings.get("isort") or {}


def _ruff_first_party(settings: dict) -> tuple[str, ...]:
    return tuple(_ruff_isort(settings).get("known-first-party", ()))


def _toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _black_and_isort(
    directory: Path, isort_too: bool = True
) -> tuple[list[str], tuple[str, ...], tuple[str, ...]] | None:
    """Ruff settings equivalent to the black and isort settings configured in ``directory`` (``isort_too``:
    isort's as well), isort's known first-party packages and which of the two are configured; None when
    neither is."""
    tool = _toml(directory / "pyproject.toml").get("tool", {})
    black = {key.replace("-", "_"): value for key, value in tool.get("black", {}).items()}
    isort = {}
    if isort_too:
        isort = {key.replace("-", "_"): value for key, value in tool.get("isort", {}).items()} or _isort_ini(directory)
    yapf = _yapf_settings(directory)
    if not black and not isort and not yapf:
        return None
    overrides = []
    line_length = black.get("line_length", isort.get("line_length", _yapf_column_limit(yapf)))
    if line_length is not None:
        overrides.append(f"line-length = {int(line_length)}")
    if _true(black.get("skip_string_normalization")) or not black:
        # Only black (or ruff's formatter) normalizes quotes: under isort or yapf alone the project's quotes are its
        # own (ms-swift: yapf, isort and pre-commit's `double-quote-string-fixer`), and apply keeps them as written.
        overrides.append('format.quote-style = "preserve"')
    if _true(black.get("skip_magic_trailing_comma")):
        overrides += ["format.skip-magic-trailing-comma = true", "lint.isort.split-on-trailing-comma = false"]
    if isort.get("known_third_party"):
        overrides.append(f"lint.isort.known-third-party = {json.dumps(_names(isort['known_third_party']))}")
    for option in ("force_sort_within_sections", "force_single_line", "combine_as_imports", "order_by_type",
                   "case_sensitive"):  # fmt: skip
        if option in isort:
            overrides.append(f"lint.isort.{option.replace('_', '-')} = {str(_true(isort[option])).lower()}")
    if "lines_after_imports" in isort:
        overrides.append(f"lint.isort.lines-after-imports = {int(isort['lines_after_imports'])}")
    tools = (*(["isort"] if isort else []), *(["black"] if black else []))
    return overrides, tuple(_names(isort.get("known_first_party", []))), tools


def _yapf_settings(directory: Path) -> dict:
    """yapf's style settings in ``directory`` (``.style.yapf``, ``setup.cfg``'s ``[yapf]``, ``[tool.yapf]``),
    keys in lower case; empty when it configures none."""
    settings = _toml(directory / "pyproject.toml").get("tool", {}).get("yapf", {})
    if settings:
        return {str(key).lower().replace("-", "_"): value for key, value in settings.items()}
    found = _ini_section(directory, ((".style.yapf", ("style",)), ("setup.cfg", ("yapf",))))
    return {} if found is None else found or {"based_on_style": "pep8"}


def _yapf_column_limit(settings: dict) -> int | None:
    """yapf's line length: ``column_limit``, else its base style's (pep8 79, google and facebook 80)."""
    if not settings:
        return None
    if "column_limit" in settings:
        return int(settings["column_limit"])
    return 80 if str(settings.get("based_on_style", "pep8")).strip().lower() in ("google", "facebook") else 79


def _isort_ini(directory: Path) -> dict:
    return (
        _ini_section(directory, ((".isort.cfg", ("settings", "isort")), ("setup.cfg", ("isort", "tool:isort")))) or {}
    )


def _ini_section(directory: Path, places: tuple[tuple[str, tuple[str, ...]], ...]) -> dict | None:
    """The first of ``places`` (an INI file in ``directory``, its section names) found, as a dict (keys in lower
    case); None when none is."""
    for name, sections in places:
        parser = configparser.ConfigParser()
        try:
            parser.read(directory / name)
        except configparser.Error:
            continue
        for section in sections:
            if parser.has_section(section):
                return dict(parser.items(section))
    return None


def _true(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def _names(value) -> list[str]:
    return list(value) if isinstance(value, list) else [n.strip() for n in str(value).split(",") if n.strip()]


def format_module(text: str, path: Path, first_party: str | None = None) -> str:
    """``text``, a module apply owns, with its imports sorted and formatted in the style of ``path``."""
    style = style_for(path)
    sort = ["check", "--select", "I001", "--fix", "--exit-zero", "--quiet", *style.arguments(first_party)]
    sorted_text = _ruff(sort, text, path, None)
    return _ruff(["format"], sorted_text, path, style)


def _ruff(arguments: list[str], text: str, path: Path, style: Style | None, *, check: bool = True) -> str | None:
    """Ruff on ``text`` as the file ``path``, in ``style`` (None: ``arguments`` carry it)."""
    options = style.arguments() if style is not None else []
    command = [ruff_executable(), *arguments, "--no-cache", *options, "--stdin-filename", str(path), "-"]
    try:
        folder = style_for(path).root or next(parent for parent in Path(path).parents if parent.is_dir())
        proc = subprocess.run(command, input=text, capture_output=True, text=True, cwd=folder, timeout=120,
                              env=ruff_environment())  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SeamfixError(f"cannot run ruff to format {path}: {exc}") from None
    if proc.returncode != 0:
        if not check:
            return None
        raise SeamfixError(f"{path}: ruff {arguments[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout


def format_touched(files: list[tuple[Path, bytes, bytes]], first_party: str | None = None) -> list[bytes]:
    """Each rewritten builder ``(path, original, rewritten)`` with the import blocks and statements apply
    touched sorted and formatted in its project's style; every other line as it was. ``first_party``: the
    seam's module."""
    results = [new for _, _, new in files]
    texts = {}
    for index, (_, old, new) in enumerate(files):
        try:
            texts[index] = (old.decode("utf-8"), new.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # another encoding: left as apply wrote it
    by_style: dict[Style, list[int]] = {}
    for index in texts:
        by_style.setdefault(style_for(files[index][0]), []).append(index)
    for style, indexes in by_style.items():
        root = style.root or files[indexes[0]][0].parent
        sorted_texts = _sort_touched_imports([texts[i] for i in indexes], style, root, first_party)
        formatted = _format_touched_units(
            [(files[i][0], texts[i][0], text) for i, text in zip(indexes, sorted_texts, strict=True)], style
        ) if style.configured else sorted_texts  # fmt: skip
        for tool in style.own_tools:
            formatted = _own_tool(tool, style.tools_root, [texts[i][0] for i in indexes], formatted)
        for index, text in zip(indexes, formatted, strict=True):
            if text != texts[index][1] and _same_tree(texts[index][1], text, imports_may_move=True):
                results[index] = text.encode("utf-8")
    return results


def _empty_config(folder: Path) -> Path:
    """A configuration file with no settings: the tool's defaults, whatever lies above the scratch folder."""
    path = folder / "defaults.toml"
    path.write_text("", encoding="utf-8")
    return path


def _own_tool(tool: str, root: Path | None, originals: list[str], texts: list[str]) -> list[str]:
    """``texts`` after the project's own isort or black (where installed; ``root`` None: black at its defaults,
    no formatter being configured), for each file in which it changes only what apply wrote (a file it would
    change elsewhere was not clean under it before: the text stands there). Black's own syntax check is left
    to ``_same_tree``."""
    outputs = _black_at_defaults(texts) if tool == "black" and root is None else None
    if outputs is None:
        outputs = _tool_outputs(tool, root, texts)
    if outputs is None:
        return texts
    return [
        formatted if _changes_only(touched_lines(original, text), text, formatted) else text
        for original, text, formatted in zip(originals, texts, outputs, strict=True)
    ]


def _tool_outputs(tool: str, root: Path | None, texts: list[str]) -> list[str] | None:
    """``tool`` run once over all ``texts``; None where it is not installed or fails."""
    command = _tool_command(tool)
    if command is None:
        return None
    with tempfile.TemporaryDirectory(prefix=f"seamfix-{tool}-") as scratch:
        paths = _scratch_files(Path(scratch), texts)
        if tool == "isort":
            options = ["-q", "--settings-path", str(root)]
        else:  # black: the project's settings, or (``root`` None) none: its defaults
            config = root / "pyproject.toml" if root is not None else _empty_config(Path(scratch))
            options = ["-q", "--fast", "--config", str(config)]
        try:
            proc = subprocess.run([*command, *options, *map(str, paths)], capture_output=True, cwd=root or scratch,
                                  timeout=300)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0:
            return None
        return [path.read_bytes().decode("utf-8") for path in paths]


# Black formats about a thousand lines a second here, and only to learn whether a file was black's before:
# a longer file of a project without formatter settings keeps apply's lines as written.
_BLACK_AT_DEFAULTS_MAX_LINES = 3000


def _black_at_defaults(texts: list[str]) -> list[str] | None:
    """Black at its defaults in this process, where seamfix's environment has it (apply runs in every
    project without formatter settings: a process per call would cost more than the formatting); None
    otherwise. A text black cannot format, with CR line ends (black's file reader handles those) or longer
    than ``_BLACK_AT_DEFAULTS_MAX_LINES`` stays."""
    if importlib.util.find_spec("black") is None:
        return None
    import black

    mode = black.Mode()
    outputs = []
    for text in texts:
        skip = "\r" in text or text.count("\n") > _BLACK_AT_DEFAULTS_MAX_LINES
        try:
            outputs.append(text if skip else black.format_str(text, mode=mode))
        except Exception:  # noqa: BLE001 - black's parse and format errors: the text as apply wrote it
            outputs.append(text)
    return outputs


def _changes_only(lines: set[int], text: str, formatted: str) -> bool:
    """Whether every change from ``text`` to ``formatted`` touches one of ``lines`` of ``text``."""
    return all(
        tag == "equal" or lines.intersection(range(start + 1, max(end, start + 1) + 1))
        for tag, start, end, _, _ in line_opcodes(text.splitlines(), formatted.splitlines())
    )


def _tool_command(tool: str) -> list[str] | None:
    """How to run ``tool``: from this interpreter's environment, else from the path; None if neither has it."""
    if importlib.util.find_spec(tool) is not None:
        return [sys.executable, "-m", tool]
    found = shutil.which(tool)
    return [found] if found else None


def _scratch_files(folder: Path, texts: list[str]) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for index, text in enumerate(texts):
        paths.append(folder / f"module_{index}.py")
        paths[-1].write_bytes(text.encode("utf-8"))
    return paths


def touched_lines(old: str, new: str) -> set[int]:
    """The lines of ``new`` (from 1) that are not lines of ``old``; a line after a deletion counts too."""
    touched = set()
    for tag, _, _, start, end in line_opcodes(old.splitlines(), new.splitlines()):
        if tag in ("replace", "insert"):
            touched.update(range(start + 1, end + 1))
        elif tag == "delete":
            touched.add(start + 1)
    return touched


def _sort_touched_imports(pairs: list[tuple[str, str]], style: Style, root: Path, first_party: str | None) -> list[str]:
    """Each new text with ruff's sort of every module-level import block that apply touched and that was
    sorted before (no I001 in the original)."""
    reports = _import_diagnostics([text for pair in pairs for text in pair], style.arguments(first_party), root)
    results = []
    for (old, new), old_report, new_report in zip(pairs, reports[::2], reports[1::2], strict=True):
        touched = touched_lines(old, new)
        if not touched or not new_report:
            results.append(new)
            continue
        to_old = _line_map(old, new)
        unsorted_before = [(d["location"]["row"], d["end_location"]["row"]) for d in old_report]
        edits = []
        for diagnostic in new_report:
            first, last = diagnostic["location"]["row"], diagnostic["end_location"]["row"]
            rows = range(first, last + 1)
            if diagnostic["location"]["column"] != 1 or not touched.intersection(rows) or not diagnostic.get("fix"):
                continue
            before = {to_old[row] for row in rows if row in to_old}
            if any(start <= row <= end for row in before for start, end in unsorted_before):
                continue  # the project had this block unsorted: not apply's to sort
            edits += diagnostic["fix"]["edits"]
        results.append(_apply_edits(new, edits))
    return results


def _import_diagnostics(texts: list[str], arguments: list[str], root: Path) -> list[list[dict]]:
    """Ruff's I001 findings of each text, in one run over a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="seamfix-format-") as scratch:
        paths = []
        for index, text in enumerate(texts):
            paths.append(os.path.join(scratch, f"{index}.py"))
            with open(paths[-1], "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        command = [ruff_executable(), "check", "--select", "I001", "--output-format", "json", "--no-cache",
                   "--exit-zero", *arguments, "--", *paths]  # fmt: skip
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, cwd=root, timeout=300, env=ruff_environment()
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SeamfixError(f"cannot run ruff to sort imports: {exc}") from None
        if proc.returncode != 0:
            raise SeamfixError(f"ruff failed sorting imports: {proc.stderr.strip().splitlines()[-1:]}")
        found: dict[str, list[dict]] = {}
        for diagnostic in json.loads(proc.stdout or "[]"):
            found.setdefault(os.path.realpath(diagnostic["filename"]), []).append(diagnostic)
        return [found.get(os.path.realpath(path), []) for path in paths]


def _line_map(old: str, new: str) -> dict[int, int]:
    """New line -> old line, for the lines apply left as they were."""
    mapping = {}
    for tag, old_start, _, new_start, new_end in line_opcodes(old.splitlines(), new.splitlines()):
        if tag == "equal":
            mapping.update((new_start + k + 1, old_start + k + 1) for k in range(new_end - new_start))
    return mapping


def _apply_edits(text: str, edits: list[dict]) -> str:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(location: dict) -> int:
        row = location["row"] - 1
        return starts[min(row, len(lines))] + location["column"] - 1

    for edit in sorted(edits, key=lambda e: (e["location"]["row"], e["location"]["column"]), reverse=True):
        text = text[: offset(edit["location"])] + edit["content"] + text[offset(edit["end_location"]) :]
    return text


@dataclass
class _Unit:
    """Lines ``first``..``last`` of a file: one statement, or a compound statement's header."""

    first: int
    last: int
    indent: str
    lead: list[str]  # lines that make the unit valid alone (before an `elif`: `if 1:` / `pass`)
    body: bool  # a header: followed by `pass` to format


def _format_touched_units(files: list[tuple[Path, str, str]], style: Style) -> list[str]:
    units_by_file = []
    source = []
    for _, old, new in files:
        units = _units(new, touched_lines(old, new))
        lines = new.splitlines()
        for number, unit in enumerate(units, start=sum(map(len, units_by_file))):
            source += [f"{_UNIT_MARKER}{number}", *_unit_source(unit, lines)]
        units_by_file.append(units)
    if not source:
        return [new for _, _, new in files]
    formatted = _format_units("\n".join(source) + "\n", files[0][0], style)
    results = []
    number = 0
    for (_, _, new), units in zip(files, units_by_file, strict=True):
        lines = new.splitlines(keepends=True)
        newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
        for unit in reversed(units):  # from the bottom, so that line numbers above stay right
            chunk = formatted.get(number + units.index(unit))
            replacement = None if chunk is None else _unwrap(chunk, unit)
            if replacement is not None:
                lines[unit.first - 1 : unit.last] = [line + newline if line else newline for line in replacement]
        number += len(units)
        results.append("".join(lines))
    return results


def _unit_source(unit: _Unit, lines: list[str]) -> list[str]:
    depth = len(unit.indent) // len(_INDENT)
    wrapper = [_INDENT * level + "if 1:" for level in range(depth)]
    own = [line[len(unit.indent) :].rstrip() if line.strip() else "" for line in lines[unit.first - 1 : unit.last]]
    body = [_INDENT * depth + line if line else "" for line in own]
    return wrapper + [_INDENT * depth + line for line in unit.lead] + body + (
        [_INDENT * (depth + 1) + "pass"] if unit.body else []
    )  # fmt: skip


def _format_units(source: str, path: Path, style: Style) -> dict[int, list[str]]:
    """Unit number -> its formatted lines; units ruff cannot format alone are left out."""
    output = _ruff(["format"], source, path, style, check=False)
    chunks = _split_units(output) if output is not None else None
    if chunks is None:  # one unit does not parse alone: format them one by one
        chunks = {}
        for part in re.split(rf"(?m)^(?={re.escape(_UNIT_MARKER)})", source):
            formatted = _ruff(["format"], part, path, style, check=False) if part else None
            chunks.update(_split_units(formatted) or {} if formatted else {})
    return chunks


def _split_units(output: str) -> dict[int, list[str]] | None:
    chunks: dict[int, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(_UNIT_MARKER) and line[len(_UNIT_MARKER) :].isdigit():
            current = chunks.setdefault(int(line[len(_UNIT_MARKER) :]), [])
        elif current is not None:
            current.append(line)
    return chunks


def _unwrap(chunk: list[str], unit: _Unit) -> list[str] | None:
    depth = len(unit.indent) // len(_INDENT)
    while chunk and not chunk[0].strip():
        chunk = chunk[1:]
    while chunk and not chunk[-1].strip():
        chunk = chunk[:-1]
    expected = [_INDENT * level + "if 1:" for level in range(depth)] + [_INDENT * depth + line for line in unit.lead]
    if chunk[: len(expected)] != expected:
        return None
    chunk = chunk[len(expected) :]
    if unit.body:
        if not chunk or chunk[-1] != _INDENT * (depth + 1) + "pass":
            return None
        chunk = chunk[:-1]
    prefix = _INDENT * depth
    if not chunk or any(line and not line.startswith(prefix) for line in chunk):
        return None
    return [unit.indent + line[len(prefix) :] if line else "" for line in chunk]


def _units(text: str, touched: set[int]) -> list[_Unit]:
    """The statements and headers of ``text`` holding a touched line that can be formatted alone."""
    if not touched:
        return []
    try:
        tree = ast.parse(text)
        colons = _header_colons(text)
    except (SyntaxError, ValueError, RecursionError, tokenize.TokenError):
        return []
    lines = text.splitlines()
    units: list[_Unit] = []

    def visit(statements: Iterable[ast.stmt]) -> None:
        for statement in statements:
            if statement.end_lineno < min(touched) or statement.lineno > max(touched):
                continue
            if isinstance(statement, _HEADERS):
                visit_header(statement)
            elif hasattr(statement, "body"):
                pass  # a def, class, try or match header: not apply's to touch
            else:
                add(statement, statement.lineno, statement.end_lineno, [], False)
            for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(statement, field_name, [])
                visit(child for child in children if isinstance(child, ast.stmt))
                for child in children:
                    if not isinstance(child, ast.stmt):
                        visit(child.body)

    def visit_header(statement: ast.stmt) -> None:
        last_part = {
            ast.If: lambda s: s.test, ast.While: lambda s: s.test, ast.For: lambda s: s.iter,
            ast.AsyncFor: lambda s: s.iter, ast.With: lambda s: s.items[-1].optional_vars or s.items[-1].context_expr,
            ast.AsyncWith: lambda s: s.items[-1].optional_vars or s.items[-1].context_expr,
        }[type(statement)](statement)  # fmt: skip
        end = next((line for line in colons if line >= last_part.end_lineno), None)
        if end is None or end >= statement.body[0].lineno:
            return  # the body starts on the header's line
        lead = ["if 1:", _INDENT + "pass"] if lines[statement.lineno - 1].lstrip().startswith("elif") else []
        add(statement, statement.lineno, end, lead, True)

    def add(statement: ast.stmt, first: int, last: int, lead: list[str], body: bool) -> None:
        if not touched.intersection(range(first, last + 1)):
            return
        indent = lines[first - 1][: statement.col_offset]
        if indent.strip(" ") or len(indent) % len(_INDENT):
            return  # tabs, or an indentation black would change
        if any(line.strip() and not line.startswith(indent) for line in lines[first - 1 : last]):
            return
        if not body and lines[last - 1][statement.end_col_offset :].strip()[:1] not in ("", "#"):
            return  # `a = 1; b = 2`: shares its line
        span = [node for node in ast.walk(statement) if hasattr(node, "lineno") and first <= node.lineno <= last]
        if any(_multiline_string(node) for node in span):
            return  # indenting it again would change the string
        units.append(_Unit(first, last, indent, lead, body))

    visit(tree.body)
    return units


def _multiline_string(node: ast.AST) -> bool:
    strings = isinstance(node, ast.JoinedStr) or isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    return strings and node.end_lineno != node.lineno


def _header_colons(text: str) -> list[int]:
    """Lines holding a ``:`` outside brackets (a compound statement's header ends there)."""
    depth, lines = 0, []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.OP:
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth -= 1
            elif token.string == ":" and depth == 0:
                lines.append(token.start[0])
    return lines


def _same_tree(before: str, after: str, *, imports_may_move: bool = False) -> bool:
    """Whether ``after`` is ``before`` in another layout (and, with ``imports_may_move``, import blocks sorted:
    the same imports, in another order or merged)."""
    try:
        return call_with_room(_trees_equal, before, after, imports_may_move)
    except (SyntaxError, ValueError, RecursionError):
        return False


def _trees_equal(before: str, after: str, imports_may_move: bool) -> bool:
    old, new = ast.parse(before), ast.parse(after)
    if ast.dump(old) == ast.dump(new):
        return True
    if not imports_may_move:
        return False
    old, new = _imports_as_sets(old), _imports_as_sets(new)
    return old is not None and new is not None and ast.dump(old) == ast.dump(new)


def _imports_as_sets(tree: ast.Module) -> ast.Module | None:
    """``tree`` with each run of module-level imports replaced by one sorted list of what it binds; None when a
    run binds a name twice to what may be different objects (sorting it could change which binding wins).
    ``import torch`` and ``import torch.distributed`` both bind ``torch`` to the package ``torch``: no conflict."""
    body: list[ast.stmt] = []
    run: list[tuple[str, ...]] = []

    def flush() -> bool:
        bindings = {entry[-2:] for entry in run}  # (name, the object it is bound to)
        if len({name for name, _ in bindings}) != len(bindings):
            return False
        body.extend(ast.Expr(ast.Constant(repr(entry))) for entry in sorted(run))
        run.clear()
        return True

    for statement in tree.body:
        if isinstance(statement, ast.Import):  # `import a.b` binds `a` to package `a`; `import a.b as c`, module a.b
            run += [
                ("import", alias.name, alias.asname or alias.name.split(".")[0], alias.name if alias.asname else
                 alias.name.split(".")[0])
                for alias in statement.names
            ]  # fmt: skip
        elif isinstance(statement, ast.ImportFrom) and statement.module != "__future__":
            module = "." * statement.level + (statement.module or "")
            run += [("from", module, alias.name, alias.asname or alias.name, f"{module}:{alias.name}")
                    for alias in statement.names]  # fmt: skip
        else:
            if not flush():
                return None
            body.append(statement)
    if not flush():
        return None
    return ast.Module(body=body, type_ignores=[])


def ruff_executable() -> str:
    try:
        from ruff.__main__ import find_ruff_bin

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        return str(Path(sys.executable).with_name("ruff"))


def ruff_environment() -> dict[str, str]:
    """Ruff works on threads: give them room for expressions Python itself handles (a 3,000-term ``+``)."""
    return {**os.environ, "RUST_MIN_STACK": str(RUFF_THREAD_STACK_BYTES)}
