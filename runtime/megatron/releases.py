"""What differs between megatron-core releases and cannot be read off a signature or a dataclass.

Constructor arguments (``model_comm_pgs`` → ``pg_collection``, ``pp_layer_offset``, ``name``), spec-builder
parameters and config fields are inspected on the installed classes instead, so they need no row here.
A new release is one new line in ``RELEASES``.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

from megatron.core import package_info

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    softmax_mscale_field: str
    """The YaRN field MLA squares into its softmax scale: ``mscale`` until 0.13, ``mscale_all_dim`` since 0.14."""
    mla_claims_te_without_te: bool
    """``multi_latent_attention.HAVE_TE`` is True even without TransformerEngine (a mock stands in for it)."""


RELEASES: dict[tuple[int, int], Release] = {
    (0, 11): Release(softmax_mscale_field="mscale", mla_claims_te_without_te=False),
    (0, 12): Release(softmax_mscale_field="mscale", mla_claims_te_without_te=False),
    (0, 13): Release(softmax_mscale_field="mscale", mla_claims_te_without_te=False),
    (0, 14): Release(softmax_mscale_field="mscale_all_dim", mla_claims_te_without_te=True),
    (0, 15): Release(softmax_mscale_field="mscale_all_dim", mla_claims_te_without_te=True),
    (0, 16): Release(softmax_mscale_field="mscale_all_dim", mla_claims_te_without_te=True),
    (0, 17): Release(softmax_mscale_field="mscale_all_dim", mla_claims_te_without_te=False),
    (0, 18): Release(softmax_mscale_field="mscale_all_dim", mla_claims_te_without_te=False),
    (0, 19): Release(softmax_mscale_field="mscale_all_dim", mla_claims_te_without_te=False),
    (0, 20): Release(softmax_mscale_field="mscale_all_dim", mla_claims_te_without_te=False),  # main, 2026-08
}

RENAMED_CONFIG_FIELDS: dict[str, str] = {
    "original_max_position_embeddings": "max_position_embeddings",  # renamed in 0.14
}
"""Newest ``MLATransformerConfig`` field name → the name older releases give the same field."""

ADDED_CONFIG_FIELDS: dict[str, object] = {
    "cache_mla_latents": False,  # 0.14
    "mla_down_proj_fusion": False,  # 0.17
}
"""Fields newer releases added, with their default: only at that value can an older release go without them."""

MLA_ATTENTION_CLASSES: dict[str, str] = {
    "MLASelfAttention": "megatron.core.transformer.multi_latent_attention",
    "FusedMLASelfAttention": "megatron.core.transformer.multi_latent_attention",  # 0.17
    "AbsorbedMLASelfAttention": "megatron.core.transformer.experimental_attention_variant.absorbed_mla",  # 0.17
}
"""Every MLA attention class megatron-core has shipped, by the module it lives in."""


def installed_version() -> str:
    return package_info.__version__


class UnsupportedRelease(ImportError):
    """The installed megatron-core is older than the oldest release in ``RELEASES``."""


def installed_minor() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)(?=\.|$)", installed_version())  # `0.1a.1` is no 0.1
    if match is None:
        raise UnsupportedRelease(
            f"megatron-core's version `{installed_version()}` names no release (MAJOR.MINOR...): "
            "seamfix cannot tell which differences apply"
        )
    return int(match[1]), int(match[2])


def check_supported() -> None:
    """Raise ``UnsupportedRelease`` for a megatron-core older than the release table."""
    oldest = min(RELEASES)
    if installed_minor() < oldest:
        raise UnsupportedRelease(
            f"seamfix.runtime.megatron supports megatron-core {oldest[0]}.{oldest[1]} and newer; "
            f"{installed_version()} is installed (pip install 'seamfix[megatron]')"
        )


@functools.cache
def installed_release() -> Release:
    """The row for the installed megatron-core; a release newer than the table is read as the newest row."""
    check_supported()
    if installed_minor() in RELEASES:
        return RELEASES[installed_minor()]
    newest = max(RELEASES)
    logger.warning(
        "megatron-core %s is newer than seamfix's release table; assuming it behaves like %d.%d",
        installed_version(),
        *newest,
    )
    return RELEASES[newest]
