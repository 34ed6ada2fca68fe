"""GPU check of seamfix.runtime.megatron (issues 15, 18): MLA GPT and MLA Hybrid models train through the seam.

V2-Lite-like shapes (4 layers, hidden 2048, ffn 10944, 16 heads, no q LoRA, kv_lora_rank 512, qk 128 + rope 64,
v 128, vocabulary 102400, YaRN RoPE), sequences of ``--tokens`` (each in turn), ``--batch`` of them, local core
attention (no TransformerEngine), one GPU.
bfloat16 model, float32 master weights and AdamW states (lr 1e-4, gradients clipped at 1), as megatron's
mixed-precision optimizer keeps them. Each model trains ``--steps`` steps on one fixed batch from the same seed;
the losses, the median step time (first step left out), the peak memory and where the last step's memory goes
(``MemoryPhases``) are written as one JSON line per model to $OUT/megatron_mla_train.jsonl (OUT defaults to
./out). Models:

- ``gpt``: ``GPTModel`` with ``mla_layer_spec(config)`` (the seam; its fused core attention);
- ``gpt-unfused``: ``mla_layer_spec(config, core_attention="unfused")``, megatron's materialized local path (the
  baseline of issue 18);
- ``gpt-native``: the seam's spec with megatron's own ``MLASelfAttention`` in place of the adapter (issue 15);
- ``hybrid``: ``HybridModel`` with ``mla_hybrid_stack_spec(config)`` and pattern ``"*-" * layers`` (0.20+).

A model that runs out of GPU memory is recorded as such.

``--smoke`` runs tiny shapes on the CPU, to check the script end to end.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

SEED = 1234
V2_LITE = dict(
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
SMOKE = dict(
    num_layers=2,
    hidden_size=64,
    ffn_hidden_size=128,
    num_attention_heads=4,
    q_lora_rank=None,
    kv_lora_rank=24,
    qk_head_dim=16,
    qk_pos_emb_head_dim=8,
    v_head_dim=16,
)


def config_for(seam, shapes: dict, tokens: int, on_gpu: bool, **changes):
    """The benchmark's MLA config; ``changes`` replace or add fields."""
    fields = dict(
        **shapes,
        rope_type="yarn",
        rotary_scaling_factor=40.0,
        original_max_position_embeddings=tokens,
        mscale=0.707,
        mscale_all_dim=0.707,
        qk_layernorm=False,  # with q_lora_rank None, 0.20 puts a query norm only TransformerEngine builds
        normalization="RMSNorm",
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bf16=on_gpu,
        params_dtype=torch.bfloat16 if on_gpu else torch.float32,
        use_cpu_initialization=not on_gpu,
        masked_softmax_fusion=False,  # megatron's fused softmax is a CUDA extension not built here
        gradient_accumulation_fusion=False,  # needs apex
        apply_rope_fusion=False,
    )
    return seam.mla_config(**{**fields, **changes})


def build(seam, kind: str, config, vocab: int, tokens: int):
    from megatron.core import tensor_parallel
    from megatron.core.models.gpt import GPTModel
    from megatron.core.transformer.multi_latent_attention import MLASelfAttention

    torch.manual_seed(SEED)
    tensor_parallel.model_parallel_cuda_manual_seed(SEED)  # the same initial weights for every model
    if kind == "hybrid":
        from megatron.core.models.hybrid.hybrid_model import HybridModel

        return HybridModel(
            config=config,
            hybrid_stack_spec=seam.mla_hybrid_stack_spec(config),
            vocab_size=vocab,
            max_sequence_length=tokens,
            hybrid_layer_pattern="*-" * config.num_layers,
            position_embedding_type="rope",
        )
    spec = seam.mla_layer_spec(config, core_attention="unfused" if kind == "gpt-unfused" else "fused")
    if kind == "gpt-native":
        attention = dataclasses.replace(spec.submodules.self_attention, module=MLASelfAttention)
        spec = dataclasses.replace(spec, submodules=dataclasses.replace(spec.submodules, self_attention=attention))
    return GPTModel(config=config, transformer_layer_spec=spec, vocab_size=vocab, max_sequence_length=tokens,
                    position_embedding_type="rope")  # fmt: skip


