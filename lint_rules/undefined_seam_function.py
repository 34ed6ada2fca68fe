"""SEAM902 undefined-seam-function."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from seamfix.analysis.seam_bindings import SeamBindings, dotted_name
from seamfix.analysis.source import Hit
from seamfix.lint_rules.base import EngineRule, Invalid
from seamfix.seam_surface import SeamSurface


class UndefinedSeamFunction(EngineRule):
    """
    ## What it does
    Flags a reference from builder code to a name of the adapter module (the seam) that the adapter does
    not define: `mla_seam.build_3(config)` or `from megatron.core.mla_seam import build_3` after the
    adapter lost `build_3`. When the adapter file does not exist (or cannot be parsed), every call into it
    is flagged. Relative imports of the adapter (`from .. import mla_seam`) are resolved against the
    file's package. An adapter with a module-level `__getattr__` or a star import can define any name,
    so references to it are not judged.

    ## Why is this bad?
    Lint proves MLA code stays behind the seam by accepting calls into the adapter. A half-applied
    `seamfix apply`, a hand-edited adapter or a bad merge leaves builders calling a function that is not
    there: the tree would pass lint and fail at import or call time, on the MLA path only, which is the
    path CI runs least. This finding cannot be suppressed or deselected.

    ## How to fix
    Define the function in the adapter (run `seamfix apply` again, or restore it from version control),
    or change the call to one the adapter defines.

    ## Example
    ```python
    # megatron/core/mla_seam.py defines only `multi_latent_attention`
    from megatron.core import mla_seam

    attention = mla_seam.build_3(config)
    ```
    Use instead:
    ```python
    from megatron.core import mla_seam

    attention = mla_seam.multi_latent_attention(config)
    ```
    """

    code = "SEAM902"
    name = "undefined-seam-function"
    summary = "call into the adapter of a name it does not define"

    # The adapter module (at `megatron/core/mla_seam.py`) that the samples below are checked against.
    SAMPLE_ADAPTER = (
        "from seamfix.runtime.megatron import adapt_mla_spec\n\n"
        "LATENT = 'latent'\n\n\n"
        "def multi_latent_attention(config):\n    return bool(config.multi_latent_attention)\n"
    )
    VALID = (
        "from megatron.core import mla_seam\nif mla_seam.multi_latent_attention(config):\n    pass\n",
        "from megatron.core.mla_seam import multi_latent_attention, adapt_mla_spec\nx = multi_latent_attention(cfg)\n",
        "import megatron.core.mla_seam\ny = megatron.core.mla_seam.LATENT\n",
        "from megatron.core import mla_seam\nname = mla_seam.__name__\nmla_seam.patched = 1\n",
        "from other.pkg import mla_seam\nmla_seam.build_3(config)\n",
    )
    INVALID = (
        Invalid("from megatron.core import mla_seam\nattention = mla_seam.build_3(config)\n", line=2),
        Invalid("from megatron.core.mla_seam import multi_latent_attention, build_3\n", line=1),
        Invalid("import megatron.core.mla_seam as seam\nseam.build_3(c)\nseam.build_4(c)\n", line=2, count=2),
        Invalid("import megatron.core.mla_seam\nmegatron.core.mla_seam.build_3(c)\n", line=2),
        Invalid("from megatron.core import mla_seam\nf = mla_seam.build_3  # seamfix: ignore[SEAM902]\n", line=2),
    )

    @staticmethod
    def references(tree: ast.Module, seam: SeamBindings, surface: SeamSurface) -> Iterator[Hit]:
        """References in ``tree`` to names that ``surface`` does not define."""
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = seam.resolve(node)
                if module and seam.is_adapter_module(module):
                    stem = module.rsplit(".", 1)[-1]
                    for alias in node.names:
                        if alias.name != "*" and not surface.defines(alias.name):
                            yield Hit(alias, surface.why_undefined(f"{stem}.{alias.name}"))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                owner = dotted_name(node.value)
                if owner is None or not (owner in seam.modules or owner in seam.dotted_modules):
                    continue
                if not surface.defines(node.attr):
                    yield Hit(node, surface.why_undefined(f"{owner}.{node.attr}"))
