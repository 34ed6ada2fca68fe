"""Import megatron-core, or say precisely why it cannot be used: not installed, older than the release table,
or installed but missing a module it imports without declaring it (0.19+ imports ``triton`` unconditionally)."""

from __future__ import annotations

import importlib
import traceback
from types import ModuleType

NOT_INSTALLED = ("megatron", "megatron.core", "torch")
"""Modules whose absence means seamfix's ``[megatron]`` extra is not installed."""

MOST_OF_MEGATRON_CORE = "megatron.core.models.gpt.gpt_layer_specs"
"""Imports MLA, the transformer layer and the spec builders: what the seam needs, and what fails when megatron-core
lacks one of its undeclared dependencies."""


def import_megatron_core() -> None:
    """Import megatron-core's MLA surface; raise an ``ImportError`` whose message names what is really wrong."""
    _import("megatron.core")
    from .releases import check_supported

    check_supported()
    _import(MOST_OF_MEGATRON_CORE)


def shipped_module(module: str) -> ModuleType | None:
    """``module`` where the installed release ships it; None where the release has no such module (nor a package
    above it). One that is there but cannot be imported (a module it imports missing, an error as it runs) is an
    ``ImportError`` saying so, as ``import_megatron_core``'s: a class it holds must not go unchecked unsaid."""
    try:
        return _import(module)
    except ImportError as error:
        absent = error.__cause__
        if isinstance(absent, ModuleNotFoundError) and absent.name and f"{module}.".startswith(f"{absent.name}."):
            return None
        raise


def _import(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _explained(error) from error
    except Exception as error:  # noqa: BLE001 - megatron-core, or a module it imports, fails as it is imported
        detail = error.msg if isinstance(error, SyntaxError) else str(error)
        raise ImportError(
            f"megatron-core is installed but importing it failed: {type(error).__name__}: {detail} ({_where(error)})"
        ) from error


def _where(error: Exception) -> str:
    """The file and line that raised: the innermost frame, or where the syntax error is."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}"
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{frame.filename}:{frame.lineno}"


def _explained(error: ImportError) -> ImportError:
    if isinstance(error, ModuleNotFoundError) and error.name in NOT_INSTALLED:  # not a name torch lacks
        install = "pip install 'seamfix[megatron]'"
        return ImportError(f"seamfix.runtime.megatron needs megatron-core and torch: {install} ({error})")
    missing_module = isinstance(error, ModuleNotFoundError) and error.name and not error.name.startswith("megatron")
    hint = f"; install {error.name.split('.')[0]}" if missing_module else ""  # not for a name a module lacks
    return ImportError(f"megatron-core is installed but importing it failed: {error}{hint}")
