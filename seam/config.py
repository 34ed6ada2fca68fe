"""The configuration: discovery as ruff's (``.seamfix.toml`` > ``seamfix.toml`` > ``pyproject.toml``'s
``[tool.seamfix]``, nearest to the checked paths), validation, and merging with command-line flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from keyword import iskeyword
from pathlib import Path, PurePosixPath
from typing import Any

from seamfix.errors import SeamfixError
from seamfix.globs import GlobError, GlobSet, NamePatterns
from seamfix.lint_rules import ALWAYS_ON, RULES
from seamfix.vocabulary import CATEGORIES, Vocabulary, default_vocabulary

DEFAULT_INCLUDE = ("*.py",)
DEFAULT_EXCLUDE = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints", ".mypy_cache", ".nox",
    ".pants.d", ".pyenv", ".pytype", ".pytest_cache", ".ruff_cache", ".seamfix_cache", ".svn", ".tox", ".venv",
    ".vscode", "__pycache__", "__pypackages__", "_build", "buck-out", "build", "dist", "node_modules",
    "site-packages", "venv",
)  # ruff's, and `build` (a fork's `setup.py build` copies its sources there)  # fmt: skip
DEFAULT_CACHE_DIR = ".seamfix_cache"
# In one folder, as ruff's `.ruff.toml` > `ruff.toml` > `pyproject.toml`; a pyproject.toml counts only with a table.
CONFIG_NAMES = (".seamfix.toml", "seamfix.toml", "pyproject.toml")
# Tests of a fork exercise MLA on purpose (parametrized over MLA configs, asserting on MLA outputs): those are
# not builder decisions, so the MLA rules are off there. The seam gate and syntax errors still apply.
TEST_FILES = ("**/tests/**", "test_*.py", "*_test.py", "conftest.py")
DEFAULT_PER_FILE_IGNORES: dict[str, list[str]] = {pattern: ["SEAM001", "SEAM002", "SEAM003"] for pattern in TEST_FILES}
COMMAND_LINE = "command line"

_STRING = "a string"
_STRINGS = "a list of strings"
_BOOLEAN = "a boolean"
_CODES_BY_GLOB = "a table of glob = list of rule codes"
KEYS: dict[str, str] = {
    "extend": _STRING,
    "adapter": _STRING,
    "allow": _STRINGS,
    "include": _STRINGS,
    "exclude": _STRINGS,
    "extend-exclude": _STRINGS,
    "extend-include": _STRINGS,
    "select": _STRINGS,
    "extend-select": _STRINGS,
    "ignore": _STRINGS,
    "extend-vocabulary": "a table of string lists (or a list of names)",
    "baseline": _STRING,
    "cache-dir": _STRING,
    "per-file-ignores": _CODES_BY_GLOB,
    "extend-per-file-ignores": _CODES_BY_GLOB,
    "respect-gitignore": _BOOLEAN,
    "force-exclude": _BOOLEAN,
    "src": _STRINGS,
}


@dataclass(frozen=True)
class Settings:
    """Everything a seamfix command needs to know, resolved against the project root."""

    root: Path
    config_file: Path | None = None
    adapter: str | None = None
    allow: GlobSet = field(default_factory=lambda: GlobSet(()))
    include: GlobSet = field(default_factory=lambda: GlobSet(DEFAULT_INCLUDE, names="never"))
    exclude: GlobSet = field(default_factory=lambda: GlobSet(DEFAULT_EXCLUDE))
    codes: frozenset[str] = frozenset(code for code, rule in RULES.items() if rule.default_enabled)
    vocabulary: Vocabulary = field(default_factory=default_vocabulary)
    baseline: Path | None = None
    cache_dir: Path | None = None
    # (globs, negated, codes): a negated entry (`"!src/**"`) applies to the files its globs do not match.
    per_file_ignores: tuple[tuple[GlobSet, bool, frozenset[str]], ...] = ()
    respect_gitignore: bool = True
    force_exclude: bool = False

    def ignored_codes(self, relpath: str) -> frozenset[str]:
        """Codes that ``per-file-ignores`` turn off for this project-relative file (as ruff's, a glob is matched
        against the file only: a folder's name or path does not cover its files, ``folder/**`` does)."""
        codes: frozenset[str] = frozenset()
        for globs, negated, ignored in self.per_file_ignores:
            if globs.matches(relpath) != negated:
                codes |= ignored
        return codes

    # Source roots, project-relative ("" is the root), as ruff's `src`: where import names start.
    src: tuple[str, ...] = ("",)

    def is_seam(self, relpath: str) -> bool:
        """Is this project-relative file the adapter module or an ``allow``-ed MLA file?"""
        return relpath == self.adapter or self.allow.matches(relpath)

    @property
    def adapter_module_parts(self) -> tuple[str, ...]:
        if self.adapter is None:
            return ()
        return self.module_parts(self.adapter)

    def module_parts(self, relpath: str) -> tuple[str, ...]:
        return module_parts(relpath, self.src)


def module_parts(relpath: str, src: tuple[str, ...]) -> tuple[str, ...]:
    """The import name of a project file, counted from the deepest source root (``src``) that holds it."""
    parts = PurePosixPath(relpath).with_suffix("").parts
    roots = [PurePosixPath(root).parts for root in src]
    depth = max((len(root) for root in roots if parts[: len(root)] == root and len(root) < len(parts)), default=0)
    parts = parts[depth:]
    return parts[:-1] if parts[-1] == "__init__" else parts


def package_parts(relpath: str, src: tuple[str, ...]) -> tuple[str, ...]:
    """The package a project file's relative imports start from: its own for ``__init__.py``, else its parent's."""
    parts = module_parts(relpath, src)
    return parts if PurePosixPath(relpath).stem == "__init__" else parts[:-1]


def find_config(start: Path) -> Path | None:
    """The nearest configuration file at or above ``start``: in one folder ``.seamfix.toml``, then
    ``seamfix.toml``, then a ``pyproject.toml`` with a ``[tool.seamfix]`` table."""
    return next(filter(None, map(config_in, (start, *start.parents))), None)


def config_in(directory: Path) -> Path | None:
    """The configuration file of ``directory`` itself, by the precedence of :func:`find_config`."""
    for name in CONFIG_NAMES:
        candidate = directory / name
        if candidate.is_file() and (name != "pyproject.toml" or _seamfix_table(candidate) is not None):
            return candidate
    return None


def config_start(paths: list[Path], cwd: Path) -> Path:
    """Where configuration discovery starts for a run on ``paths``: the folder of the first one (a file's
    parent), so that ``cd /tmp && seamfix lint /path/to/project`` uses the project's settings; the current
    directory when no path is given. Lexical, as ruff's: a folder linked in from outside is governed by the
    project it is linked into (which then refuses to write through the link)."""
    if not paths:
        return cwd.resolve()
    first = Path(os.path.abspath(cwd / paths[0]))
    return first if first.is_dir() else first.parent


def settings_by_project(
    cwd: Path, config: Path | None, paths: list[Path], **overrides: Any
) -> list[tuple[Settings, list[Path]]]:
    """The given paths grouped by the configuration that governs them, with its settings: the nearest
    configuration file above each path (as ruff resolves each file's own), or the current directory's for
    a path under none. With ``config`` (or fewer than two paths) a single group."""
    if config is not None or len(paths) < 2:
        return [(load_settings(cwd, config, config_start(paths, cwd), **overrides), paths or [cwd])]
    fallback = find_config(cwd.resolve())
    groups: dict[Path | None, list[Path]] = {}
    for path in paths:
        groups.setdefault(find_config(config_start([path], cwd)) or fallback, []).append(path)
    return [(load_settings(cwd, file, cwd, **overrides), group) for file, group in groups.items()]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SeamfixError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SeamfixError(f"{path}: invalid TOML: {exc}") from None


def _seamfix_table(path: Path) -> dict[str, Any] | None:
    """``[tool.seamfix]`` of a pyproject.toml (None when absent); ``tool`` or ``tool.seamfix`` of another
    shape is an error naming the key."""
    tool = _read_toml(path).get("tool")
    if tool is None:
        return None
    if not isinstance(tool, dict):
        raise SeamfixError(f"{path}: `tool` must be a table, not {type(tool).__name__}")
    table = tool.get("seamfix")
    if table is not None and not isinstance(table, dict):
        raise SeamfixError(f"{path}: `tool.seamfix` must be a table, not {type(table).__name__}")
    return table


def read_table(path: Path) -> dict[str, Any]:
    """``[tool.seamfix]`` of a pyproject.toml, or the whole file for any other TOML file (seamfix.toml)."""
    if path.name != "pyproject.toml":
        return _read_toml(path)
    table = _seamfix_table(path)
    if table is None:
        raise SeamfixError(f"{path}: no [tool.seamfix] table")
    return table


def load_settings(cwd: Path, config: Path | None = None, start: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config`` (or the nearest configuration file at or above ``start``, by default the
    current directory), then command-line ``overrides``.

    Overrides: ``select`` replaces the file's ``select``, ``extend-select`` and ``ignore`` (as ruff's
    ``--select``); ``extend_select`` and ``ignore`` add; ``adapter``, ``baseline`` and ``cache_dir``
    replace; ``extend_exclude`` adds; ``per_file_ignores`` (``GLOB:CODE,...`` strings) add.
    """
    found = find_config(start or cwd.resolve())  # lexically upwards, as ruff; the project root is then real
    config_file = config.resolve() if config is not None else found.resolve() if found else None
    if config is not None and not config_file.is_file():
        raise SeamfixError(f"{config}: config file not found")
    layers = _extended_layers(config_file) if config_file else []
    table = _merged(layers)
    where = _where(config_file)
    root = config_file.parent if config_file else cwd.resolve()

    def pick(key: str, default: Any = None) -> Any:
        value = overrides.get(key.replace("-", "_"))
        return value if value is not None else table.get(key, default)

    adapter, baseline, cache_dir = pick("adapter"), pick("baseline"), pick("cache-dir", DEFAULT_CACHE_DIR)
    _check_globs(overrides.get("extend_exclude") or (), "--extend-exclude", COMMAND_LINE)
    adapter_key = ("--adapter", COMMAND_LINE) if overrides.get("adapter") else ("adapter", where)
    per_file = {**table.get("per-file-ignores", DEFAULT_PER_FILE_IGNORES), **table.get("extend-per-file-ignores", {})}
    src = table.get("src", [".", "src"] if (root / "src").is_dir() else ["."])
    return Settings(
        root=root,
        config_file=config_file,
        adapter=_adapter_path(root, adapter, *adapter_key) if adapter is not None else None,
        allow=_globs(root, table.get("allow", ())),
        include=_globs(root, [*table.get("include", DEFAULT_INCLUDE), *table.get("extend-include", ())], names="never"),
        exclude=_globs(
            root,
            [
                *table.get("exclude", DEFAULT_EXCLUDE),
                *table.get("extend-exclude", ()),
                *(overrides.get("extend_exclude") or ()),
            ],
        ),
        codes=_rule_codes(layers, overrides),
        vocabulary=default_vocabulary().extended(_vocabulary_table(table.get("extend-vocabulary", {}))),
        baseline=_resolve(root, baseline) if baseline else None,
        cache_dir=_resolve(root, cache_dir),
        per_file_ignores=(
            *_per_file_ignores(root, per_file, where),
            *_per_file_ignores(
                root, _command_line_per_file_ignores(overrides.get("per_file_ignores") or ()), COMMAND_LINE
            ),
        ),
        respect_gitignore=table.get("respect-gitignore", True),
        force_exclude=table.get("force-exclude", False),
        src=tuple(_source_root(root, value) for value in src),
    )


def _where(config_file: Path | None) -> str:
    """How errors name the source of a bad value."""
    if config_file is None:
        return COMMAND_LINE
    return f"{config_file}: [tool.seamfix]" if config_file.name == "pyproject.toml" else str(config_file)


def _rule_codes(layers: list[tuple[dict[str, Any], str]], overrides: dict[str, Any]) -> frozenset[str]:
    """As ruff's layers: the defaults, then each file's selection (an extended base first), then the command
    line's; a layer with a ``select`` starts afresh (so ``--select`` drops the file's ``select``,
    ``extend-select`` and ``ignore``)."""
    codes = {code for code, rule in RULES.items() if rule.default_enabled}
    selections = [
        *((where, table.get("select"), table.get("extend-select"), table.get("ignore"), "") for table, where in layers),
        (COMMAND_LINE, overrides.get("select"), overrides.get("extend_select"), overrides.get("ignore"), "--"),
    ]
    for layer_where, select, extend, ignore, prefix in selections:
        if select is not None:  # `select = []` selects nothing, as ruff's
            codes = _expand(select, f"{prefix}select", layer_where)
        codes |= _expand(extend or (), f"{prefix}extend-select", layer_where)
        codes -= _expand(ignore or (), f"{prefix}ignore", layer_where)
    return frozenset(codes | ALWAYS_ON)


# Keys whose values add up along an `extend` chain (as ruff's `extend-*`); the others are replaced.
_ADDING_KEYS = ("extend-exclude", "extend-include", "extend-per-file-ignores", "extend-vocabulary")
# Keys naming paths or path globs, relative to the folder of the file that sets them.
_PATH_KEYS = (
    "adapter", "baseline", "cache-dir", "src", "include", "extend-include", "exclude", "extend-exclude", "allow"
)  # fmt: skip
_PATH_TABLE_KEYS = ("per-file-ignores", "extend-per-file-ignores")


def _extended_layers(config_file: Path) -> list[tuple[dict[str, Any], str]]:
    """The tables of ``config_file`` and of the files it ``extend``s, the furthest base first, each with how
    errors name it. As ruff's, a base's relative paths and path globs count from its own folder: they are made
    absolute here (a plain name such as ``build`` still matches anywhere)."""
    chain: list[tuple[dict[str, Any], str]] = []
    path, seen = config_file, set()
    while True:
        if path in seen:
            raise SeamfixError(f"{config_file}: `extend` chain returns to {path}")
        seen.add(path)
        table, where = read_table(path), _where(path)
        _validate(table, where)
        chain.append((table if path == config_file else _absolute_paths(table, path.parent), where))
        if "extend" not in table:
            return chain[::-1]
        base = (path.parent / os.path.expandvars(os.path.expanduser(table["extend"]))).resolve()
        if not base.is_file():
            raise SeamfixError(f"{where}: `extend` = {table['extend']!r}: no such file")
        path = base


def _absolute_paths(table: dict[str, Any], folder: Path) -> dict[str, Any]:
    def absolute(value: str) -> str:
        return os.path.normpath(folder / value.strip()) if "/" in value or value.strip() in (".", "..") else value

    converted = dict(table)
    for key in _PATH_KEYS:
        if isinstance(table.get(key), str):
            converted[key] = os.path.normpath(folder / table[key])
        elif key in table:
            converted[key] = [
                os.path.normpath(folder / item) if key == "src" else absolute(item) for item in table[key]
            ]
    for key in _PATH_TABLE_KEYS:  # `!glob` negates: the `!` stays in front
        if key in table:
            converted[key] = {
                "!" * pattern.startswith("!") + absolute(pattern.removeprefix("!")): codes
                for pattern, codes in table[key].items()
            }
    return converted


def _merged(layers: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """One table of an ``extend`` chain: a later file replaces a key, or adds to an ``extend-*`` key."""
    merged: dict[str, Any] = {}
    for table, _ in layers:
        for key, value in table.items():
            if key not in _ADDING_KEYS or key not in merged:
                merged[key] = value
            elif key in ("extend-exclude", "extend-include"):
                merged[key] = [*merged[key], *value]
            elif key == "extend-per-file-ignores":
                merged[key] = {**merged[key], **value}
            else:
                old, new = _vocabulary_table(merged[key]), _vocabulary_table(value)
                merged[key] = {name: [*old.get(name, []), *new.get(name, [])] for name in {**old, **new}}
    return merged


def _expand(selectors: list[str], key: str, where: str) -> set[str]:
    """Rule codes named by codes or prefixes (``SEAM0``, ``ALL``)."""
    chosen: set[str] = set()
    for selector in selectors:
        # Exactly as written, as ruff's: `seam001` or ` SEAM001` is a typo to report, not a code to guess.
        matched = set(RULES) if selector == "ALL" else {code for code in RULES if code.startswith(selector)}
        if not matched or not selector:
            raise SeamfixError(f"{where}: `{key}` has unknown rule selector `{selector}`")
        chosen |= matched
    return chosen


def _globs(root: Path, patterns: list[str] | tuple[str, ...], names: NamePatterns = "without-slash") -> GlobSet:
    """Patterns of a configuration file in ``root``; an absolute one (``/repo/gen``), as ruff's, names that path."""
    return GlobSet(
        ("./" + os.path.relpath(pattern, root).replace(os.sep, "/") if os.path.isabs(pattern) else pattern
         for pattern in patterns),
        names,
    )  # fmt: skip


