"""Whether the seam import apply writes (``from pkg import mla_seam``) reaches the adapter file at all.

Python's import system may hand builders something else by that name: a package folder ``pkg/mla_seam/``
(or an extension module ``mla_seam.*.so``) beside ``pkg/mla_seam.py`` wins over it; a module ``pkg.py`` wins
over a folder ``pkg/`` without ``__init__.py`` (and a package folder apply would create, over a module of its
name that other code imports: ``pkg/seam/`` beside ``pkg/seam.py``, and a new adapter over a namespace folder
of its name); a name the package's ``__init__.py``
binds is what ``from pkg import mla_seam`` returns; a new top-level module named like one of the standard
library's hides that one from every script run in the project (or the library's hides it). Each is an error
before anything is written: every builder would call into the wrong module (or other code would).
"""

from __future__ import annotations

import ast
import sys
from importlib.machinery import EXTENSION_SUFFIXES, all_suffixes
from pathlib import Path, PurePosixPath

from seamfix.codemods.context import Seam
from seamfix.codemods.imports import seam_name_rebound


def adapter_unreachable(root: Path, adapter: str, parts: tuple[str, ...]) -> str | None:
    """Why importing ``parts`` would not import the project file ``adapter`` (whose import name it is), or
    None."""
    path = PurePosixPath(adapter)
    is_package = path.stem == "__init__"
    module_path = path.parent if is_package else path.with_suffix("")
    source_root = root.joinpath(*module_path.parts[: len(module_path.parts) - len(parts)])
    top = parts[0]
    if top in sys.stdlib_module_names and not (_module_file(source_root, top) or _is_package(source_root / top)):
        return (f"`{top}` is a module of the standard library: a new top-level `{top}` in the project would hide it "
                f"(or be hidden by it); put the adapter in a package of the project")  # fmt: skip
    folder = source_root
    for depth, name in enumerate(parts):
        if depth == len(parts) - 1 and not is_package:
            winner = _package_init(folder / name) or _extension(folder, name)
            if winner is not None:
                return f"`{_relative(winner, root)}` is what `{'.'.join(parts)}` imports, not `{adapter}`"
            if (folder / name).is_dir() and not (root / adapter).exists():
                return (f"`{_relative(folder / name, root)}/` is a folder without `__init__.py` (a namespace package) "
                        f"that code may import from: the new `{adapter}` would hide it")  # fmt: skip
        elif (winner := _module_file(folder, name)) is not None and _creates_package(folder / name):
            return (f"apply would create the package `{_relative(folder / name, root)}/` beside "
                    f"`{_relative(winner, root)}`, which `{'.'.join(parts[: depth + 1])}` would then no longer import "
                    "(the package wins)")  # fmt: skip
        elif not _is_package(folder / name) and winner is not None:
            return (f"`{_relative(winner, root)}` is what `{'.'.join(parts[: depth + 1])}` imports, not the folder "
                    f"`{_relative(folder / name, root)}`, which has no `__init__.py`")  # fmt: skip
        folder = folder / name
    if len(parts) == 1:
        return None
    return _init_binds_seam_name(source_root.joinpath(*parts[:-1]) / "__init__.py", Seam(parts), root)


def _init_binds_seam_name(init: Path, seam: Seam, root: Path) -> str | None:
    try:
        line = seam_name_rebound(ast.parse(init.read_bytes()), seam, tuple(seam.package.split(".")))
    except (OSError, SyntaxError, ValueError):
        return None  # no such file (a namespace package, or one apply creates empty), or one the lint reports
    if line is None:
        return None
    return (f"`{_relative(init, root)}` binds `{seam.name}` at line {line}: `from {seam.package} import "
            f"{seam.name}` would give that, not the adapter")  # fmt: skip


def _is_package(folder: Path) -> bool:
    """A regular package, or a folder apply will create as one (it adds ``__init__.py`` where the parent has
    one)."""
    if not folder.exists():
        return _package_init(folder.parent) is not None
    return _package_init(folder) is not None


def _creates_package(folder: Path) -> bool:
    """Does apply create ``folder`` as a package (with an ``__init__.py``, its parent being one)?"""
    return not folder.exists() and _is_package(folder)


def _package_init(folder: Path) -> Path | None:
    return next((init for suffix in all_suffixes() if (init := folder / f"__init__{suffix}").is_file()), None)


def _module_file(folder: Path, name: str) -> Path | None:
    return next((file for suffix in all_suffixes() if (file := folder / f"{name}{suffix}").is_file()), None)


def _extension(folder: Path, name: str) -> Path | None:
    return next((file for suffix in EXTENSION_SUFFIXES if (file := folder / f"{name}{suffix}").is_file()), None)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
