"""``MLATransformerConfig`` for the installed release, written with the newest field names."""

from __future__ import annotations

import dataclasses

from megatron.core.transformer.transformer_config import MLATransformerConfig

from .releases import ADDED_CONFIG_FIELDS, RENAMED_CONFIG_FIELDS, installed_release, installed_version

EXPLICIT_FIELDS = ("mscale", "mscale_all_dim")
"""Their defaults changed in 0.14 (0.707/0.707 → 1.0/0.0), and so did which of them scales MLA's softmax."""


def mla_config(**fields) -> MLATransformerConfig:
    """An ``MLATransformerConfig`` of the installed release from the newest release's field names.

    A renamed field takes its older name; a field the release lacks is dropped only at its default value;
    ``mscale`` and ``mscale_all_dim`` are required. Anything else that cannot be honoured raises.
    """
    missing = [name for name in EXPLICIT_FIELDS if name not in fields]
    if missing:
        raise TypeError(
            f"mla_config needs {' and '.join(missing)} given explicitly: their defaults and meaning changed in 0.14"
        )
    _check_softmax_scale(fields)
    installed = {field.name for field in dataclasses.fields(MLATransformerConfig) if field.init}
    arguments, given_as = {}, {}
    for name, value in fields.items():
        installed_name = name if name in installed else RENAMED_CONFIG_FIELDS.get(name)
        if installed_name in installed:
            if installed_name in arguments:
                raise TypeError(
                    f"{given_as[installed_name]} and {name} are one field, {installed_name}, "
                    f"in megatron-core {installed_version()}"
                )
            arguments[installed_name], given_as[installed_name] = value, name
        elif name in ADDED_CONFIG_FIELDS and value == ADDED_CONFIG_FIELDS[name]:
            continue
        else:
            raise TypeError(_unsupported_field_message(name, value))
    config = MLATransformerConfig(**arguments)
    check_fields_mla_ignores(config)
    return config


FIELDS_MLA_IGNORES = {
    "softmax_scale": "it scales its softmax by mscale**2 / sqrt(qk_head_dim + qk_pos_emb_head_dim)",
    "add_qkv_bias": "its query and key-value projections have no bias",
    "no_rope_freq": "it rotates the qk_pos_emb_head_dim channels in every layer",
    "qk_l2_norm": "it normalizes queries and keys only with qk_layernorm",  # main refuses it itself
}
"""Config fields that other attention layers read and every release's MLA does not, with what MLA does instead."""

FIELDS_YARN_IGNORES = {"rotary_percent": "YaRN rotates all qk_pos_emb_head_dim channels"}
"""Config fields MLA reads with ``rope_type="rope"`` only, with what YaRN does instead."""


def check_fields_mla_ignores(config) -> None:
    """Raises ``ValueError`` for a field of ``FIELDS_MLA_IGNORES`` (and, under YaRN, ``FIELDS_YARN_IGNORES``) off its
    default: a model built from such a config would compute something else than the config says, silently."""
    defaults = {field.name: field.default for field in dataclasses.fields(MLATransformerConfig)}
    ignored = FIELDS_MLA_IGNORES | (FIELDS_YARN_IGNORES if getattr(config, "rope_type", None) == "yarn" else {})
    for name, instead in ignored.items():
        value = getattr(config, name, defaults.get(name))
        if value != defaults.get(name):
            mup = " (use_mup=True)" if getattr(config, "use_mup", False) else ""  # main's MuP sets a softmax_scale
            raise ValueError(
                f"megatron-core {installed_version()}'s MLA does not read {name}={value!r}{mup}: {instead}; "
                f"leave {name} at {defaults[name]!r}"
            )


def _check_softmax_scale(fields: dict) -> None:
    # Newest releases scale the softmax by YaRN's mscale_all_dim; before 0.14 by mscale. The two agree when the
    # fields are equal or when no YaRN scaling applies (a factor of at most 1 makes either scale 1).
    if installed_release().softmax_mscale_field == "mscale_all_dim" or fields["mscale"] == fields["mscale_all_dim"]:
        return
    scaling_factor = fields.get("rotary_scaling_factor", MLATransformerConfig.rotary_scaling_factor)
    if scaling_factor > 1:
        raise ValueError(
            f"megatron-core {installed_version()} scales MLA's softmax by mscale ({fields['mscale']}), newer "
            f"releases by mscale_all_dim ({fields['mscale_all_dim']}); with rotary_scaling_factor={scaling_factor} "
            "they give different models. Give equal values, or build MLATransformerConfig directly."
        )


def _unsupported_field_message(name: str, value) -> str:
    release = f"megatron-core {installed_version()}'s MLATransformerConfig"
    if name in ADDED_CONFIG_FIELDS:
        return f"{release} has no {name}; it can only be left at {ADDED_CONFIG_FIELDS[name]!r}, not {value!r}"
    newest_name = next((new for new, old in RENAMED_CONFIG_FIELDS.items() if old == name), None)
    if newest_name:
        return f"{release} names {name} {newest_name}, and mla_config takes the newest names"
    return f"{release} has no field {name}"
