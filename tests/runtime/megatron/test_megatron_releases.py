"""seamfix.runtime.megatron on every megatron-core release from 0.11.0 to 0.16.1 and on Megatron-Core main (0.20),
on the CPU with gloo."""

from __future__ import annotations

import math

import pytest
from megatron_releases import RELEASES, VERSIONS, minor, worker, worker_output

pytestmark = pytest.mark.slow
per_release = pytest.mark.parametrize("release", RELEASES)
with_hybrid_model = [release for release in RELEASES if minor(release) >= (0, 20)]


@per_release
def test_a_tiny_gpt_with_mla_trains_one_step_with_finite_gradients(release, release_checks):
    checks = release_checks(release)
    assert checks["version"] == VERSIONS[release]
    for run in ("training", "training_with_attention_dropout", "training_without_q_lora"):
        step = checks[run]
        assert step["gradients_finite"] and step["gradient_norm"] > 0
        assert step["parameters_without_gradient"] == 0
        assert math.isfinite(step["loss"]) and step["loss_after_step"] < step["loss"]


def test_one_seed_gives_the_same_loss_on_every_release(release_checks):
    runs = [release_checks(release) for release in RELEASES]
    for run in ("training", "training_with_attention_dropout", "training_without_q_lora"):
        assert len({(r[run]["loss"], r[run]["loss_after_step"], r[run]["parameters"]) for r in runs}) == 1
    # Attention dropout draws from the RNG tracker cpu_mode provides: it must change the loss.
    assert runs[0]["training"]["loss"] != runs[0]["training_with_attention_dropout"]["loss"]


@per_release
def test_build_module_takes_pp_layer_offset_through_the_adapter(release, release_checks):
    built = release_checks(release)["build_module"]
    native = "ok" if minor(release) >= (0, 18) else "TypeError"  # 0.18 takes pp_layer_offset itself
    assert built == {"type": "MLASelfAttentionAdapter", "native": native}


@per_release
def test_an_external_rotary_embedding_changes_nothing(release, release_checks):
    assert release_checks(release)["external_rope"] == {"identical": True, "native": "AssertionError"}


@per_release
def test_the_adapter_computes_bit_for_bit_what_the_native_class_does(release, release_checks):
    assert release_checks(release)["adapter_versus_native"] == {
        "same_state_dict_keys": True,
        "outputs_identical": True,
        "gradients_identical": True,
    }


@per_release
def test_adapt_mla_spec_swaps_the_attention_of_a_whole_block_spec(release, release_checks):
    assert release_checks(release)["block_spec"] == {
        "layers": 2,
        "adapted": True,
        "original_untouched": True,
        "params_kept": True,
        "core_attention": ["MLAScaledDotProductAttention"],
        "other_submodules_kept": True,
    }


@per_release
def test_adapt_mla_spec_makes_megatrons_own_local_mla_spec_train(release, release_checks):
    checks = release_checks(release)  # get_gpt_layer_local_spec(multi_latent_attention=True) through the adapters
    assert checks["adapted_local_spec"] == checks["training"]


@per_release
def test_mla_config_takes_the_newest_field_names(release, release_checks):
    before_0_14 = minor(release) < (0, 14)
    assert release_checks(release)["config"] == {
        "max_position_field": "max_position_embeddings" if before_0_14 else "original_max_position_embeddings",
        "older_max_position_name": "ok" if before_0_14 else "TypeError",
        "both_max_position_names": "TypeError",
        "cache_mla_latents_default": "ok",
        "cache_mla_latents_on": "TypeError" if before_0_14 else "ok",
        "mla_down_proj_fusion_default": "ok",
        "mla_down_proj_fusion_on": "TypeError" if minor(release) < (0, 17) else "ok",
        "unknown_field": "TypeError",
        "mscale_missing": "TypeError",
        "mscales_differ_with_yarn_scaling": "ValueError" if before_0_14 else "ok",
        "mscales_differ_without_scaling": "ok",
        "softmax_scale_set": f"ValueError: megatron-core {VERSIONS[release]}'s MLA does not read softmax_scale=0.5: it "
        "scales its softmax by mscale**2 / sqrt(qk_head_dim + qk_pos_emb_head_dim); leave softmax_scale at None",
        "use_mup": "ValueError" if minor(release) >= (0, 20) else "TypeError",
        "add_qkv_bias_set": "ValueError",
        "no_rope_freq_set": "TypeError" if minor(release) < (0, 13) else "ValueError",
        "rotary_percent_with_yarn": "ValueError",
        "qk_l2_norm_set": "TypeError" if minor(release) < (0, 16) else "ValueError",
        "rotary_percent_with_rope": "ok",
    }


