"""``[tool.seamfix]``: discovery of the nearest pyproject.toml, validation, and merging with flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from keyword import iskeyword
from pathlib import Path, PurePosixPath
from typing import Any

from seamfix.errors import SeamfixError
from seamfix.globs import GlobSet
from seamfix.lint_rules import ALWAYS_ON, RULES
from seamfix.vocabulary import CATEGORIES, Vocabulary, default_vocabulary

DEFAULT_INCLUDE = ("*.py",)
DEFAULT_EXCLUDE = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".mypy_cache", ".nox", ".pants.d",
    ".pytype", ".pytest_cache", ".ruff_cache", ".seamfix_cache", ".svn", ".tox", ".venv", "__pycache__",
    "__pypackages__", "_build", "buck-out", "build", "dist", "node_modules", "site-packages", "venv",
)  # fmt: skip
DEFAULT_CACHE_DIR = ".seamfix_cache"

_STRING = "a string"
_STRINGS = "a list of strings"
KEYS: dict[str, str] = {
    "adapter": _STRING,
    "allow": _STRINGS,
    "include": _STRINGS,
    "exclude": _STRINGS,
    "extend-exclude": _STRINGS,
    "select": _STRINGS,
    "extend-select": _STRINGS,
    "ignore": _STRINGS,
    "extend-vocabulary": "a table of string lists (or a list of names)",
    "baseline": _STRING,
    "cache-dir": _STRING,
}


@dataclass(frozen=True)
class Settings:
    """Everything a seamfix command needs to know, resolved against the project root."""

    root: Path
    config_file: Path | None = None
    adapter: str | None = None
    allow: GlobSet = field(default_factory=lambda: GlobSet(()))
    include: GlobSet = field(default_factory=lambda: GlobSet(DEFAULT_INCLUDE))
    exclude: GlobSet = field(default_factory=lambda: GlobSet(DEFAULT_EXCLUDE))
    codes: frozenset[str] = frozenset(code for code, rule in RULES.items() if rule.default_enabled)
    vocabulary: Vocabulary = field(default_factory=default_vocabulary)
    baseline: Path | None = None
    cache_dir: Path | None = None

    def is_seam(self, relpath: str) -> bool:
        """Is this project-relative file the adapter module or an ``allow``-ed MLA file?"""
        return relpath == self.adapter or self.allow.matches(relpath)

    @property
    def adapter_module_parts(self) -> tuple[str, ...]:
        if self.adapter is None:
            return ()
        parts = PurePosixPath(self.adapter).with_suffix("").parts
        return parts[:-1] if parts[-1] == "__init__" else parts


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that has a ``[tool.seamfix]`` table."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and "seamfix" in _read_toml(candidate).get("tool", {}):
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SeamfixError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SeamfixError(f"{path}: invalid TOML: {exc}") from None


def read_table(path: Path) -> dict[str, Any]:
    """``[tool.seamfix]`` of a pyproject.toml, or the whole file for any other TOML file (seamfix.toml)."""
    data = _read_toml(path)
    if path.name != "pyproject.toml":
        return data
    table = data.get("tool", {}).get("seamfix")
    if table is None:
        raise SeamfixError(f"{path}: no [tool.seamfix] table")
    return table


def load_settings(cwd: Path, config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config`` (or the nearest pyproject.toml), then command-line ``overrides``.

    Overrides: ``select`` replaces; ``extend_select`` and ``ignore`` add; ``adapter``, ``baseline`` and
    ``cache_dir`` replace; ``extend_exclude`` adds.
    """
    config_file = config.resolve() if config is not None else find_config(cwd.resolve())
    if config is not None and not config_file.is_file():
        raise SeamfixError(f"{config}: config file not found")
    table = read_table(config_file) if config_file else {}
    where = f"{config_file}: [tool.seamfix]" if config_file else "command line"
    _validate(table, where)
    root = config_file.parent if config_file else cwd.resolve()

    def pick(key: str, default: Any = None) -> Any:
        value = overrides.get(key.replace("-", "_"))
        return value if value is not None else table.get(key, default)

    adapter = pick("adapter")
    select = overrides.get("select") or table.get("select")
    codes = _resolve_codes(
        select,
        [*table.get("extend-select", ()), *(overrides.get("extend_select") or ())],
        [*table.get("ignore", ()), *(overrides.get("ignore") or ())],
        where,
    )
    vocabulary = default_vocabulary().extended(_vocabulary_table(table.get("extend-vocabulary", {})))
    baseline = pick("baseline")
    cache_dir = pick("cache-dir", DEFAULT_CACHE_DIR)
    return Settings(
        root=root,
        config_file=config_file,
        adapter=_adapter_path(root, adapter, where) if adapter is not None else None,
        allow=GlobSet(table.get("allow", ())),
        include=GlobSet(table.get("include", DEFAULT_INCLUDE)),
        exclude=GlobSet(
            [
                *table.get("exclude", DEFAULT_EXCLUDE),
                *table.get("extend-exclude", ()),
                *(overrides.get("extend_exclude") or ()),
            ]
        ),
        codes=codes,
        vocabulary=vocabulary,
        baseline=_resolve(root, baseline) if baseline else None,
        cache_dir=_resolve(root, cache_dir),
    )


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


def _resolve_codes(select: list[str] | None, extend: list[str], ignore: list[str], where: str) -> frozenset[str]:
    def expand(selectors: list[str], key: str) -> set[str]:
        chosen: set[str] = set()
        for selector in selectors:
            wanted = selector.strip().upper()
            matched = set(RULES) if wanted == "ALL" else {code for code in RULES if code.startswith(wanted)}
            if not matched or not wanted:
                raise SeamfixError(f"{where}: `{key}` has unknown rule selector `{selector}`")
            chosen |= matched
        return chosen

    base = expand(select, "select") if select else {c for c, rule in RULES.items() if rule.default_enabled}
    return frozenset((base | expand(extend, "extend-select")) - expand(ignore, "ignore") | ALWAYS_ON)


def _resolve(root: Path, value: str) -> Path:
    return Path(os.path.normpath(root / value))


def _adapter_path(root: Path, value: str, where: str) -> str:
    """The adapter's project path, once it is known to name an importable module file inside the project
    (through symlinks too: apply writes it, so it must not lead out)."""
    bad = f"{where}: `adapter` = {value!r}"
    try:
        relpath = PurePosixPath(_resolve(root, value).relative_to(root).as_posix())
    except ValueError:
        raise SeamfixError(f"{bad} is outside the project ({root})") from None
    if relpath.suffix != ".py" or os.path.isdir(root / relpath):
        raise SeamfixError(f'{bad} must name a .py file (a module such as "pkg/mla_seam.py"), not a folder')
    invalid = next((part for part in relpath.with_suffix("").parts if not part.isidentifier() or iskeyword(part)), None)
    if invalid is not None:
        raise SeamfixError(f"{bad}: `{invalid}` is not a valid Python module name, so builders could not import it")
    real, real_root = os.path.realpath(root / relpath), os.path.realpath(root)
    if os.path.commonpath([real, real_root]) != real_root:
        raise SeamfixError(f"{bad} leads outside the project through a symlink (to {real})")
    return relpath.as_posix()
