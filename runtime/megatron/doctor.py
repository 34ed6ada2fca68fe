"""``seamfix doctor``: what the installed megatron-core changed in the MLA surface that the adapter does not
handle yet, in plain words."""

from __future__ import annotations

import dataclasses
import inspect

from megatron.core.models.gpt import gpt_layer_specs
from megatron.core.transformer.multi_latent_attention import MLASelfAttentionSubmodules
from megatron.core.transformer.transformer_config import MLATransformerConfig, TransformerConfig

from . import surface
from .attention_adapter import MLAAttentionAdapter, installed_mla_classes
from .hybrid import has_hybrid_model
from .releases import RELEASES, installed_minor, installed_version


def diagnose() -> list[str]:
    """One sentence per difference the adapter does not know; empty when the release is fully understood."""
    problems = _release_changes()
    for class_name, attention in installed_mla_classes().items():
        problems += _constructor_changes(attention)
        problems += _parameter_changes(f"{class_name}.forward", attention.forward, surface.FORWARD_PARAMETERS)
    problems += _submodule_changes()
    problems += _config_changes()
    if has_hybrid_model():
        problems += _hybrid_changes()
    for builder, known in surface.SPEC_BUILDER_PARAMETERS.items():
        function = getattr(gpt_layer_specs, builder, None)
        if function is None:
            problems.append(f"the spec builder `{builder}` is gone from megatron.core.models.gpt.gpt_layer_specs")
        else:
            problems += _parameter_changes(builder, function, known)
    return problems


def report() -> tuple[str, int]:
    """The text ``seamfix doctor`` prints, and its exit code (1 when something is unknown)."""
    problems = diagnose()
    header = f"megatron-core {installed_version()}: "
    if not problems:
        return header + "the MLA surface is what seamfix's adapter knows.\n", 0
    lines = [header + f"{len(problems)} change{'s' * (len(problems) != 1)} the adapter does not handle yet:"]
    lines += [f"- {problem}" for problem in problems]
    return "\n".join(lines) + "\n", 1


def _release_changes() -> list[str]:
    """A release newer than the table: what differs only in behaviour (``releases``) is not known for it."""
    newest, installed = max(RELEASES), installed_minor()
    if installed <= newest:
        return []
    return [
        f"megatron-core {_dotted(installed)} is newer than the releases seamfix knows ({_dotted(min(RELEASES))} to "
        f"{_dotted(newest)}): the adapter assumes it behaves like {_dotted(newest)}"
    ]


def _dotted(release: tuple[int, int]) -> str:
    return ".".join(map(str, release))


def _parameters(function) -> dict[str, inspect.Parameter]:
    ordinary = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {n: p for n, p in inspect.signature(function).parameters.items() if n != "self" and p.kind not in ordinary}


def _constructor_changes(attention: type) -> list[str]:
    """The adapter's own constructor is the list of what it handles: anything else is news."""
    handled = _parameters(MLAAttentionAdapter.__init__)
    required_by_adapter = {n for n, p in handled.items() if p.default is inspect.Parameter.empty}
    problems = []
    for name, parameter in _parameters(attention.__init__).items():
        where = f"{attention.__name__}.__init__"
        if name not in handled:
            problems.append(f"{where} has a new parameter `{name}`")
        elif parameter.default is inspect.Parameter.empty and name not in required_by_adapter:
            problems.append(f"{where} now requires `{name}`")
    return problems


def _parameter_changes(where: str, function, known: frozenset[str]) -> list[str]:
    return [f"{where} has a new parameter `{name}`" for name in _parameters(function) if name not in known]


def _submodule_changes() -> list[str]:
    problems = []
    for field in dataclasses.fields(MLASelfAttentionSubmodules):
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if field.name not in surface.SUBMODULE_FIELDS:
            problems.append(f"MLASelfAttentionSubmodules has a new field `{field.name}`")
        elif required and field.name not in surface.REQUIRED_SUBMODULE_FIELDS:
            problems.append(f"MLASelfAttentionSubmodules now requires `{field.name}`")
    return problems


def _config_changes() -> list[str]:
    base = {field.name for field in dataclasses.fields(TransformerConfig)}
    added = [field.name for field in dataclasses.fields(MLATransformerConfig) if field.name not in base]
    return [f"MLATransformerConfig has a new field `{name}`" for name in added if name not in surface.CONFIG_FIELDS]


def _hybrid_changes() -> list[str]:
    """What ``mla_hybrid_stack_spec`` relies on: every layer field in one of a GPT layer's halves, and its slots."""
    from megatron.core.models.hybrid.hybrid_block import HybridStackSubmodules
    from megatron.core.transformer.transformer_layer import TransformerLayerSubmodules

    known = {*surface.ATTENTION_HALF, *surface.MLP_HALF, *surface.OTHER_LAYER_FIELDS}
    layer_fields = [field.name for field in dataclasses.fields(TransformerLayerSubmodules)]
    problems = [f"TransformerLayerSubmodules has a new field `{name}`" for name in layer_fields if name not in known]
    slots = {field.name for field in dataclasses.fields(HybridStackSubmodules)}
    return problems + [
        f"HybridStackSubmodules has no `{slot}`" for slot in surface.HYBRID_STACK_SLOTS if slot not in slots
    ]
