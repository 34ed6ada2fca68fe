"""SEAM002 mla-import."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from seamfix.analysis.source import Hit, SourceFile
from seamfix.lint_rules.base import AstRule, Invalid


class MLAImport(AstRule):
    """
    ## What it does
    Flags imports of the MLA implementation outside the seam: a module of the vocabulary
    (`megatron.core.transformer.multi_latent_attention`, `flash_mla`, ...) or an MLA class
    (`MLATransformerConfig`, `MLASelfAttention`, ...) imported from anywhere. Imports of the adapter
    module itself are fine. Off by default; enable with `extend-select = ["SEAM002"]`.

    ## Why is this bad?
    An import is the first thing an upstream rename breaks (`MultiLatentAttention` moved, submodule
    dataclasses gained required fields). When only the seam imports MLA, a bump changes one file.

    ## How to fix
    Import the adapter module and let it hold the MLA imports; `seamfix apply` removes imports that the
    rewritten code no longer needs.

    ## Example
    ```python
    from megatron.core.transformer.multi_latent_attention import MLASelfAttention
    ```
    Use instead:
    ```python
    from megatron.core import mla_seam
    ```
    """

    code = "SEAM002"
    name = "mla-import"
    summary = "MLA implementation imported outside the seam"
    default_enabled = False

    VALID = (
        "from megatron.core.transformer.attention import SelfAttention\n",
        "from megatron.core import mla_seam\n",
        "from megatron.core.transformer.transformer_config import TransformerConfig\n",
        "import html\n",
        # Constants (PEP 8's UPPER_CASE) are no classes: a kernel's tile sizes imported from a constants module.
        "from lmdeploy.pytorch.consts import V4_FLASHMLA_D_NOPE, V4_FLASHMLA_NUM_TILES\n",
    )
    INVALID = (
        Invalid("from megatron.core.transformer.multi_latent_attention import (\n    MLASelfAttention,\n)\n", line=1),
        Invalid("import megatron.core.transformer.multi_latent_attention as mla\n", line=1),
        Invalid("from megatron.core.transformer.transformer_config import MLATransformerConfig, TransformerConfig\n"),
        Invalid("def f():\n    from flash_mla import flash_mla_with_kvcache\n", line=2),
        Invalid("from .multi_latent_attention import MLASelfAttention\n", line=1),
    )

    def check(self, source: SourceFile) -> Iterator[Hit]:
        names = source.mla.names
        seam = source.mla.seam
        for node in source.walk_mentions((ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names if names.is_module(a.name) and not seam.is_adapter_module(a.name)]
                if modules:
                    yield Hit(node, f"imports MLA module `{', '.join(modules)}`")
                continue
            module = seam.resolve(node)
            if seam.is_adapter_module(module):
                continue
            if names.is_module(module):
                yield Hit(node, f"imports from MLA module `{module}`")
                continue
            classes = [a.name for a in node.names if names.is_class(a.name)]
            if classes:
                yield Hit(node, f"imports MLA class `{', '.join(classes)}`")