class MemoryPhases:
    """Where one step's memory goes on the GPU, in GiB: what is allocated when it starts (bf16 weights, float32
    master weights, AdamW's states), what the forward holds when the output layer begins (the decoder's
    activations saved for backward), what the logits and the loss add, and the peak of the forward, the backward
    and the optimizer step. ``start`` arms it for one step; ``mark`` ends a phase. Off the GPU it does nothing."""

    def __init__(self, model, on_gpu: bool):
        self.on_gpu, self.armed, self.values, self.earlier_peak = on_gpu, False, None, 0
        if on_gpu:
            model.output_layer.register_forward_pre_hook(self._before_output_layer)

    def _before_output_layer(self, _module, _inputs):
        if self.armed:
            self.values["decoder_activations_gib"] = self._allocated() - self.values["step_start_gib"]

    @staticmethod
    def _allocated() -> float:
        return round(torch.cuda.memory_allocated() / 2**30, 2)

    def start(self) -> None:
        if not self.on_gpu:
            return
        torch.cuda.synchronize()
        self.earlier_peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        self.armed, self.values = True, {"step_start_gib": self._allocated()}

    def mark(self, phase: str) -> None:
        if not self.armed:
            return
        torch.cuda.synchronize()
        if phase == "forward":
            held = self._allocated() - self.values["step_start_gib"] - self.values["decoder_activations_gib"]
            self.values["logits_and_loss_gib"] = round(held, 2)
        self.values[f"{phase}_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
        self.armed = phase != "optimizer"

    def peak_gib(self) -> float | None:
        if not self.on_gpu:
            return None
        later = max((value for key, value in self.values.items() if key.endswith("_peak_gib")), default=0.0)
        return max(round(self.earlier_peak / 2**30, 2), later)


def train(model, device, vocab: int, tokens: int, batch: int, steps: int, input_ids=None) -> dict:
    """``steps`` steps on one batch, ``input_ids [batch, tokens]`` (default: random tokens from seed 0)."""
    if input_ids is None:
        generator = torch.Generator().manual_seed(0)
        input_ids = torch.randint(0, vocab, (batch, tokens), generator=generator)
    input_ids = input_ids.to(device)
    inputs = dict(
        input_ids=input_ids,
        position_ids=torch.arange(tokens, device=device).expand(batch, -1),
        attention_mask=torch.ones(1, 1, tokens, tokens, dtype=torch.bool, device=device).triu(1),
        labels=input_ids.roll(-1, dims=1),
    )
    parameters = list(model.parameters())
    masters = [parameter.detach().float() for parameter in parameters]  # float32 master weights, as megatron keeps
    optimizer = torch.optim.AdamW(masters, lr=1e-4, weight_decay=0.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    phases = MemoryPhases(model, device.type == "cuda")
    losses, times = [], []
    for step in range(steps):
        began = time.perf_counter()
        if step == steps - 1:
            phases.start()
        loss = model(**inputs).float().mean()
        phases.mark("forward")
        loss.backward()
        phases.mark("backward")
        for master, parameter in zip(masters, parameters, strict=True):
            master.grad, parameter.grad = parameter.grad.float(), None
        torch.nn.utils.clip_grad_norm_(masters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for master, parameter in zip(masters, parameters, strict=True):
                parameter.copy_(master)
        phases.mark("optimizer")
        losses.append(loss.item())  # synchronizes
        times.append(time.perf_counter() - began)
    return {
        "losses": [round(value, 4) for value in losses],
        "decreasing": all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False)),
        "step_ms_median": round(statistics.median(times[1:]) * 1e3, 1),
        "tokens_per_s": round(batch * tokens / statistics.median(times[1:])),
        "step_ms": [round(value * 1e3, 1) for value in times],
        "peak_gib": phases.peak_gib(),
        "memory_phases": phases.values,
        "parameters": sum(p.numel() for p in parameters),
    }


def run(seam, kind: str, config, device, vocab: int, tokens: int, arguments) -> dict:
    model = None
    try:
        model = build(seam, kind, config, vocab, tokens).to(device)  # megatron's local norms are built on the CPU
        return train(model, device, vocab, tokens, arguments.batch, arguments.steps)
    except torch.OutOfMemoryError:
        return {"out_of_memory": True}
    finally:
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["gpt", "gpt-unfused", "gpt-native", "hybrid"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=102400)
    parser.add_argument("--smoke", action="store_true")
    arguments = parser.parse_args()
    from megatron.core import package_info, parallel_state, tensor_parallel

    import seamfix.runtime.megatron as seam

    on_gpu = not arguments.smoke
    lengths, vocab = ([16], 128) if arguments.smoke else (arguments.tokens, arguments.vocab)
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    with seam.cpu_mode() if arguments.smoke else contextlib.nullcontext():
        device = torch.device("cuda" if on_gpu else "cpu")
        rendezvous = f"file://{tempfile.mkdtemp()}/rendezvous"
        torch.distributed.init_process_group("nccl" if on_gpu else "gloo", init_method=rendezvous, rank=0, world_size=1)
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=1)
        tensor_parallel.model_parallel_cuda_manual_seed(SEED)
        for tokens in lengths:
            config = config_for(seam, SMOKE if arguments.smoke else V2_LITE, tokens, on_gpu)
            for kind in arguments.models:
                step = run(seam, kind, config, device, vocab, tokens, arguments)
                result = {"release": package_info.__version__, "model": kind, "tokens": tokens,
                          "batch": arguments.batch, **step}  # fmt: skip
                if on_gpu:
                    result["device"] = torch.cuda.get_device_name()
                print(json.dumps(result), flush=True)
                with (out / "megatron_mla_train.jsonl").open("a") as log:
                    log.write(json.dumps(result) + "\n")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
