"""Build tiny GPTModels (MLA and dense) on CPU from the megatron-core on PYTHONPATH; print digests of their
loss and gradients as JSON (one digest of the exact bytes per tensor).

    python megatron_model.py RENDEZVOUS_FILE

Run once with the original tree and once with the tree `seamfix apply` rewrote: the outputs must be equal.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings

import torch

warnings.filterwarnings("ignore")

SEED, TOKENS, BATCH, VOCAB = 1234, 16, 2, 128
SHARED = dict(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=128, hidden_dropout=0.0,
              attention_dropout=0.0, use_cpu_initialization=True)  # fmt: skip
MLA = dict(q_lora_rank=32, kv_lora_rank=24, qk_head_dim=16, qk_pos_emb_head_dim=8, v_head_dim=16, mscale=1.0,
           mscale_all_dim=1.0, rope_type="rope", **SHARED)  # fmt: skip


def main(rendezvous: str) -> None:
    torch.set_num_threads(1)
    from megatron.core import parallel_state
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    import seamfix.runtime.megatron as seam

    with seam.cpu_mode():
        torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=0, world_size=1)
        parallel_state.initialize_model_parallel(1, 1)
        mla = seam.mla_config(**MLA)
        results = {
            "mla": step(build(mla, seam.mla_layer_spec(mla))),
            "dense": step(build(TransformerConfig(**SHARED), get_gpt_layer_local_spec())),
        }
    print(json.dumps(results, sort_keys=True))


def build(config, spec):
    from megatron.core import tensor_parallel
    from megatron.core.models.gpt import GPTModel

    torch.manual_seed(SEED)
    tensor_parallel.model_parallel_cuda_manual_seed(SEED)
    return GPTModel(config=config, transformer_layer_spec=spec, vocab_size=VOCAB, max_sequence_length=TOKENS,
                    position_embedding_type="rope")  # fmt: skip


def step(model) -> dict:
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS), generator=torch.Generator().manual_seed(0))
    loss = model(
        input_ids=tokens,
        position_ids=torch.arange(TOKENS).expand(BATCH, -1),
        attention_mask=torch.ones(1, 1, TOKENS, TOKENS, dtype=torch.bool).triu(1),
        labels=tokens.roll(-1, dims=1),
    ).mean()
    loss.backward()
    gradients = {name: digest(p.grad) for name, p in model.named_parameters()}
    return {"loss": float(loss), "loss_bytes": digest(loss.detach()), "gradients": gradients}


def digest(tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()[:16]


if __name__ == "__main__":
    main(sys.argv[1])