def _per_file_ignores(
    root: Path, table: dict[str, list[str]], where: str
) -> list[tuple[GlobSet, bool, frozenset[str]]]:
    """Each glob (``!`` negates it, as in ruff) with the codes it turns off; the always-on rules cannot be."""
    return [
        (
            _globs(root, [pattern.removeprefix("!")], names="always"),
            pattern.startswith("!"),
            frozenset(_expand(codes, f"per-file-ignores.{pattern}", where) - ALWAYS_ON),
        )
        for pattern, codes in table.items()
    ]


def _command_line_per_file_ignores(values: tuple[str, ...]) -> dict[str, list[str]]:
    """``--per-file-ignores 'tests/**:SEAM001,SEAM002'`` as a table."""
    table: dict[str, list[str]] = {}
    for value in values:
        pattern, colon, codes = value.rpartition(":")
        if not colon or not pattern or not codes.strip():
            raise SeamfixError(f"{COMMAND_LINE}: `--per-file-ignores` takes GLOB:CODES, not `{value}`")
        table.setdefault(pattern, []).extend(code for code in codes.split(",") if code.strip())
    _check_globs(table, "--per-file-ignores", COMMAND_LINE)
    return table


def _validate(table: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        expected = KEYS.get(key)
        if expected is None:
            import difflib  # only on the error path

            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise SeamfixError(f"{where}: unknown key `{key}`{hint}")
        if key == "extend-vocabulary":
            _vocabulary_table(value, where)
        elif expected == _STRING and not isinstance(value, str):
            raise SeamfixError(f"{where}: `{key}` must be {expected}, not {type(value).__name__}")
        elif expected == _STRINGS and not _is_string_list(value):
            raise SeamfixError(f"{where}: `{key}` must be {expected}")
        elif expected == _BOOLEAN and not isinstance(value, bool):
            raise SeamfixError(f"{where}: `{key}` must be {expected}, not {type(value).__name__}")
        elif expected == _CODES_BY_GLOB and not (
            isinstance(value, dict) and all(_is_string_list(codes) for codes in value.values())
        ):
            raise SeamfixError(f"{where}: `{key}` must be {expected}")
        if key in _GLOB_KEYS or expected == _CODES_BY_GLOB:
            _check_globs(value, key, where)


# Keys holding globs (per-file-ignores' are the keys of their tables).
_GLOB_KEYS = ("allow", "include", "extend-include", "exclude", "extend-exclude")


def _check_globs(patterns: Iterable[str], key: str, where: str) -> None:
    """A pattern ruff's globset refuses (``[ab``, ``{a,b``) is an error naming it, as ruff's, not a pattern that
    silently matches nothing; a ``!`` in front (per-file-ignores' negation) is no part of the glob."""
    for pattern in patterns:
        try:
            GlobSet([pattern.removeprefix("!")])
        except GlobError as exc:
            raise SeamfixError(f"{where}: `{key}` has an invalid glob `{pattern.removeprefix('!')}`: {exc}") from None


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _vocabulary_table(value: Any, where: str = "extend-vocabulary") -> dict[str, list[str]]:
    if _is_string_list(value):
        return {"fields": value}
    if not isinstance(value, dict):
        raise SeamfixError(f"{where}: `extend-vocabulary` must be {KEYS['extend-vocabulary']}")
    for category, names in value.items():
        if category not in CATEGORIES:
            raise SeamfixError(
                f"{where}: unknown key `extend-vocabulary.{category}` (expected one of {', '.join(CATEGORIES)})"
            )
        if not _is_string_list(names):
            raise SeamfixError(f"{where}: `extend-vocabulary.{category}` must be a list of strings")
    return value


def _source_root(root: Path, value: str) -> str:
    """A ``src`` entry, project-relative (``""`` the root). One outside the project is allowed, as ruff's (a
    monorepo's ``../shared``): it counts for files given from there (``../shared/pkg/m.py``)."""
    relative = os.path.relpath(_resolve(root, value), root).replace(os.sep, "/")
    return "" if relative == "." else relative


def _resolve(root: Path, value: str) -> Path:
    return Path(os.path.normpath(root / value))


def _adapter_path(root: Path, value: str, key: str, where: str) -> str:
    """The adapter's project path, once it is known to name an importable module file inside the project
    (through symlinks too: apply writes it, so it must not lead out)."""
    bad = f"{where}: `{key}` = {value!r}"
    try:
        relpath = PurePosixPath(_resolve(root, value).relative_to(root).as_posix())
    except ValueError:
        raise SeamfixError(f"{bad} is outside the project ({root})") from None
    if relpath.suffix != ".py" or os.path.isdir(root / relpath):
        folder = os.path.isdir(root / relpath)
        what = "a folder" if folder else f"a `{relpath.suffix}` file" if relpath.suffix else "a file"
        raise SeamfixError(f'{bad} must name a .py file (a module such as "pkg/mla_seam.py"), not {what}')
    invalid = next((part for part in relpath.with_suffix("").parts if not part.isidentifier() or iskeyword(part)), None)
    if invalid is not None:
        raise SeamfixError(f"{bad}: `{invalid}` is not a valid Python module name, so builders could not import it")
    real, real_root = os.path.realpath(root / relpath), os.path.realpath(root)
    if os.path.commonpath([real, real_root]) != real_root:
        raise SeamfixError(f"{bad} leads outside the project through a symlink (to {real})")
    return relpath.as_posix()