@per_release
def test_the_release_table_row_is_what_the_release_does(release, release_checks):
    checks = release_checks(release)
    table = checks["release_table"]
    assert table["softmax_mscale_field"] == table["table_softmax_mscale_field"]
    assert (checks["te_flag_at_import"] is True) == table["table_mla_claims_te_without_te"]
    assert checks["te_flag_after_build"] is not True  # no TransformerEngine here


@per_release
def test_a_pp_layer_offset_reaches_the_kv_cache_or_is_reported_once(release, release_checks):
    offset = release_checks(release)["pp_layer_offset"]
    if minor(release) >= (0, 16):  # the attention derives its KV-cache layer offset; the adapter's wins
        assert offset == {"warnings": [], "kv_cache_offset": 2, "kv_cache_offset_when_not_given": 0}
    else:  # the KV cache is indexed by the global layer number; two layers with offset 2, one with 0
        assert offset["kv_cache_offset"] is None
        assert len(offset["warnings"]) == 1 and "pp_layer_offset=2 is not used" in offset["warnings"][0]


@per_release
def test_process_groups_reach_the_release_under_its_name(release, release_checks):
    groups = release_checks(release)["process_groups"]
    assert groups["both_names"] == "TypeError"
    if minor(release) < (0, 13):
        assert groups["received"] == groups["received_under_old_name"] == []
        assert len(groups["warnings"]) == 1 and "takes no process groups" in groups["warnings"][0]
    else:
        name = "model_comm_pgs" if minor(release) < (0, 15) else "pg_collection"
        assert groups["received"] == groups["received_under_old_name"] == [name]
        assert groups["warnings"] == []


@per_release
def test_qk_layernorm_without_q_lora_is_refused_only_where_the_local_backend_cannot_build_it(release, release_checks):
    message = release_checks(release)["query_norm_without_q_lora"]
    if minor(release) >= (0, 20):
        assert message.startswith("ValueError: megatron-core 0.20.0 builds qk_layernorm without q_lora_rank as a fused")
    else:
        assert message == "ok"


@per_release
def test_mla_layer_spec_options_are_checked_against_the_release_builder(release, release_checks):
    assert release_checks(release)["layer_spec_options"] == {
        "qk_l2_norm_false": "TypeError" if minor(release) < (0, 12) else "ok",
        "unknown_none": "ok",
        "unknown_set": "TypeError",
        "te_backend": "ImportError",
        "bad_backend": "ValueError",
    }


@per_release
def test_the_local_core_attention_sizes_keys_and_values_apart(release, release_checks):
    scale = release_checks(release)["core_attention_default_scale"]
    assert scale["softmax_scale"] == pytest.approx(scale["expected"], rel=1e-12)
    assert scale["output_width"] == 4 * 12  # heads x v_channels, not x kv_channels (16)
    assert scale["caller_kv_channels"] == 16


@per_release
def test_the_fused_core_attention_computes_what_the_local_path_does(release, release_checks):
    fused = release_checks(release)["fused_core_attention"]
    for case, difference in fused["largest_difference"].items():  # outputs and query, key, value gradients
        assert difference < 1e-5, case
    assert fused["dropout_changes_the_output"] is True
    assert fused["no_dropout_in_eval"] < 1e-6
    assert (fused["float_mask"], fused["bad_choice"]) == ("TypeError", "ValueError")
    packed = fused["packed_sequences"]  # THD, which the local path refuses, against it on each sequence alone
    # Not causal, the offsets alone keep each sequence's queries off its padding (they read it: 101 off).
    assert packed["largest_difference"] == {"causal": pytest.approx(0, abs=1e-5), "padding": pytest.approx(0, abs=1e-5)}
    assert packed["output_shape"] == [18, 4 * 12] and packed["with_dropout"] == "NotImplementedError"
    assert packed["bad_offsets"] == {
        "past_the_tokens": "KernelInputError: cu_seqlens_q must start at 0, never decrease and end inside the 18 "
        "tokens, got [0, 5, 12, 20]",
        "float": "KernelInputError: cu_seqlens_q must be int32 or int64, got torch.float32",
        "padding_shorter_than_a_sequence": "KernelInputError: cu_seqlens_q_padded must hold each sequence of "
        "cu_seqlens_q, got [0, 5, 10, 18] for [0, 5, 12, 16]",
    }
    assert fused["layer_spec_core_attention"] == {
        "fused": "MLAScaledDotProductAttention",
        "unfused": "MLADotProductAttention",
    }


