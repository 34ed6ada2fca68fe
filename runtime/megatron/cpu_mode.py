"""Build and train megatron-core MLA models on a machine without CUDA, for tests and CI.

Megatron keeps its model-parallel RNG streams (the RNG tracker that ``model_parallel_cuda_manual_seed`` seeds and
dropout forks) in CUDA generators, and MLA's rotary embeddings put their tensors on ``torch.cuda.current_device()``
even with ``use_cpu_initialization``. Inside ``cpu_mode()`` the CPU stands in for the CUDA device.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from unittest import mock

import torch
from megatron.core.fusions import fused_softmax
from megatron.core.tensor_parallel import random as megatron_random
from megatron.core.transformer import utils as transformer_utils


@contextlib.contextmanager
def cpu_mode() -> Iterator[None]:
    """Let megatron-core treat the CPU as its CUDA device until the block ends; everything is restored on exit.

    Inside: ``torch.cuda.current_device()`` answers ``cpu``; the CUDA RNG calls megatron makes
    (``torch.cuda.get_rng_state``/``set_rng_state``/``manual_seed`` and megatron's own ``_get_cuda_rng_state``/
    ``_set_cuda_rng_state``) act on torch's CPU generator, which is the one CPU dropout draws from; and megatron
    gets a fresh RNG tracker, so ``model_parallel_cuda_manual_seed`` works and the tracker from before the block
    comes back after it (its notice of CPU draws inside a fork is muted: they are the fork's own); the causal and
    sliding-window masks the local softmax makes when no mask is passed are made on the CPU. Opt in only in
    processes that run on the CPU: it patches ``torch.cuda`` process-wide.
    """
    with contextlib.ExitStack() as patches:
        for target, name, stand_in in _stand_ins():
            patches.enter_context(mock.patch.object(target, name, stand_in))
        tracker_logger = logging.getLogger(megatron_random.__name__)
        tracker_logger.addFilter(_same_generator_notice)
        patches.callback(tracker_logger.removeFilter, _same_generator_notice)
        yield


def _same_generator_notice(record: logging.LogRecord) -> bool:
    # The tracker warns when CPU draws happen inside its CUDA fork; here the fork's generator is the CPU one.
    return record.getMessage() != "CPU RNG state changed within GPU RNG context"


def _stand_ins():
    yield torch.cuda, "current_device", lambda: torch.device("cpu")
    yield torch.cuda, "get_rng_state", lambda device="cuda": torch.get_rng_state()
    yield torch.cuda, "set_rng_state", lambda new_state, device="cuda": torch.set_rng_state(new_state)
    yield torch.cuda, "manual_seed", torch.manual_seed
    yield megatron_random, "_get_cuda_rng_state", lambda *args, **kwargs: torch.get_rng_state()
    yield megatron_random, "_set_cuda_rng_state", lambda new_state, *args, **kwargs: torch.set_rng_state(new_state)
    # Megatron creates the tracker on first use from these two globals.
    yield megatron_random, "_CUDA_RNG_STATE_TRACKER", None
    yield megatron_random, "_CUDA_RNG_STATE_TRACKER_INITIALIZED", False
    # The local softmax builds these with device="cuda" when a causal layer gets no mask; fused_softmax imports
    # them by name, so both bindings are replaced (the sliding-window one exists from 0.15).
    for module in (transformer_utils, fused_softmax):
        for name, stand_in in (
            ("get_default_causal_mask", _causal_mask),
            ("get_sliding_window_causal_mask", _sliding_window_causal_mask),
        ):
            if hasattr(module, name):
                yield module, name, stand_in


def _causal_mask(sq: int) -> torch.Tensor:
    """Megatron's ``get_default_causal_mask`` on the CPU: True above the diagonal, where a key is hidden."""
    return torch.ones(sq, sq, dtype=torch.bool).triu(1)


def _sliding_window_causal_mask(sq: int, skv: int, window_size) -> torch.Tensor:
    """Megatron's ``get_sliding_window_causal_mask`` on the CPU: True outside the (left, right) window."""
    visible = torch.ones(sq, skv, dtype=torch.bool).triu(skv - sq - window_size[0]).tril(skv - sq + window_size[1])
    return ~visible
