"""megatron-core 0.14-0.16.1 let ``multi_latent_attention.HAVE_TE`` claim TransformerEngine when it is absent.

Their TE extension swaps a ``MagicMock`` in for a missing ``transformer_engine``, so MLA's guarded import succeeds
and ``isinstance(..., TELinear)`` later raises ``TypeError``. 0.17 fixed the flag.
"""

from __future__ import annotations

import functools
import importlib.util

from megatron.core.transformer import multi_latent_attention

from .releases import installed_release


@functools.cache
def transformer_engine_installed() -> bool:
    return importlib.util.find_spec("transformer_engine") is not None


def correct_mla_te_flag() -> None:
    """Set MLA's ``HAVE_TE`` from the real TransformerEngine availability on the releases that misreport it."""
    if installed_release().mla_claims_te_without_te and not transformer_engine_installed():
        multi_latent_attention.HAVE_TE = False
