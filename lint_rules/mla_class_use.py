"""SEAM003 mla-class-use."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from seamfix.analysis.seam_bindings import dotted_name
from seamfix.analysis.source import Hit, SourceFile
from seamfix.lint_rules.base import AstRule, Invalid

_TYPE_TESTS = {"isinstance", "issubclass"}


class MLAClassUse(AstRule):
    """
    ## What it does
    Flags direct constructions of MLA classes (`MLASelfAttention(...)`, `MLASelfAttentionSubmodules(...)`)
    and MLA classes passed around as values (`ModuleSpec(module=MLASelfAttention, ...)`, `attn = MLASelfAttention`)
    outside the seam. Type tests (`isinstance`) are SEAM001's. Off by default; enable with
    `extend-select = ["SEAM003"]`.

    ## Why is this bad?
    Constructor contracts of MLA classes change between Megatron releases (`model_comm_pgs` became
    `pg_collection`, `pp_layer_offset` and `name` arrived, submodule dataclasses gained required fields).
    Built in one adapter, the class's contract is met in one place.

    ## How to fix
    Build MLA modules and specs in the adapter module (`seamfix apply` moves MLA-only arms there), or
    use `seamfix.runtime.megatron`'s adapters.

    ## Example
    ```python
    attention = ModuleSpec(module=MLASelfAttention, submodules=MLASelfAttentionSubmodules(...))
    ```
    Use instead:
    ```python
    attention = mla_seam.mla_attention_spec(config)
    ```
    """

    code = "SEAM003"
    name = "mla-class-use"
    summary = "MLA class constructed or referenced outside the seam"
    default_enabled = False

    VALID = (
        "spec = ModuleSpec(module=SelfAttention, submodules=SelfAttentionSubmodules())\n",
        "ok = isinstance(config, MLATransformerConfig)\n",
        "from megatron.core.transformer.multi_latent_attention import MLASelfAttention\n",
        "def f(config: MLATransformerConfig):\n    return config\n",
        # A module constant (PEP 8's UPPER_CASE) with an MLA word is a value, not a class: a kernel's tile size.
        "launch(D_NOPE=V4_FLASHMLA_D_NOPE, TILE=FLASHMLA_TILE_SIZE)\n",
    )
    INVALID = (
        Invalid("config = MLATransformerConfig(num_layers=2)\n", line=1),
        Invalid("spec = ModuleSpec(\n    module=MLASelfAttention,\n    params={},\n)\n", line=2),
        Invalid("attn = mla.MLASelfAttention\n", line=1),
        Invalid("sub = MLASelfAttentionSubmodules(linear_q_proj=ColumnParallelLinear)\n", line=1),
        Invalid("def f():\n    return MultiLatentAttention\n", line=2),
    )

    def check(self, source: SourceFile) -> Iterator[Hit]:
        is_class = source.mla.names.is_class
        type_test_args: set[int] = set()
        for node in source.walk_mentions((ast.Call, ast.Assign, ast.Return, ast.keyword)):
            if isinstance(node, ast.Call):
                callee = dotted_name(node.func)
                if callee in _TYPE_TESTS:
                    type_test_args.update(id(arg) for arg in ast.walk(node))
                    continue
                if callee and is_class(callee.rsplit(".", 1)[-1]):
                    yield Hit(node, f"constructs MLA class `{callee}`")
                    continue
                values = node.args
            elif isinstance(node, ast.keyword):
                values = [node.value]
            else:
                values = [node.value] if node.value is not None else []
            for value in values:
                referenced = dotted_name(value)
                if referenced and id(value) not in type_test_args and is_class(referenced.rsplit(".", 1)[-1]):
                    yield Hit(value, f"references MLA class `{referenced}`")