@per_release
def test_a_gpt_trains_to_the_same_loss_with_the_fused_and_the_unfused_core_attention(release, release_checks):
    checks = release_checks(release)
    fused, unfused = checks["training"], checks["training_unfused"]
    for value in ("loss", "loss_after_step", "gradient_norm"):
        assert fused[value] == pytest.approx(unfused[value], rel=1e-6)
    assert checks["training_unfused_without_mask"] == unfused  # the causal mask the local softmax makes itself


@per_release
def test_a_one_head_gpt_trains_with_the_fused_core_attention(release, release_checks):
    # Third adversarial round: 0.11's output projection failed in backward on the fused path's non-contiguous
    # output ("view size is not compatible with input tensor's size and stride").
    one_head = release_checks(release)["training_with_one_head"]
    assert isinstance(one_head["fused"], dict), one_head["fused"]
    for value in ("loss", "loss_after_step", "gradient_norm"):
        assert one_head["fused"][value] == pytest.approx(one_head["unfused"][value], rel=1e-6)


@per_release
def test_packed_values_wider_than_queries_run_or_are_refused_by_name(release, release_checks):
    message = release_checks(release)["packed_values_wider_than_queries"]
    if minor(release) >= (0, 20):  # before: a shape error in the output projection
        assert message.startswith("NotImplementedError: megatron-core 0.20.0's MLA pads values to the query width")
        assert "v_head_dim (32) exceeds qk_head_dim + qk_pos_emb_head_dim (24)" in message
    elif minor(release) >= (0, 13):
        assert message == "ok"
    else:  # 0.11-0.12's MLA cannot apply its RoPE to packed sequences (upstream, before the core attention)
        assert message.startswith("RuntimeError: Sizes of tensors must match")


@per_release
def test_grouped_keys_are_refused_when_the_layer_is_built(release, release_checks):
    message = release_checks(release)["grouped_query_heads"]  # before: a shape error at the first forward
    assert message.startswith("ValueError: MLA gives each of the 4 attention heads its own key and value: ")
    assert "num_query_groups=2" in message


@per_release
def test_an_odd_rope_width_is_refused_when_the_layer_is_built(release, release_checks):
    # Second adversarial round: Megatron's RoPE failed with shape errors naming no field (3 and 5 wide), or ran.
    for width, message in release_checks(release)["odd_rope_width"].items():
        assert message.startswith(
            f"ValueError: qk_pos_emb_head_dim={width} must be even: RoPE rotates the key and query channels in pairs"
        )


@per_release
def test_a_field_mla_does_not_read_is_refused_when_the_layer_is_built(release, release_checks):
    # Third adversarial round: add_qkv_bias, no_rope_freq and softmax_scale built models that ignored them.
    assert release_checks(release)["ignored_field_in_a_megatron_config"].startswith(
        f"ValueError: megatron-core {VERSIONS[release]}'s MLA does not read add_qkv_bias=True: its query and "
        "key-value projections have no bias; leave add_qkv_bias at False"
    )


@per_release
def test_degenerate_widths_are_refused_by_name_when_the_layer_is_built(release, release_checks):
    # Third adversarial round: zero widths built layers without output or with empty latents, silently.
    messages = release_checks(release)["degenerate_widths"]
    for setting, expected in {
        "v_head_dim=0": "ValueError: v_head_dim=0 must be positive",
        "kv_lora_rank=0": "ValueError: kv_lora_rank=0 must be positive",
        "q_lora_rank=0": "ValueError: q_lora_rank=0 must be positive",
        "qk_head_dim=-1": "ValueError: qk_head_dim=-1 must not be negative",
    }.items():
        assert messages[setting].startswith(expected)


