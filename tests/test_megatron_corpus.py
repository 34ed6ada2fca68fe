"""The linter on real upstream code: megatron-core 0.16.1 from its PyPI wheel.

With `allow` naming the MLA implementation, every MLA conditional left in generic code is reported, and
none of the YaRN / mscale / LoRA / MoE-latent look-alikes is. Without `allow`, the hand labels of
benchmarks/lint_labels.toml hold: every labelled MLA decision is flagged, no labelled non-decision is.
"""

import importlib.util
import subprocess
import sys
import zipfile

import pytest

from seamfix_testing import REPO, run_seamfix

VERSION = "0.16.1"
ALLOW = ["megatron/core/transformer/multi_latent_attention.py", "megatron/core/fusions/fused_mla_yarn_rope_apply.py"]

# Every MLA conditional outside the implementation, read off the 0.16.1 sources (line of the test expression).
EXPECTED = {
    "inference/contexts/dynamic_context.py": [302, 397, 663, 922, 939, 944, 947, 973],  # if self.cache_mla_latent
    "models/common/embeddings/rope_utils.py": [115],  # if multi_latent_attention: (a parameter)
    "models/gpt/experimental_attention_variant_module_specs.py": [81, 403],  # assert / if config.multi_latent_attention
    "models/gpt/gpt_layer_specs.py": [98, 233, 366],  # if multi_latent_attention: in each spec builder
    "models/gpt/gpt_model.py": [159, 192, 334, 386],  # position_embedding_type == 'rope' and not ...mla
    "post_training/modelopt/gpt/model_specs.py": [75, 94],
    "transformer/attention.py": [611, 829],  # getattr(config, "cache_mla_latents"), isinstance(MLATransformerConfig)
    "transformer/cuda_graphs.py": [1863],  # the same RoPE test as gpt_model, inside a multi-line `if (`
    "transformer/experimental_attention_variant/dsa.py": [370],  # q_lora_rank if ... is not None else
    "transformer/transformer_config.py": [1218, 1531, 1558, 2068, 2074],  # "mla_up_proj" in ..., validation
}

# Conditionals on look-alikes that are not MLA: YaRN / mscale (generic RoPE scaling), MoE latents.
LOOKALIKES = {
    "models/common/embeddings/rope_utils.py": [279],  # if mscale != 1.0
    "models/common/embeddings/yarn_rotary_pos_embedding.py": [267, 275],  # mscale / yarn_rotary_scaling_factor
    "models/gpt/gpt_model.py": [172, 370],  # position_embedding_type == 'yarn'
    "transformer/experimental_attention_variant/dsa.py": [385, 392, 548],  # rope_type == 'rope' / 'yarn'
    "transformer/moe/experts.py": [566],  # moe_latent_size
    "transformer/moe/moe_layer.py": [170, 265, 343],
}


@pytest.fixture(scope="module")
def megatron_tree(request):
    """megatron-core's sources from its PyPI wheel (downloaded once, kept in pytest's cache)."""
    cache = request.config.cache.mkdir(f"megatron-core-{VERSION}")
    tree = cache / "tree"
    if not (tree / "megatron").is_dir():
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            "-d",
            str(cache),
            f"megatron-core=={VERSION}",
        ]
        subprocess.run(command, check=True, timeout=600)
        (wheel,) = cache.glob(f"megatron_core-{VERSION}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tree)
    # The tree sits in pytest's cache, which git ignores: lint it all the same.
    allow = ", ".join(f'"{p}"' for p in ALLOW)
    (tree / "pyproject.toml").write_text(f"[tool.seamfix]\nallow = [{allow}]\nrespect-gitignore = false\n")
    return tree


def test_every_mla_conditional_in_generic_code_is_reported(megatron_tree):
    result = run_seamfix("lint", "--no-cache", "--format", "json", cwd=megatron_tree)
    assert result.code == 1, result.stderr
    found: dict[str, list[int]] = {}
    for finding in result.json():
        assert finding["code"] == "SEAM001"
        found.setdefault(finding["path"].removeprefix("megatron/core/"), []).append(finding["line"])
    assert found == EXPECTED


def test_lookalikes_are_conditionals_but_not_reported(megatron_tree):
    result = run_seamfix("lint", "--no-cache", "--format", "json", cwd=megatron_tree)
    reported = {(f["path"].removeprefix("megatron/core/"), f["line"]) for f in result.json()}
    for path, lines in LOOKALIKES.items():
        source = (megatron_tree / "megatron/core" / path).read_text().splitlines()
        for line in lines:
            assert source[line - 1].lstrip().startswith(("if ", "elif ")), (path, line, source[line - 1])
            assert (path, line) not in reported


def test_the_implementation_itself_would_be_reported_without_allow(megatron_tree):
    (megatron_tree / "no-allow.toml").write_text("allow = []\nrespect-gitignore = false\n")
    result = run_seamfix("lint", "--no-cache", "--statistics", "--config", "no-allow.toml", cwd=megatron_tree)
    count = int(result.stdout.split()[0])
    assert count > sum(map(len, EXPECTED.values())) + 20


def load_precision_benchmark():
    """benchmarks/lint_precision.py, which owns the labels and how they match lines (by text, near a hint)."""
    spec = importlib.util.spec_from_file_location("lint_precision", REPO / "benchmarks" / "lint_precision.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_labelled_decisions_are_flagged_and_labelled_non_decisions_are_not(megatron_tree):
    precision = load_precision_benchmark()
    labels = [label for label in precision.load_labels() if label.tree == VERSION]
    assert sum(label.decision for label in labels) >= 40 and sum(not label.decision for label in labels) >= 10
    # Every file, the implementation included; the tree lives in pytest's cache, which git ignores.
    (megatron_tree / "every-file.toml").write_text("allow = []\nrespect-gitignore = false\n")
    result = run_seamfix("lint", "--no-cache", "--format", "json", "--config", "every-file.toml", cwd=megatron_tree)
    findings = [precision.Finding(f["path"], f["line"], f["end_line"], f["message"]) for f in result.json()]
    wrong = [
        f"{'missed' if label.decision else 'flagged'}: {label.path}: {label.text}"
        for label in labels
        if precision.flagged(findings, label.path, precision.locate(megatron_tree, label)) != label.decision
    ]
    assert wrong == []
