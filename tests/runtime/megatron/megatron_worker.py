"""Exercises seamfix.runtime.megatron against the megatron-core release on PYTHONPATH; prints one line of JSON.

    python megatron_worker.py checks INIT_URL              everything that runs in one process
    python megatron_worker.py train RANK WORLD INIT_URL    one rank of a tensor-parallel training step

INIT_URL is a ``file://`` rendezvous for gloo. The tests in this folder run it once per release and assert on
its output; it asserts nothing itself, so a failure shows up as the value that broke.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import sys
import warnings

import torch

warnings.filterwarnings("ignore")  # megatron's import-time notices (apex, TE) would drown the JSON's reader

SEED = 1234
TOKENS, BATCH, VOCAB = 16, 2, 128
MODEL_FIELDS = dict(
    num_layers=2,
    hidden_size=64,
    ffn_hidden_size=128,
    num_attention_heads=4,
    q_lora_rank=32,
    kv_lora_rank=24,
    qk_head_dim=16,
    qk_pos_emb_head_dim=8,
    v_head_dim=12,  # unlike kv_channels (64 / 4): MLADotProductAttention must size its output by v_channels
    qk_layernorm=True,
    rope_type="yarn",
    rotary_scaling_factor=4.0,
    original_max_position_embeddings=TOKENS,
    mscale=1.0,
    mscale_all_dim=1.0,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    use_cpu_initialization=True,
)


def main(command: str, *arguments: str) -> None:
    torch.set_num_threads(1)  # one thread: the same float reductions in every run, and two ranks fit two cores
    import seamfix.runtime.megatron as seam

    if command == "checks":
        (init_url,) = arguments
        result = checks(seam, init_url)
    else:
        rank, world, init_url = arguments
        with seam.cpu_mode():
            start(int(rank), int(world), init_url)
            config = seam.mla_config(**MODEL_FIELDS)
            result = {"gpt": train_one_step(build_gpt(seam, config))}
            if seam.hybrid.has_hybrid_model():
                result["hybrid"] = train_one_step(build_hybrid(seam, config))
            stop()
    print(json.dumps(result))


def start(rank: int, world: int, init_url: str) -> None:
    from megatron.core import parallel_state, tensor_parallel

    torch.distributed.init_process_group("gloo", init_method=init_url, rank=rank, world_size=world)
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=world)
    seed()
    tensor_parallel.model_parallel_cuda_manual_seed(SEED)


def stop() -> None:
    """Both ranks leave together and close gloo's threads: a rank that exited while its peer still held the
    group could abort at interpreter exit ("terminate called without an active exception", rc -6: seen once, in a
    CI run on a loaded 2-core machine)."""
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def seed() -> None:
    torch.manual_seed(SEED)


def build_gpt(seam, config, position_embedding_type: str = "rope", spec=None):
    from megatron.core.models.gpt import GPTModel

    seed()
    return GPTModel(
        config=config,
        transformer_layer_spec=spec or seam.mla_layer_spec(config),
        vocab_size=VOCAB,
        max_sequence_length=TOKENS,
        position_embedding_type=position_embedding_type,
    )


def build_hybrid(seam, config, pattern: str | None = None):
    from megatron.core.models.hybrid.hybrid_model import HybridModel

    seed()
    return HybridModel(
        config=config,
        hybrid_stack_spec=seam.mla_hybrid_stack_spec(config),
        vocab_size=VOCAB,
        max_sequence_length=TOKENS,
        hybrid_layer_pattern=pattern or "*-" * config.num_layers,
        position_embedding_type="rope",
    )


def causal_mask() -> torch.Tensor:
    return torch.ones(1, 1, TOKENS, TOKENS, dtype=torch.bool).triu(1)


def batch(**changes) -> dict:
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS), generator=torch.Generator().manual_seed(0))
    default = dict(
        input_ids=tokens,
        position_ids=torch.arange(TOKENS).expand(BATCH, -1),
        attention_mask=causal_mask(),
        labels=tokens.roll(-1, dims=1),
    )
    return default | changes


def train_one_step(model, **batch_changes) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(**batch(**batch_changes)).mean()
    loss.backward()
    gradients = [parameter.grad for parameter in model.parameters()]
    optimizer.step()
    with torch.no_grad():
        loss_after_step = model(**batch(**batch_changes)).mean()
    return {
        "loss": loss.item(),
        "loss_after_step": loss_after_step.item(),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "parameters_without_gradient": sum(gradient is None for gradient in gradients),
        "gradients_finite": all(bool(torch.isfinite(g).all()) for g in gradients if g is not None),
        "gradient_norm": math.sqrt(sum(float(g.pow(2).sum()) for g in gradients if g is not None)),
    }


def outcome(action) -> str:
    """'ok', or the name of the exception ``action()`` raised."""
    try:
        action()
    except Exception as error:  # the tests compare the name with what each release must raise
        return type(error).__name__
    return "ok"


def one_head_training(seam) -> dict:
    """One training step of a one-head GPT per local core attention (the step's numbers, or the error).

    One head: the fused path's output was a non-contiguous view, which 0.11's output projection failed to view in
    backward."""
    config = seam.mla_config(**{**MODEL_FIELDS, "num_attention_heads": 1})
    return {
        core_attention: result_or_error(
            lambda core_attention=core_attention: train_one_step(
                build_gpt(seam, config, spec=seam.mla_layer_spec(config, core_attention=core_attention))
            )
        )
        for core_attention in ("fused", "unfused")
    }


def result_or_error(action):
    """``action()``, or the exception it raised as ``error_message`` writes it."""
    try:
        return action()
    except Exception as error:  # the tests compare it with the other path's result
        return f"{type(error).__name__}: {error}"


def error_message(action) -> str:
    try:
        action()
    except Exception as error:  # the tests read the message
        return f"{type(error).__name__}: {error}"
    return "ok"


def checks(seam, init_url: str) -> dict:
    from megatron.core import package_info, tensor_parallel
    from megatron.core.fusions import fused_softmax
    from megatron.core.tensor_parallel import random as megatron_random
    from megatron.core.transformer import multi_latent_attention

    from seamfix.runtime.megatron.doctor import report

    te_flag_at_import = getattr(multi_latent_attention, "HAVE_TE", None)  # 0.14+
    doctor = report()  # what `seamfix doctor` prints and its exit code, without a process of its own
    outside = _cpu_mode_targets(megatron_random, fused_softmax, tensor_parallel.get_cuda_rng_tracker())
    with seam.cpu_mode():
        start(0, 1, init_url)
        config = seam.mla_config(**MODEL_FIELDS)
        result = {
            "version": package_info.__version__,
            "doctor": doctor,
            "te_flag_at_import": te_flag_at_import,
            "training": train_one_step(build_gpt(seam, config)),
            "training_unfused": train_one_step(build_gpt(seam, config, spec=unfused_spec(seam, config))),
            # No mask: the local softmax makes the causal one itself (on "cuda" unless cpu_mode says otherwise).
            "training_unfused_without_mask": train_one_step(
                build_gpt(seam, config, spec=unfused_spec(seam, config)), attention_mask=None
            ),
            "packed_values_wider_than_queries": error_message(
                lambda: packed_gpt_forward(seam, seam.mla_config(**{**MODEL_FIELDS, "v_head_dim": 32}))
            ),
            "grouped_query_heads": error_message(
                lambda: build_gpt(seam, seam.mla_config(**MODEL_FIELDS, num_query_groups=2))
            ),
            # RoPE rotates channels in pairs: odd widths failed deep in Megatron's RoPE (at the first forward, or
            # as the layer was built) or, 1 wide, ran.
            "odd_rope_width": {
                width: error_message(
                    lambda width=width: build_gpt(
                        seam, seam.mla_config(**{**MODEL_FIELDS, "qk_pos_emb_head_dim": width})
                    )(**batch())
                )
                for width in (1, 3, 5)
            },
            # A field MLA does not read, in a config built without mla_config: ignored silently before.
            "ignored_field_in_a_megatron_config": error_message(
                lambda: build_gpt(seam, dataclasses.replace(config, add_qkv_bias=True))
            ),
            "training_with_one_head": one_head_training(seam),
            # Zero widths built degenerate layers silently, negative ones failed naming no field.
            "degenerate_widths": {
                f"{field}={width}": error_message(
                    lambda field=field, width=width: build_gpt(seam, seam.mla_config(**{**MODEL_FIELDS, field: width}))
                )
                for field, width in (("v_head_dim", 0), ("kv_lora_rank", 0), ("q_lora_rank", 0), ("qk_head_dim", -1))
            },
            "training_with_attention_dropout": train_one_step(
                build_gpt(seam, seam.mla_config(**{**MODEL_FIELDS, "attention_dropout": 0.25}))
            ),
            "training_without_q_lora": train_one_step(
                build_gpt(seam, seam.mla_config(**{**MODEL_FIELDS, "q_lora_rank": None, "qk_layernorm": False}))
            ),
            "query_norm_without_q_lora": error_message(
                lambda: seam.mla_layer_spec(seam.mla_config(**{**MODEL_FIELDS, "q_lora_rank": None}))
            ),
            "build_module": build_module_with_pp_layer_offset(seam, config),
            "external_rope": external_rope(seam, config),
            "adapter_versus_native": adapter_versus_native(seam, config),
            "block_spec": block_spec(seam, config),
            "adapted_local_spec": train_one_step(build_gpt(seam, config, spec=adapted_local_spec(seam, config))),
            "hybrid": hybrid(seam, config),
            "config": config_outcomes(seam),
            "release_table": release_table(seam),
            "pp_layer_offset": pp_layer_offset(seam, config),
            "process_groups": process_groups(seam, config),
            "layer_spec_options": layer_spec_options(seam, config),
            "core_attention_default_scale": core_attention_default_scale(seam, config),
            "fused_core_attention": fused_core_attention(seam, config),
            "absorption": absorption(seam),
            "te_flag_after_build": getattr(multi_latent_attention, "HAVE_TE", None),
            "installed_kernels": seam.install_mla_kernels(),  # last: it changes what Megatron's attention calls
        }
    inside_tracker = megatron_random._CUDA_RNG_STATE_TRACKER
    result["cpu_mode_restored"] = _cpu_mode_targets(megatron_random, fused_softmax, inside_tracker) == outside
    return result


def _cpu_mode_targets(megatron_random, fused_softmax, tracker) -> list[int]:
    patched = [
        torch.cuda.current_device,
        torch.cuda.get_rng_state,
        torch.cuda.set_rng_state,
        torch.cuda.manual_seed,
        megatron_random._get_cuda_rng_state,
        megatron_random._set_cuda_rng_state,
        fused_softmax.get_default_causal_mask,
        tracker,
    ]
    return [id(target) for target in patched]


def attention_spec(seam, config, **options):
    return seam.mla_layer_spec(config, **options).submodules.self_attention


def native_spec(seam, config):
    from megatron.core.transformer.multi_latent_attention import MLASelfAttention

    return dataclasses.replace(attention_spec(seam, config), module=MLASelfAttention)


def build_attention(spec, config, **kwargs):
    from megatron.core.transformer.spec_utils import build_module

    seed()
    return build_module(spec, config=config, layer_number=kwargs.pop("layer_number", 1), **kwargs)


def hidden_states(config) -> torch.Tensor:
    return torch.randn(TOKENS, BATCH, config.hidden_size, generator=torch.Generator().manual_seed(1))


def build_module_with_pp_layer_offset(seam, config) -> dict:
    attention = build_attention(attention_spec(seam, config), config, pp_layer_offset=0)
    return {
        "type": type(attention).__name__,
        "native": outcome(lambda: build_attention(native_spec(seam, config), config, pp_layer_offset=0)),
    }


def external_rope(seam, config) -> dict:
    attention = build_attention(attention_spec(seam, config), config)
    rope = torch.randn(TOKENS, 1, 1, config.qk_pos_emb_head_dim)
    external = dict(
        rotary_pos_emb=(rope, rope),
        rotary_pos_cos=rope.cos(),
        rotary_pos_sin=rope.sin(),
        rotary_pos_cos_sin=torch.cat([rope.cos(), rope.sin()], dim=-1),
    )
    without = attention(hidden_states(config), causal_mask())
    with_rope = attention(hidden_states(config), causal_mask(), **external)
    native = build_attention(native_spec(seam, config), config)
    return {
        "identical": _identical(without, with_rope),
        "native": outcome(lambda: native(hidden_states(config), causal_mask(), rotary_pos_emb=(rope, rope))),
    }


def adapter_versus_native(seam, config) -> dict:
    adapter = build_attention(attention_spec(seam, config), config)
    native = build_attention(native_spec(seam, config), config)
    native.load_state_dict(adapter.state_dict())
    outputs, gradients = [], []
    for module in (adapter, native):
        inputs = hidden_states(config).requires_grad_()
        output, bias = module(inputs, causal_mask())
        (output.sum() + (bias.sum() if bias is not None else 0)).backward()
        outputs.append((output, bias))
        gradients.append([inputs.grad, *(parameter.grad for parameter in module.parameters())])
    return {
        "same_state_dict_keys": list(adapter.state_dict()) == list(native.state_dict()),
        "outputs_identical": _identical(*outputs),
        "gradients_identical": _identical(*gradients),
    }


def _identical(first, second) -> bool:
    if isinstance(first, tuple | list):
        return len(first) == len(second) and all(map(_identical, first, second))
    if isinstance(first, torch.Tensor):
        return isinstance(second, torch.Tensor) and torch.equal(first, second)
    return first is second


def block_spec(seam, config) -> dict:
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_decoder_block_spec
    from megatron.core.transformer.multi_latent_attention import MLASelfAttention

    block = get_gpt_decoder_block_spec(config=config, use_transformer_engine=False)
    adapted = seam.adapt_mla_spec(block)
    pairs = list(zip(block.layer_specs, adapted.layer_specs, strict=True))
    return {
        "layers": len(pairs),
        "adapted": all(new.submodules.self_attention.module is seam.MLASelfAttentionAdapter for _, new in pairs),
        "original_untouched": all(old.submodules.self_attention.module is MLASelfAttention for old, _ in pairs),
        "params_kept": all(
            new.submodules.self_attention.params == old.submodules.self_attention.params for old, new in pairs
        ),
        "core_attention": sorted(
            {new.submodules.self_attention.submodules.core_attention.__name__ for _, new in pairs}
        ),
        "other_submodules_kept": all(
            _without_core_attention(new.submodules.self_attention.submodules)
            == _without_core_attention(old.submodules.self_attention.submodules)
            and new.submodules.mlp is old.submodules.mlp
            for old, new in pairs
        ),
    }


def _without_core_attention(submodules) -> dict:
    return {k: v for k, v in vars(submodules).items() if k != "core_attention"}


def unfused_spec(seam, config):
    return seam.mla_layer_spec(config, core_attention="unfused")


def adapted_local_spec(seam, config):
    """The README's path: megatron's own local MLA layer spec, put behind the adapters."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    return seam.adapt_mla_spec(get_gpt_layer_local_spec(multi_latent_attention=True, qk_layernorm=config.qk_layernorm))


def hybrid(seam, config) -> dict | str:
    """HybridModel through the seam, and its equivalence with GPTModel ("*-" * N, GPT weights mapped); where the
    release has no HybridModel, what mla_hybrid_stack_spec raises."""
    if not seam.hybrid.has_hybrid_model():
        return outcome(lambda: seam.mla_hybrid_stack_spec(config))
    gpt = build_gpt(seam, config)
    optimizer = torch.optim.SGD(gpt.parameters(), lr=0.1)
    gpt(**batch()).mean().backward()
    optimizer.step()  # weights no fresh hybrid model has, so only the mapping can make the losses agree
    gpt.zero_grad()
    fresh = build_hybrid(seam, config)
    fresh_loss = fresh(**batch()).mean().item()
    mapped = build_hybrid(seam, config)
    mapped.load_state_dict(seam.hybrid_state_dict_from_gpt(gpt.state_dict()), strict=True)
    plus = build_hybrid(seam, config, "+-" * config.num_layers)
    plus.load_state_dict(seam.hybrid_state_dict_from_gpt(gpt.state_dict()), strict=True)
    return {
        "training": train_one_step(build_hybrid(seam, config)),
        "layers": [type(layer).__name__ for layer in fresh.decoder.layers],
        "attention": type(fresh.decoder.layers[0].self_attention).__name__,
        "core_attention": type(fresh.decoder.layers[0].self_attention.core_attention).__name__,
        "equivalence": {
            "gpt": train_one_step(gpt),
            "hybrid": train_one_step(mapped),
            "hybrid_mla_slot": train_one_step(plus),
            "fresh_hybrid_loss": fresh_loss,
        },
        "mamba_in_local_pattern": error_message(lambda: build_hybrid(seam, config, "*-M")),
        "te_backend": outcome(lambda: seam.mla_hybrid_stack_spec(config, backend="te")),
    }


def config_outcomes(seam) -> dict:
    def config(**changes):
        return lambda: seam.mla_config(**{**MODEL_FIELDS, **changes})

    def config_without(name, **changes):
        return lambda: seam.mla_config(**{k: v for k, v in MODEL_FIELDS.items() if k != name}, **changes)

    built = seam.mla_config(**MODEL_FIELDS)
    return {
        "max_position_field": next(
            name
            for name in ("original_max_position_embeddings", "max_position_embeddings")
            if getattr(built, name, None) == TOKENS
        ),
        "older_max_position_name": outcome(
            config_without("original_max_position_embeddings", max_position_embeddings=TOKENS)
        ),
        "both_max_position_names": outcome(config(max_position_embeddings=TOKENS)),
        "cache_mla_latents_default": outcome(config(cache_mla_latents=False)),
        "cache_mla_latents_on": outcome(config(cache_mla_latents=True)),
        "mla_down_proj_fusion_default": outcome(config(mla_down_proj_fusion=False)),
        "mla_down_proj_fusion_on": outcome(config(mla_down_proj_fusion=True)),
        "unknown_field": outcome(config(no_such_field=1)),
        "mscale_missing": outcome(config_without("mscale")),
        "mscales_differ_with_yarn_scaling": outcome(config(mscale=1.0, mscale_all_dim=0.5)),
        "mscales_differ_without_scaling": outcome(config(mscale=1.0, mscale_all_dim=0.5, rotary_scaling_factor=1.0)),
        # Fields every release's MLA ignores (main's MuP sets a softmax_scale).
        "softmax_scale_set": error_message(config(softmax_scale=0.5)),
        "use_mup": outcome(config(use_mup=True)),
        "add_qkv_bias_set": outcome(config(add_qkv_bias=True)),
        "no_rope_freq_set": outcome(config(no_rope_freq=2)),
        "rotary_percent_with_yarn": outcome(config(rotary_percent=0.5)),
        "qk_l2_norm_set": outcome(config(qk_l2_norm=True)),
        "rotary_percent_with_rope": outcome(config(rope_type="rope", rotary_percent=0.5)),
    }


def release_table(seam) -> dict:
    """The release table's rows, next to what this release does."""
    from megatron.core.transformer.transformer_config import MLATransformerConfig

    from seamfix.runtime.megatron.releases import installed_release

    fields = {name: MODEL_FIELDS[name] for name in ("num_layers", "hidden_size", "num_attention_heads")}
    config = MLATransformerConfig(**fields, rotary_scaling_factor=4.0, mscale=1.0, mscale_all_dim=0.5)
    attention = build_attention(native_spec(seam, config), config)
    q_head_dim = config.qk_head_dim + config.qk_pos_emb_head_dim
    scales = {
        field: (0.1 * getattr(config, field) * math.log(4.0) + 1.0) ** 2 / math.sqrt(q_head_dim)
        for field in ("mscale", "mscale_all_dim")
    }
    row = installed_release()
    return {
        "softmax_mscale_field": next(f for f, s in scales.items() if math.isclose(s, attention.softmax_scale)),
        "table_softmax_mscale_field": row.softmax_mscale_field,
        "table_mla_claims_te_without_te": row.mla_claims_te_without_te,
    }


@contextlib.contextmanager
def captured_warnings(logger_name: str):
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def pp_layer_offset(seam, config) -> dict:
    spec = attention_spec(seam, config)
    with captured_warnings("seamfix.runtime.megatron.attention_adapter") as messages:
        layers = [build_attention(spec, config, layer_number=3, pp_layer_offset=2) for _ in range(2)]
        build_attention(spec, config, layer_number=1, pp_layer_offset=0)
    hook = hasattr(seam.MLASelfAttentionAdapter._seamfix_native, "_get_pp_layer_offset_for_inference")
    return {
        "warnings": messages,
        "kv_cache_offset": layers[0]._get_pp_layer_offset_for_inference() if hook else None,
        "kv_cache_offset_when_not_given": build_attention(spec, config)._get_pp_layer_offset_for_inference()
        if hook
        else None,
    }


def release_process_groups():
    """The installed release's own process-group collection (0.13+), None before it had one."""
    try:
        from megatron.core import process_groups_config
    except ImportError:
        return None
    for name in ("ProcessGroupCollection", "ModelCommProcessGroups"):
        collection = getattr(process_groups_config, name, None)
        if hasattr(collection, "use_mpu_process_groups"):
            return collection.use_mpu_process_groups()
    return None


def process_groups(seam, config) -> dict:
    groups = release_process_groups()
    release_has_process_groups = groups is not None
    groups = groups if release_has_process_groups else object()
    spec = attention_spec(seam, config)
    with captured_warnings("seamfix.runtime.megatron.attention_adapter") as messages:
        attentions = [build_attention(spec, config, pg_collection=groups) for _ in range(2)]
        by_old_name = build_attention(spec, config, model_comm_pgs=groups)
    return {
        "release_has_process_groups": release_has_process_groups,
        "received": sorted(
            name for name in ("pg_collection", "model_comm_pgs") if getattr(attentions[0], name, None) is groups
        ),
        "received_under_old_name": sorted(
            name for name in ("pg_collection", "model_comm_pgs") if getattr(by_old_name, name, None) is groups
        ),
        "warnings": messages,
        "both_names": outcome(lambda: build_attention(spec, config, pg_collection=groups, model_comm_pgs=groups)),
    }


def layer_spec_options(seam, config) -> dict:
    return {
        "qk_l2_norm_false": outcome(lambda: seam.mla_layer_spec(config, qk_l2_norm=False)),
        "unknown_none": outcome(lambda: seam.mla_layer_spec(config, no_such_option=None)),
        "unknown_set": outcome(lambda: seam.mla_layer_spec(config, no_such_option=1)),
        "te_backend": outcome(lambda: seam.mla_layer_spec(config, backend="te")),
        "bad_backend": outcome(lambda: seam.mla_layer_spec(config, backend="cuda")),
    }


def core_attention_default_scale(seam, config) -> dict:
    from megatron.core.transformer.enums import AttnMaskType

    attention = seam.MLADotProductAttention(
        config, layer_number=1, attn_mask_type=AttnMaskType.causal, attention_type="self", k_channels=24, v_channels=12
    )
    return {
        "softmax_scale": attention.softmax_scale,
        "expected": 1.0 / math.sqrt(24),
        "output_width": attention.hidden_size_per_partition,
        "caller_kv_channels": config.kv_channels,
    }


def absorption(seam) -> dict | str:
    """What ``prepare_for_absorption`` (cache_mla_latents, 0.14+) does to a local-spec MLA layer: through the
    adapter, the up-projection weight viewed per head; natively, what it raises. 'absent' before 0.14."""
    from megatron.core.transformer.multi_latent_attention import MLASelfAttention

    if not hasattr(MLASelfAttention, "prepare_for_absorption"):
        return "absent"
    config = seam.mla_config(**MODEL_FIELDS, cache_mla_latents=True)
    adapter = build_attention(attention_spec(seam, config), config)
    weight = adapter.linear_kv_up_proj.weight.detach().clone()
    norm = adapter.kv_layernorm
    adapter.prepare_for_absorption()
    split = weight.view(config.num_attention_heads, config.qk_head_dim + config.v_head_dim, config.kv_lora_rank)
    native = build_attention(native_spec(seam, config), config)
    return {
        "up_k_weight": torch.equal(adapter.up_k_weight, split[:, : config.qk_head_dim]),
        "up_v_weight": torch.equal(adapter.up_v_weight, split[:, config.qk_head_dim :]),
        "kv_layernorm_kept": adapter.kv_layernorm is norm,
        "up_projection_moved": not hasattr(adapter, "linear_kv_up_proj")
        and torch.equal(adapter.linear_kv_up_proj_linear.weight, weight),
        "native": outcome(native.prepare_for_absorption),
    }


FUSED_CASES = {
    # name: (the layer's mask type, the mask type passed to forward, the mask, the mask the reference gets)
    "causal_mask_tensor": ("causal", None, "causal", "causal"),
    "causal_without_tensor": ("causal", None, None, "causal"),
    "causal_and_padding": ("causal", None, "causal_padding", "causal_padding"),
    "padding": ("padding", None, "padding", "padding"),
    "padding_with_hidden_rows": ("padding", None, "hidden_rows", "hidden_rows"),
    "no_mask": ("no_mask", None, None, None),
    "causal_given_to_forward": ("padding", "causal", None, "causal"),
}
"""Cases of ``fused_core_attention``; the reference (the local path) reads its mask type from the layer alone."""


def fused_core_attention(seam, config) -> dict:
    """``MLAScaledDotProductAttention`` against ``MLADotProductAttention``: the largest difference of output and
    of the query, key and value gradients for each mask case, and what the fused path refuses."""
    from megatron.core.transformer.enums import AttnMaskType

    heads, k_width, v_width = config.num_attention_heads, 24, 12
    masks = {None: None, "causal": causal_mask()}
    masks["padding"] = torch.zeros(BATCH, 1, 1, TOKENS, dtype=torch.bool)
    masks["padding"][0, ..., -5:] = True  # the first sequence has 5 padding keys
    masks["causal_padding"] = masks["causal"] | masks["padding"]
    masks["hidden_rows"] = masks["padding"].expand(BATCH, 1, TOKENS, TOKENS).clone()
    masks["hidden_rows"][1, :, 3] = True  # query 3 of the second sequence sees no key

    def build(cls, mask_type, **changes):
        layer_config = dataclasses.replace(config, **changes) if changes else config
        return cls(layer_config, layer_number=3, attn_mask_type=AttnMaskType[mask_type], attention_type="self",
                   k_channels=k_width, v_channels=v_width)  # fmt: skip

    def run(module, mask, mask_type=None):
        inputs = [
            torch.randn(TOKENS, BATCH, heads, width, generator=torch.Generator().manual_seed(seed)).requires_grad_()
            for seed, width in ((3, k_width), (4, k_width), (5, v_width))
        ]
        kwargs = {"attn_mask_type": AttnMaskType[mask_type]} if mask_type else {}
        output = module(*inputs, mask, **kwargs)
        (output * torch.randn(output.shape, generator=torch.Generator().manual_seed(6))).sum().backward()
        return [output, *(tensor.grad for tensor in inputs)]

    def largest_difference(first, second) -> float:
        return max(float((a - b).abs().max()) for a, b in zip(first, second, strict=True))

    differences = {}
    for name, (layer_type, forward_type, mask, reference_mask) in FUSED_CASES.items():
        fused = run(build(seam.MLAScaledDotProductAttention, layer_type), masks[mask], forward_type)
        reference_type = forward_type or layer_type
        differences[name] = largest_difference(
            fused, run(build(seam.MLADotProductAttention, reference_type), masks[reference_mask])
        )
    scaled = {"apply_query_key_layer_scaling": True}
    differences["query_key_layer_scaling"] = largest_difference(
        run(build(seam.MLAScaledDotProductAttention, "causal", **scaled), masks["causal"]),
        run(build(seam.MLADotProductAttention, "causal", **scaled), masks["causal"]),
    )
    dropout = build(seam.MLAScaledDotProductAttention, "causal", attention_dropout=0.5)
    with_dropout = [run(dropout, masks["causal"])[0] for _ in range(2)]
    dropout.eval()
    evaluated = run(dropout, masks["causal"])[0]
    fused = build(seam.MLAScaledDotProductAttention, "causal")
    return {
        "largest_difference": differences,
        "dropout_changes_the_output": not torch.equal(with_dropout[0], with_dropout[1]),
        "no_dropout_in_eval": largest_difference([evaluated], run(fused, masks["causal"])[:1]),
        "packed_sequences": packed_sequences(seam, build, largest_difference, heads, k_width, v_width),
        "float_mask": outcome(lambda: fused(*run_inputs(heads, k_width, v_width), masks["padding"].float())),
        "layer_spec_core_attention": {
            choice: attention_spec(seam, config, core_attention=choice).submodules.core_attention.__name__
            for choice in ("fused", "unfused")
        },
        "bad_choice": outcome(lambda: seam.mla_layer_spec(config, core_attention="flash")),
    }


def packed_sequences(seam, build, largest_difference, heads: int, k_width: int, v_width: int) -> dict:
    """Three sequences packed (THD, the second with 2 tokens of padding after it) against the local path run on
    each alone, causal and not (where nothing but the offsets keeps a sequence's queries off its padding): the
    largest difference of the outputs and the input gradients over the real tokens, per mask type."""
    from megatron.core.packed_seq_params import PackedSeqParams

    lengths, padded = [5, 7, 4], [5, 9, 4]
    starts, padded_starts = ([0, *torch.tensor(counts).cumsum(0).tolist()] for counts in (lengths, padded))
    params = PackedSeqParams(
        qkv_format="thd", cu_seqlens_q=torch.tensor(starts, dtype=torch.int32),
        cu_seqlens_kv=torch.tensor(starts, dtype=torch.int32), max_seqlen_q=9, max_seqlen_kv=9,
        cu_seqlens_q_padded=torch.tensor(padded_starts, dtype=torch.int32),
        cu_seqlens_kv_padded=torch.tensor(padded_starts, dtype=torch.int32),
    )  # fmt: skip
    real = torch.cat(
        [torch.arange(start, start + length) for start, length in zip(padded_starts[:-1], lengths, strict=True)]
    )
    differences = {}
    for mask_type in ("causal", "padding"):
        inputs = [
            torch.randn(padded_starts[-1], heads, width, generator=torch.Generator().manual_seed(seed))
            for seed, width in ((7, k_width), (8, k_width), (9, v_width))
        ]
        for tensor in inputs:
            tensor[padded_starts[2] - 2 : padded_starts[2]] = 100.0  # the padding's rows: garbage
            tensor.requires_grad_()
        output = build(seam.MLAScaledDotProductAttention, mask_type)(*inputs, None, packed_seq_params=params)
        output[real].sum().backward()
        reference = build(seam.MLADotProductAttention, mask_type)
        differences[mask_type] = 0.0
        for start, length in zip(padded_starts[:-1], lengths, strict=True):
            pieces = [tensor.detach()[start : start + length, None].requires_grad_() for tensor in inputs]
            mask = torch.ones(1, 1, length, length, dtype=torch.bool).triu(1) if mask_type == "causal" else None
            expected = reference(*pieces, mask)
            expected.sum().backward()
            got = [output[start : start + length], *(tensor.grad[start : start + length] for tensor in inputs)]
            difference = largest_difference(got, [expected[:, 0], *(piece.grad[:, 0] for piece in pieces)])
            differences[mask_type] = max(differences[mask_type], difference)
    bad_offsets = {  # each refused by name
        "past_the_tokens": {"cu_seqlens_q": torch.tensor([0, 5, 12, 20], dtype=torch.int32)},
        "float": {"cu_seqlens_q": torch.tensor([0.0, 5, 12, 16])},
        "padding_shorter_than_a_sequence": {"cu_seqlens_q_padded": torch.tensor([0, 5, 10, 18], dtype=torch.int32)},
    }
    causal = build(seam.MLAScaledDotProductAttention, "causal")
    refused = {
        name: error_message(lambda changes=changes: causal(*inputs, None, packed_seq_params=dataclasses.replace(
            params, **changes)))
        for name, changes in bad_offsets.items()
    }  # fmt: skip
    sbhd = build(seam.MLAScaledDotProductAttention, "causal")
    sbhd.train()
    sbhd.attention_dropout.p = 0.5
    return {
        "largest_difference": differences,
        "output_shape": list(output.shape),
        "with_dropout": outcome(lambda: sbhd(*inputs, None, packed_seq_params=params)),
        "bad_offsets": refused,
    }


def packed_gpt_forward(seam, config) -> None:
    """A GPT's forward over three sequences packed in the 'thd' format."""
    from megatron.core.packed_seq_params import PackedSeqParams

    lengths = [5, 3, 8]
    starts = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    params = PackedSeqParams(qkv_format="thd", cu_seqlens_q=starts, cu_seqlens_kv=starts, max_seqlen_q=8,
                             max_seqlen_kv=8)  # fmt: skip
    positions = torch.cat([torch.arange(length) for length in lengths])[None]
    with torch.no_grad():
        build_gpt(seam, config).eval()(
            input_ids=batch()["input_ids"][:1], position_ids=positions, attention_mask=None, packed_seq_params=params
        )


def run_inputs(heads: int, k_width: int, v_width: int) -> list[torch.Tensor]:
    return [torch.zeros(TOKENS, BATCH, heads, width) for width in (k_width, k_width, v_width)]


if __name__ == "__main__":
    main(*sys.argv[1:])
