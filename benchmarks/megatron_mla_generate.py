"""Megatron's own dynamic inference engine serving an MLA GPTModel built through the seam (issue 18).

The model (``mla_layer_spec``, ``cache_mla_latents=True``) generates ``--new-tokens`` greedy tokens for a batch of
random prompts through megatron-core's ``DynamicInferenceEngine``, which decodes the cached latents with
``flash_mla_with_kvcache`` and prefills with ``flash_attn_varlen_func``: the stand-ins ``install_mla_kernels()``
gives it where ``flash_mla`` and ``flash_attn`` are missing. The baseline is the uncached path: the same weights
run over the whole sequence for every new token (``GPTModel`` forward, argmax). Reports whether the tokens are
identical, the engine's time (and its time for the prefill and first token alone) and the uncached loop's, for
bfloat16 and float16 weights. Rounding differs between the absorbed decode and the full forward, so near-ties of
random weights may flip a greedy token: the uncached model also scores the engine's tokens (teacher forcing), to
show how far each is from its best token and how close the best two were where the paths part.
Random weights give nearly flat logits, where 16-bit rounding decides ties; ``--train-steps N`` first trains the
model N steps on a synthetic corpus (``--prompts`` random sequences, the training benchmark's loop in bf16 with
float32 master weights) and draws the prompts from it, so that the logits are peaked as a trained model's are.
One JSON line per dtype to $OUT/megatron_mla_generate.jsonl.
Megatron-Core main (0.20) only: 0.16.1's MLA calls ``flash_decode_and_prefill`` without its ``is_decode_only``.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from megatron_mla_train import V2_LITE, config_for, train
from megatron_mla_train import build as build_for_training

SEED = 1234
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


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


def trained_on_corpus(seam, corpus: torch.Tensor, vocab: int, steps: int) -> tuple[dict, list[float]]:
    """The weights of the benchmark's model after ``steps`` steps on ``corpus [sequences, tokens]`` (the same batch
    every step: it learns the sequences by heart), and the losses."""
    config = config_for(seam, V2_LITE, 4096, True)  # as the generating models are built (the same RoPE scaling)
    model = build_for_training(seam, "gpt", config, vocab, corpus.shape[1]).cuda()
    result = train(model, torch.device("cuda"), vocab, corpus.shape[1], corpus.shape[0], steps, input_ids=corpus)
    weights = {name: value.detach().clone() for name, value in model.state_dict().items()
               if isinstance(value, torch.Tensor)}  # fmt: skip
    del model
    torch.cuda.empty_cache()
    return weights, result["losses"]


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
            logits = model(tokens, torch.arange(length, device="cuda")[None], mask, runtime_gather_output=True)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        outputs.append(tokens[0, len(prompt) :].tolist())
    torch.cuda.synchronize()
    return outputs, time.perf_counter() - began


@torch.no_grad()
def teacher_forced(model, prompt: list[int], tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The uncached path's view of the tokens the engine chose: at each new position the log-probability of the
    engine's token, how far its logit is below the best one, and the gap between the best two logits."""
    sequence = torch.tensor(prompt + tokens[:-1], device="cuda")[None]
    length = sequence.shape[1]
    mask = torch.ones(1, 1, length, length, dtype=torch.bool, device="cuda").triu(1)
    logits = model(sequence, torch.arange(length, device="cuda")[None], mask, runtime_gather_output=True)
    logits = logits[0, len(prompt) - 1 :].float()
    chosen = logits.gather(-1, torch.tensor(tokens, device="cuda")[:, None])[:, 0]
    best_two = logits.topk(2, dim=-1).values
    return chosen - logits.logsumexp(-1), best_two[:, 0] - chosen, best_two[:, 0] - best_two[:, 1]