@per_release
def test_the_adapter_prepares_a_local_layer_for_absorbed_decode(release, release_checks):
    absorption = release_checks(release)["absorption"]
    if minor(release) < (0, 14):  # no cache_mla_latents
        assert absorption == "absent"
    else:  # megatron splits a TransformerEngine fused norm + linear, which a local layer does not have
        assert absorption.pop("native") in {"TypeError", "AttributeError"}  # TE's function is None, or a stand-in
        assert absorption == {
            "up_k_weight": True,
            "up_v_weight": True,
            "kv_layernorm_kept": True,
            "up_projection_moved": True,
        }


@per_release
def test_cpu_mode_restores_everything_it_patched(release, release_checks):
    assert release_checks(release)["cpu_mode_restored"] is True


@per_release
def test_tensor_parallel_2_on_two_gloo_processes_matches_one_process(release, release_checks, tmp_path):
    checks = release_checks(release)
    single = {"gpt": checks["training"]}
    if release in with_hybrid_model:
        single["hybrid"] = checks["hybrid"]["training"]
    rendezvous = (tmp_path / "rendezvous").as_uri()
    ranks = [worker(release, "train", str(rank), "2", rendezvous) for rank in range(2)]
    outputs = [worker_output(rank) for rank in ranks]
    for output in outputs:
        assert output.keys() == single.keys()
        for model, step in output.items():
            assert step["gradients_finite"] and step["parameters_without_gradient"] == 0
            assert step["parameters"] < single[model]["parameters"]  # each rank holds a shard
            for value in ("loss", "loss_after_step"):
                assert step[value] == pytest.approx(single[model][value], rel=1e-5, abs=1e-6)
    for model in single:
        assert outputs[0][model]["loss"] == outputs[1][model]["loss"]


@pytest.mark.parametrize("release", with_hybrid_model)
def test_an_mla_hybrid_model_builds_through_the_seam_and_trains_a_step(release, release_checks):
    hybrid = release_checks(release)["hybrid"]
    assert hybrid["layers"] == ["TransformerLayer", "MLPLayer"] * 2
    assert hybrid["attention"] == "MLASelfAttentionAdapter"
    assert hybrid["core_attention"] == "MLAScaledDotProductAttention"
    step = hybrid["training"]
    assert step["gradients_finite"] and step["gradient_norm"] > 0 and step["parameters_without_gradient"] == 0
    assert math.isfinite(step["loss"]) and step["loss_after_step"] < step["loss"]


@pytest.mark.parametrize("release", with_hybrid_model)
def test_gpt_weights_mapped_onto_star_dash_hybrid_layers_give_the_same_loss(release, release_checks):
    equivalence = release_checks(release)["hybrid"]["equivalence"]
    gpt = equivalence["gpt"]
    for hybrid in ("hybrid", "hybrid_mla_slot"):  # pattern "*-" * N, and "+-" * N (the MLA slot)
        assert equivalence[hybrid]["parameters"] == gpt["parameters"]
        for value in ("loss", "loss_after_step", "gradient_norm"):
            assert equivalence[hybrid][value] == pytest.approx(gpt[value], rel=1e-6)
    assert equivalence["fresh_hybrid_loss"] != pytest.approx(gpt["loss"], rel=1e-3)  # the mapping did it


@pytest.mark.parametrize("release", with_hybrid_model)
def test_the_local_hybrid_stack_refuses_layers_it_has_no_module_for(release, release_checks):
    hybrid = release_checks(release)["hybrid"]
    assert hybrid["mamba_in_local_pattern"].startswith("ValueError: mla_hybrid_stack_spec(backend='local') builds")
    assert "'M' layers need backend='te'" in hybrid["mamba_in_local_pattern"]
    assert hybrid["te_backend"] == "ImportError"  # no TransformerEngine here


@pytest.mark.parametrize("release", [release for release in RELEASES if release not in with_hybrid_model])
def test_releases_without_hybrid_model_say_so(release, release_checks):
    assert release_checks(release)["hybrid"] == "NotImplementedError"


@per_release
def test_install_mla_kernels_installs_what_the_release_looks_up(release, release_checks):
    # Second adversarial round: every release got (and logged) all three, where 0.11 calls none of them and
    # 0.12-0.13 decode no cached MLA latents.
    expected = {(0, 11): [], (0, 12): [], (0, 13): ["flash_attn_varlen_func"]}.get(
        minor(release), ["flash_mla_with_kvcache", "get_mla_metadata", "flash_attn_varlen_func"]
    )
    assert release_checks(release)["installed_kernels"] == expected
