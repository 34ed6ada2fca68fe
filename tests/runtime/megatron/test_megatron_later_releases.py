"""The 0.17-0.19 paths (not on PyPI here), through stand-ins that have exactly those releases' signatures.

The stand-ins subclass the installed ``MLASelfAttention`` (so seamfix sees MLA classes, as it would on 0.17+)
but replace its constructor and forward with the later ones, which record what they receive.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import types

import pytest
import torch

pytestmark = pytest.mark.slow  # installs megatron-core on first use


@pytest.fixture(scope="module")
def megatron(seam):
    from megatron.core.transformer import enums, multi_latent_attention, spec_utils, transformer_layer

    return types.SimpleNamespace(
        AttnMaskType=enums.AttnMaskType,
        MLASelfAttention=multi_latent_attention.MLASelfAttention,
        multi_latent_attention=multi_latent_attention,
        ModuleSpec=spec_utils.ModuleSpec,
        build_module=spec_utils.build_module,
        TransformerLayer=transformer_layer.TransformerLayer,
        TransformerLayerSubmodules=transformer_layer.TransformerLayerSubmodules,
    )


@pytest.fixture(scope="module")
def config(seam):
    return seam.mla_config(num_layers=2, hidden_size=64, num_attention_heads=4, mscale=1.0, mscale_all_dim=1.0)


@pytest.fixture(scope="module")
def stand_ins(megatron):
    padding = megatron.AttnMaskType.padding

    class Recording:
        def forward(
            self,
            hidden_states,
            attention_mask,
            key_value_states=None,
            inference_context=None,
            rotary_pos_emb=None,
            rotary_pos_cos=None,
            rotary_pos_sin=None,
            rotary_pos_cos_sin=None,
            attention_bias=None,
            packed_seq_params=None,
            position_ids=None,
            sequence_len_offset=None,
            *,
            inference_params=None,
        ):
            rope = (rotary_pos_emb, rotary_pos_cos, rotary_pos_sin, rotary_pos_cos_sin)
            assert all(part is None for part in rope), "Rotary position embeddings should not be passed into MLA."
            return hidden_states, {"inference_context": inference_context, "packed_seq_params": packed_seq_params}

    class MLASelfAttention017(Recording, megatron.MLASelfAttention):
        """0.17: pg_collection optional; no pp_layer_offset although TransformerLayer passes one."""

        def __init__(
            self, config, submodules, layer_number, attn_mask_type=padding, cp_comm_type=None, pg_collection=None
        ):
            torch.nn.Module.__init__(self)
            self.received = dict(submodules=submodules, layer_number=layer_number, pg_collection=pg_collection)

        def _get_pp_layer_offset_for_inference(self):
            return 7  # what 0.17 derives from the config

    class MLASelfAttention018(Recording, megatron.MLASelfAttention):
        """0.18+: pp_layer_offset and name arrive."""

        def __init__(
            self,
            config,
            submodules,
            layer_number,
            attn_mask_type=padding,
            cp_comm_type=None,
            pg_collection=None,
            pp_layer_offset=None,
            name=None,
        ):
            torch.nn.Module.__init__(self)
            self.received = dict(pg_collection=pg_collection, pp_layer_offset=pp_layer_offset, name=name)

    @dataclasses.dataclass
    class MLASelfAttentionSubmodules018:
        """0.18: q_layernorm, kv_layernorm and linear_proj required and first."""

        q_layernorm: object
        kv_layernorm: object
        linear_proj: object
        linear_q_proj: object = None
        linear_q_down_proj: object = None
        linear_q_up_proj: object = None
        linear_kv_down_proj: object = None
        linear_kv_up_proj: object = None
        core_attention: object = None

    return types.SimpleNamespace(
        v017=MLASelfAttention017, v018=MLASelfAttention018, Submodules018=MLASelfAttentionSubmodules018
    )


@pytest.fixture
def adapter_warnings(caplog):
    caplog.set_level(logging.WARNING, logger="seamfix.runtime.megatron.attention_adapter")
    return caplog


def test_on_0_18_pp_layer_offset_name_and_groups_pass_through(seam, config, stand_ins, adapter_warnings):
    groups = object()
    adapter = seam.mla_adapter(stand_ins.v018)
    built = adapter(
        config, "submodules", 3, pp_layer_offset=2, name="decoder.layers.2.self_attention", model_comm_pgs=groups
    )
    assert built.received == {"pg_collection": groups, "pp_layer_offset": 2, "name": "decoder.layers.2.self_attention"}
    assert isinstance(built, stand_ins.v018) and adapter_warnings.records == []


def test_on_0_17_a_layer_s_pp_layer_offset_reaches_the_kv_cache_offset(seam, config, stand_ins, megatron):
    spec = megatron.ModuleSpec(module=stand_ins.v017, submodules="submodules")
    with pytest.raises(TypeError, match="pp_layer_offset"):  # the gap 0.17 left: TransformerLayer passes it
        megatron.build_module(spec, config=config, layer_number=3, pp_layer_offset=2)
    adapted = seam.adapt_mla_spec(spec)
    with_offset = megatron.build_module(adapted, config=config, layer_number=3, pp_layer_offset=2)
    without_offset = megatron.build_module(adapted, config=config, layer_number=3)
    assert with_offset.received == {"submodules": "submodules", "layer_number": 3, "pg_collection": None}
    assert with_offset._get_pp_layer_offset_for_inference() == 2
    assert without_offset._get_pp_layer_offset_for_inference() == 7


def test_forward_drops_external_rope_and_passes_everything_else(seam, config, stand_ins):
    native = stand_ins.v017(config, None, 1)
    adapter = seam.mla_adapter(stand_ins.v017)(config, None, 1)
    rope = torch.ones(4, 1, 1, 8)
    external = dict(rotary_pos_emb=(rope, rope), rotary_pos_cos=rope, rotary_pos_sin=rope, rotary_pos_cos_sin=rope)
    with pytest.raises(AssertionError, match="should not be passed"):
        native("hidden", "mask", **external)
    output, passed = adapter("hidden", "mask", **external, inference_context="context", packed_seq_params="packed")
    assert output == "hidden" and passed == {"inference_context": "context", "packed_seq_params": "packed"}


def test_required_submodule_fields_are_kept_as_given(seam, stand_ins, megatron):
    submodules = stand_ins.Submodules018(q_layernorm="q_norm", kv_layernorm="kv_norm", linear_proj="proj")
    attention = megatron.ModuleSpec(
        module=stand_ins.v018, params={"attn_mask_type": megatron.AttnMaskType.causal}, submodules=submodules
    )
    layer = megatron.ModuleSpec(
        module=megatron.TransformerLayer, submodules=megatron.TransformerLayerSubmodules(self_attention=attention)
    )
    adapted = seam.adapt_mla_spec(layer).submodules.self_attention
    assert adapted.module is seam.mla_adapter(stand_ins.v018)
    assert adapted.submodules is submodules and adapted.params == {"attn_mask_type": megatron.AttnMaskType.causal}
    assert layer.submodules.self_attention.module is stand_ins.v018  # the spec passed in is not modified


def test_mla_layer_spec_calls_a_later_builder_by_its_own_signature(seam, config, stand_ins, megatron, monkeypatch):
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    calls = []

    def get_gpt_layer_local_spec(  # 0.16's parameters less moe_use_legacy_grouped_gemm, which 0.17 removed
        num_experts=None,
        moe_grouped_gemm=False,
        qk_layernorm=False,
        multi_latent_attention=False,
        fp8=None,
        normalization=None,
        qk_l2_norm=False,
        use_kitchen=False,
    ):
        calls.append(dict(locals()))
        submodules = stand_ins.Submodules018("q_norm", "kv_norm", "proj", core_attention=DotProductAttention)
        attention = megatron.ModuleSpec(module=stand_ins.v018, submodules=submodules)
        return megatron.ModuleSpec(
            module=megatron.TransformerLayer, submodules=megatron.TransformerLayerSubmodules(self_attention=attention)
        )

    monkeypatch.setitem(seam.spec.LAYER_SPEC_BUILDERS, "local", get_gpt_layer_local_spec)
    attention = seam.mla_layer_spec(config, normalization="LayerNorm").submodules.self_attention
    assert calls[0]["multi_latent_attention"] is True and calls[0]["normalization"] == "LayerNorm"
    assert calls[0]["qk_layernorm"] == config.qk_layernorm and calls[0]["num_experts"] == config.num_moe_experts
    assert attention.module is seam.mla_adapter(stand_ins.v018)
    assert attention.submodules.core_attention is seam.MLAScaledDotProductAttention
    assert (attention.submodules.q_layernorm, attention.submodules.linear_proj) == ("q_norm", "proj")
    with pytest.raises(TypeError, match="moe_use_legacy_grouped_gemm"):
        seam.mla_layer_spec(config, moe_use_legacy_grouped_gemm=True)
    seam.mla_layer_spec(config, moe_use_legacy_grouped_gemm=None)


def test_fused_and_absorbed_adapters_exist_where_the_release_has_the_classes(seam, stand_ins, megatron, monkeypatch):
    with pytest.raises(AttributeError, match="has no FusedMLASelfAttention"):
        seam.FusedMLASelfAttentionAdapter  # noqa: B018 - 0.16.1 has none
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchAdapter'"):
        seam.NoSuchAdapter  # noqa: B018

    fused = type("FusedMLASelfAttention", (stand_ins.v018,), {})
    absorbed = type("AbsorbedMLASelfAttention", (torch.nn.Module,), {"__init__": stand_ins.v018.__init__})
    absorbed_module = types.ModuleType("megatron.core.transformer.experimental_attention_variant.absorbed_mla")
    absorbed_module.AbsorbedMLASelfAttention = absorbed
    monkeypatch.setattr(megatron.multi_latent_attention, "FusedMLASelfAttention", fused, raising=False)
    monkeypatch.setitem(sys.modules, absorbed_module.__name__, absorbed_module)
    seam.attention_adapter.installed_mla_classes.cache_clear()
    try:
        assert seam.FusedMLASelfAttentionAdapter is seam.mla_adapter(fused)
        assert seam.AbsorbedMLASelfAttentionAdapter is seam.mla_adapter(absorbed)
        spec = seam.adapt_mla_spec([megatron.ModuleSpec(module=fused), megatron.ModuleSpec(module=absorbed)])
        assert [s.module.__name__ for s in spec] == ["FusedMLASelfAttentionAdapter", "AbsorbedMLASelfAttentionAdapter"]
    finally:
        seam.attention_adapter.installed_mla_classes.cache_clear()


def test_a_fork_subclass_is_adapted_and_its_keywords_follow_its_parent(seam, config, megatron):
    class ForkMLA(megatron.MLASelfAttention):
        def __init__(self, *args, fork_flag=False, **kwargs):  # forwards the rest to MLASelfAttention
            torch.nn.Module.__init__(self)
            self.received = dict(kwargs, fork_flag=fork_flag)

    groups = object()
    spec = seam.adapt_mla_spec(megatron.ModuleSpec(module=ForkMLA, submodules="submodules"))
    built = megatron.build_module(spec, config=config, layer_number=1, model_comm_pgs=groups, fork_flag=True)
    assert built.received["fork_flag"] is True and built.received["pg_collection"] is groups
    assert seam.adapt_mla_spec(spec) is spec  # already adapted: nothing to do


def test_fields_megatrons_mla_ignores_are_refused_for_its_classes_only(seam, config, megatron):
    class ForkMLAWithQKVBias(megatron.MLASelfAttention):
        def __init__(self, config, *args, **kwargs):  # a fork's MLA that reads add_qkv_bias
            torch.nn.Module.__init__(self)
            self.qkv_bias = config.add_qkv_bias

    with_bias = dataclasses.replace(config, add_qkv_bias=True)
    fork = seam.adapt_mla_spec(megatron.ModuleSpec(module=ForkMLAWithQKVBias, submodules="submodules"))
    assert megatron.build_module(fork, config=with_bias, layer_number=1).qkv_bias is True
    megatrons = seam.adapt_mla_spec(megatron.ModuleSpec(module=megatron.MLASelfAttention, submodules="submodules"))
    with pytest.raises(ValueError, match=r"MLA does not read add_qkv_bias=True: .*leave add_qkv_bias at False"):
        megatron.build_module(megatrons, config=with_bias, layer_number=1)


def test_specs_without_mla_come_back_as_the_same_objects(seam, megatron):
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    spec = get_gpt_layer_local_spec()
    assert seam.adapt_mla_spec(spec) is spec


def test_a_release_newer_than_the_table_reads_as_the_newest_row(seam, monkeypatch, caplog):
    from megatron.core import package_info

    releases = seam.releases
    releases.installed_release.cache_clear()
    try:
        monkeypatch.setattr(package_info, "__version__", "0.21.0rc1")
        with caplog.at_level(logging.WARNING, logger=releases.__name__):
            assert releases.installed_release() == releases.RELEASES[max(releases.RELEASES)]
        assert "0.21.0rc1 is newer than seamfix's release table" in caplog.text
        releases.installed_release.cache_clear()
        monkeypatch.setattr(package_info, "__version__", "0.10.0")
        with pytest.raises(ImportError, match="supports megatron-core 0.11 and newer; 0.10.0 is installed"):
            releases.installed_release()
    finally:
        monkeypatch.undo()
        releases.installed_release.cache_clear()


def test_cpu_mode_puts_the_cuda_device_and_rng_on_the_cpu_and_takes_them_back(seam):
    from megatron.core.tensor_parallel import random as megatron_random

    current_device = torch.cuda.current_device
    with seam.cpu_mode():
        assert torch.cuda.current_device() == torch.device("cpu")
        torch.cuda.manual_seed(5)
        state = torch.cuda.get_rng_state()
        assert torch.equal(state, torch.get_rng_state())
        first = torch.rand(3)
        megatron_random._set_cuda_rng_state(state)
        assert torch.equal(torch.rand(3), first)
        assert megatron_random._CUDA_RNG_STATE_TRACKER is None  # a fresh tracker is made on first use
    assert torch.cuda.current_device is current_device