@torch.no_grad()
def engine_generate(model, config, prompts, new_tokens: int, vocab: int):
    """Greedy tokens, their log-probabilities and the seconds it took, through Megatron's dynamic engine."""
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
    parameters = SamplingParams(top_k=1, num_tokens_to_generate=new_tokens, termination_id=-1, return_log_probs=True,
                                skip_prompt_log_probs=True)  # fmt: skip
    torch.cuda.synchronize()
    began = time.perf_counter()
    for request_id, prompt in enumerate(prompts):
        engine.add_request(request_id, torch.tensor(prompt, device="cuda"), parameters)
    finished = []
    while engine.has_unfinished_requests():
        finished.extend(engine.step_modern()["finished_request_records"])
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    requests = [record.merge() for record in sorted(finished, key=lambda record: record.request_id)]
    return [list(r.generated_tokens) for r in requests], [list(r.generated_log_probs) for r in requests], seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3, help="engine runs; its times are their medians")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["bf16", "fp16"])
    parser.add_argument("--train-steps", type=int, default=0, help="train on a synthetic corpus first (0: random)")
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
    weights, training_losses = None, None
    if arguments.train_steps:
        length = arguments.prompt_tokens + arguments.new_tokens
        corpus = torch.randint(0, arguments.vocab - 1, (arguments.prompts, length), generator=generator)
        weights, training_losses = trained_on_corpus(seam, corpus, arguments.vocab, arguments.train_steps)
        # Each prompt begins a corpus sequence; the rest of it (64 tokens and more) is what the model learned.
        prompts = [corpus[i, : arguments.prompt_tokens - 4 * i].tolist() for i in range(arguments.prompts)]
    else:
        prompts = [
            torch.randint(0, arguments.vocab - 1, (arguments.prompt_tokens - 4 * i,), generator=generator).tolist()
            for i in range(arguments.prompts)
        ]  # different lengths: the engine batches ragged prompts
    for dtype in arguments.dtypes:
        config, plain_config = (
            config_for(seam, V2_LITE, 4096, True, bf16=dtype == "bf16", fp16=dtype == "fp16",
                       params_dtype=DTYPES[dtype], cache_mla_latents=cached)
            for cached in (True, False)
        )  # fmt: skip
        # With cache_mla_latents a layer runs only inside the dynamic engine: the uncached path is a twin.
        plain = build(seam, plain_config, arguments.vocab, max_tokens)
        if weights is not None:
            plain.load_state_dict(weights)  # cast to this dtype
        reference, uncached_seconds = uncached(plain, prompts, arguments.new_tokens)
        model = build(seam, config, arguments.vocab, max_tokens)
        model.load_state_dict(plain.state_dict())
        # Warm-up: Triton compiles for the batch it is launched with, so the warm-up takes the timed batch.
        engine_generate(model, config, prompts, 4, arguments.vocab)
        runs = [engine_generate(model, config, prompts, arguments.new_tokens, arguments.vocab)
                for _ in range(arguments.repeats)]  # fmt: skip
        generated, log_probs, _ = runs[0]
        engine_seconds = statistics.median(run[-1] for run in runs)
        prefill_seconds = statistics.median(  # the prefill and one token
            engine_generate(model, config, prompts, 1, arguments.vocab)[-1] for _ in range(arguments.repeats)
        )
        same = [a == b for a, b in zip(generated, reference, strict=True)]
        first_difference = [next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
                            for a, b in zip(generated, reference, strict=True)]  # fmt: skip
        forced = [teacher_forced(plain, prompt, tokens) for prompt, tokens in zip(prompts, generated, strict=True)]
        log_prob_difference = max(float((torch.tensor(engine, device="cuda") - uncached_view).abs().max())
                                  for engine, (uncached_view, _, _) in zip(log_probs, forced, strict=True))  # fmt: skip
        gaps_at_difference = [round(float(gap[i]), 4) for (_, _, gap), i in zip(forced, first_difference, strict=True)
                              if i is not None]  # fmt: skip
        del plain
        new = arguments.prompts * arguments.new_tokens
        result = {
            "release": package_info.__version__, "installed": installed, "dtype": dtype,
            "prompts": arguments.prompts, "prompt_tokens": arguments.prompt_tokens, "new_tokens": arguments.new_tokens,
            "engine_runs_identical": all(run[0] == generated for run in runs),
            "identical_sequences": sum(same), "first_difference": first_difference,
            "largest_log_prob_difference": round(log_prob_difference, 4),
            "engine_token_below_best_logit_max": round(max(float(short.max()) for _, short, _ in forced), 4),
            "best_two_logit_gap_at_first_difference": gaps_at_difference,
            "best_two_logit_gap_min": round(min(float(gap.min()) for _, _, gap in forced), 4),
            "weights": f"trained {arguments.train_steps} steps" if weights is not None else "random",
            "training_losses": training_losses and [training_losses[0], training_losses[-1]],
            "engine_s": round(engine_seconds, 3), "engine_prefill_and_first_token_s": round(prefill_seconds, 3),
            "uncached_s": round(uncached_seconds, 3),
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
