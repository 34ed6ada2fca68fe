"""Megatron's own dynamic inference engine serving an MLA GPTModel built through the seam (issue 18).

The model (``mla_layer_spec``, ``cache_mla_latents=True``) generates ``--new-tokens`` greedy tokens for a batch of
random prompts through megatron-core's ``DynamicInferenceEngine``, which decodes the cached latents with
``flash_mla_with_kvcache`` and prefills with ``flash_attn_varlen_func``: the stand-ins ``install_mla_kernels()``
gives it where ``flash_mla`` and ``flash_attn`` are missing. The baseline is the uncached path: the same weights
run over the whole sequence for every new token (``GPTModel`` forward, argmax). Reports whether the tokens are
identical, the engine's time and the uncached loop's, for bfloat16 and float32 weights (bf16 rounding differs
between the absorbed decode and the full forward, so near-ties of random weights may flip a greedy token).
One JSON line per dtype to $OUT/megatron_mla_generate.jsonl.
Megatron-Core main (0.20) only: 0.16.1's MLA calls ``flash_decode_and_prefill`` without its ``is_decode_only``.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

SEED = 1234
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
SHAPES = dict(
    num_layers=4,
    hidden_size=2048,
    ffn_hidden_size=10944,
    num_attention_heads=16,
    q_lora_rank=None,
    kv_lora_rank=512,
    qk_head_dim=128,
    qk_pos_emb_head_dim=64,
    v_head_dim=128,
)


class Tokens:
    """The tokenizer the engine asks for: prompts arrive as token ids, so it only names the end of document."""

    def __init__(self, vocab: int):
        self.vocab_size = vocab
        self.eod = vocab - 1

    def detokenize(self, tokens, **_):
        return " ".join(map(str, tokens))


def build(seam, config, vocab: int, max_tokens: int):
    from megatron.core import tensor_parallel
    from megatron.core.models.gpt import GPTModel

    torch.manual_seed(SEED)
    tensor_parallel.model_parallel_cuda_manual_seed(SEED)
    model = GPTModel(config=config, transformer_layer_spec=seam.mla_layer_spec(config), vocab_size=vocab,
                     max_sequence_length=max_tokens, position_embedding_type="rope")  # fmt: skip
    return model.cuda().eval()


@torch.no_grad()
def uncached(model, prompts, new_tokens: int) -> tuple[list[list[int]], float]:
    """Greedy tokens from full forwards over prompt + tokens so far, one sequence at a time."""
    torch.cuda.synchronize()
    began = time.perf_counter()
    outputs = []
    for prompt in prompts:
        tokens = torch.tensor(prompt, device="cuda")[None]
        for _ in range(new_tokens):
            length = tokens.shape[1]
            mask = torch.ones(1, 1, length, length, dtype=torch.bool, device="cuda").triu(1)
            logits = model(tokens, torch.arange(length, device="cuda")[None], mask)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        outputs.append(tokens[0, len(prompt) :].tolist())
    torch.cuda.synchronize()
    return outputs, time.perf_counter() - began


@torch.no_grad()
def engine_generate(model, config, prompts, new_tokens: int, vocab: int) -> tuple[list[list[int]], float]:
    from megatron.core.inference.config import InferenceConfig
    from megatron.core.inference.contexts.dynamic_context import DynamicInferenceContext
    from megatron.core.inference.engines.dynamic_engine import DynamicInferenceEngine
    from megatron.core.inference.model_inference_wrappers.gpt.gpt_inference_wrapper import GPTInferenceWrapper
    from megatron.core.inference.sampling_params import SamplingParams
    from megatron.core.inference.text_generation_controllers.text_generation_controller import (
        TextGenerationController,
    )

    longest = max(map(len, prompts)) + new_tokens
    context = DynamicInferenceContext(
        config,
        InferenceConfig(
            block_size_tokens=64,
            buffer_size_gb=1,
            max_sequence_length=longest,
            max_requests=len(prompts),
            max_tokens=4096,
            num_cuda_graphs=None,
        ),  # fmt: skip
    )
    controller = TextGenerationController(GPTInferenceWrapper(model, context), Tokens(vocab))
    engine = DynamicInferenceEngine(controller, context)
    parameters = SamplingParams(top_k=1, num_tokens_to_generate=new_tokens, termination_id=-1)
    torch.cuda.synchronize()
    began = time.perf_counter()
    for request_id, prompt in enumerate(prompts):
        engine.add_request(request_id, torch.tensor(prompt, device="cuda"), parameters)
    finished = []
    while engine.has_unfinished_requests():
        finished.extend(engine.step_modern()["finished_request_records"])
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    finished.sort(key=lambda record: record.request_id)
    return [list(record.merge().generated_tokens) for record in finished], seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["bf16", "fp32"])
    arguments = parser.parse_args()
    from megatron.core import package_info, parallel_state, tensor_parallel

    import seamfix.runtime.megatron as seam

    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    torch.distributed.init_process_group("nccl", init_method=f"file://{tempfile.mkdtemp()}/rendezvous", rank=0,
                                         world_size=1)  # fmt: skip
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=1)
    tensor_parallel.model_parallel_cuda_manual_seed(SEED)
    installed = seam.install_mla_kernels()
    max_tokens = arguments.prompt_tokens + arguments.new_tokens + 8
    generator = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(0, arguments.vocab - 1, (arguments.prompt_tokens - 4 * i,), generator=generator).tolist()
        for i in range(arguments.prompts)
    ]  # different lengths: the engine batches ragged prompts
    for dtype in arguments.dtypes:
        config, plain_config = (seam.mla_config(
            **SHAPES, rope_type="yarn", rotary_scaling_factor=40.0, original_max_position_embeddings=4096,
            mscale=0.707, mscale_all_dim=0.707, normalization="RMSNorm", hidden_dropout=0.0, attention_dropout=0.0,
            bf16=dtype == "bf16", params_dtype=DTYPES[dtype], cache_mla_latents=cached,
        ) for cached in (True, False))  # fmt: skip
        # With cache_mla_latents a layer runs only inside the dynamic engine: the uncached path is a twin.
        plain = build(seam, plain_config, arguments.vocab, max_tokens)
        reference, uncached_seconds = uncached(plain, prompts, arguments.new_tokens)
        model = build(seam, config, arguments.vocab, max_tokens)
        model.load_state_dict(plain.state_dict())
        del plain
        engine_generate(model, config, prompts[:2], 4, arguments.vocab)  # warm-up (Triton compiles)
        generated, engine_seconds = engine_generate(model, config, prompts, arguments.new_tokens, arguments.vocab)
        same = [a == b for a, b in zip(generated, reference, strict=True)]
        first_difference = [next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
                            for a, b in zip(generated, reference, strict=True)]  # fmt: skip
        new = arguments.prompts * arguments.new_tokens
        result = {
            "release": package_info.__version__, "installed": installed, "dtype": dtype,
            "prompts": arguments.prompts, "prompt_tokens": arguments.prompt_tokens, "new_tokens": arguments.new_tokens,
            "identical_sequences": sum(same), "first_difference": first_difference,
            "engine_s": round(engine_seconds, 3), "uncached_s": round(uncached_seconds, 3),
            "engine_tokens_per_s": round(new / engine_seconds, 1),
            "uncached_tokens_per_s": round(new / uncached_seconds, 1), "device": torch.cuda.get_device_name(),
        }  # fmt: skip
        print(json.dumps(result), flush=True)
        with (out / "megatron_mla_generate.jsonl").open("a") as log:
            log.write(json.dumps(result) + "\n")
        del model
        torch.cuda.empty_cache()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
