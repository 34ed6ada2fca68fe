"""``hybrid_state_dict_from_gpt``'s key mapping (each value is the same object under its hybrid key), and what
``mla_hybrid_stack_spec`` says on a release without ``HybridModel``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # installs megatron-core on first use


def test_each_gpt_layer_becomes_an_attention_layer_and_an_mlp_layer(seam):
    values = {name: object() for name in ("embedding", "q", "norm", "fc1", "fc1_norm", "final", "output", "extra")}
    gpt = {
        "module.embedding.word_embeddings.weight": values["embedding"],
        "module.decoder.layers.0.self_attention.linear_q_proj.weight": values["q"],
        "module.decoder.layers.10.input_layernorm.weight": values["norm"],
        "module.decoder.layers.10.mlp.linear_fc1.weight": values["fc1"],
        "module.decoder.layers.10.mlp.linear_fc1.layer_norm_weight": values["fc1_norm"],  # TE's fused norm
        "module.decoder.layers.3.self_attention.core_attention._extra_state": values["extra"],
        "module.decoder.final_layernorm.weight": values["final"],
        "module.output_layer.weight": values["output"],
    }
    hybrid = seam.hybrid_state_dict_from_gpt(gpt)
    assert hybrid == {
        "module.embedding.word_embeddings.weight": values["embedding"],
        "module.decoder.layers.0.self_attention.linear_q_proj.weight": values["q"],
        "module.decoder.layers.20.input_layernorm.weight": values["norm"],
        "module.decoder.layers.21.mlp.linear_fc1.weight": values["fc1"],
        "module.decoder.layers.21.mlp.linear_fc1.layer_norm_weight": values["fc1_norm"],
        "module.decoder.layers.6.self_attention.core_attention._extra_state": values["extra"],
        "module.decoder.final_norm.weight": values["final"],
        "module.output_layer.weight": values["output"],
    }


def test_a_layer_part_with_no_place_in_a_star_dash_pair_is_refused(seam):
    with pytest.raises(ValueError, match=r"decoder\.layers\.1\.cross_attention\.linear_q\.weight: .*cross_attention"):
        seam.hybrid_state_dict_from_gpt({"decoder.layers.1.cross_attention.linear_q.weight": 0})


def test_releases_without_hybrid_model_say_which_release_and_what_to_use(seam):
    with pytest.raises(NotImplementedError, match=r"megatron-core 0\.16\.1 has no HybridModel .*mla_layer_spec"):
        seam.mla_hybrid_stack_spec(seam.mla_config(num_layers=2, hidden_size=64, num_attention_heads=4, mscale=1.0,
                                                   mscale_all_dim=1.0))  # fmt: skip
