"""Decode kernels compiled for sm_90 on any machine (Triton ships ptxas), so that their resources are checked
without a GPU. The interpreter (``TRITON_INTERPRET=1``, read when Triton is imported) replaces Triton's compiler in
a process that sets it, so ``compile_in_child`` compiles in a child process without it; run as that child, this
module compiles each request given as JSON and prints the shared memory each kernel asks for."""

import json
import os
import subprocess
import sys
from pathlib import Path

# Each kernel: the module defining it, the compiler front end that reads it, and its name there.
KERNELS = {
    "triton": ("seamfix.runtime.kernels.absorbed_decode.triton_kernels", "triton.compiler", "ASTSource",
               "decode_kernel"),
    "gluon": ("seamfix.runtime.kernels.absorbed_decode.gluon_kernels", "triton.experimental.gluon._runtime",
              "GluonASTSource", "decode_kernel"),
    "gluon_seesaw": ("seamfix.runtime.kernels.absorbed_decode.gluon_seesaw", "triton.experimental.gluon._runtime",
                     "GluonASTSource", "decode_kernel"),
    "gluon_narrow": ("seamfix.runtime.kernels.absorbed_decode.gluon_narrow", "triton.experimental.gluon._runtime",
                     "GluonASTSource", "decode_kernel"),
    "merge": ("seamfix.runtime.kernels.absorbed_decode.triton_kernels", "triton.compiler", "ASTSource",
              "merge_kernel"),
    "merge_by_sequence": ("seamfix.runtime.kernels.absorbed_decode.triton_kernels", "triton.compiler", "ASTSource",
                          "merge_by_sequence_kernel"),
}  # fmt: skip


def compile_in_child(kernel: str, dtype: str, constants: dict, ptx: Path | None = None, **options) -> int:
    """Bytes of shared memory the decode or merge kernel ``kernel`` (a key of ``KERNELS``) asks for, compiled for an
    H100/H200 with ``dtype`` queries and caches and ``constants``; its PTX written to ``ptx`` where given."""
    request = {"kernel": kernel, "dtype": dtype, "constants": constants, "options": options,
               "ptx": None if ptx is None else str(ptx)}  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, __file__, json.dumps(request)], capture_output=True, text=True, env=env,
                            timeout=300, check=False)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"compiling the {kernel} decode kernel failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def _compile_for_hopper(kernel: str, dtype: str, constants: dict, options: dict):
    """Pointers and strides specialized as 16-byte aligned, as launched."""
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget

    module, front_end, source_type, name = KERNELS[kernel]
    function = getattr(importlib.import_module(module), name)
    # A value given for a run-time parameter (a stride the kernel does not declare constant) is left out: the
    # kernel compiles as launched, so a parameter losing its tl.constexpr shows in the code compiled here.
    declared = {param.name for param in function.params if param.is_constexpr}
    constants = {name: value for name, value in constants.items() if name in declared}
    pointers = {"Q_LAT": dtype, "Q_PE": dtype, "CKV": dtype, "KPE": dtype, "BLOCK_TABLE": "i32", "SEQLENS": "i32",
                "OUT": dtype, "LSE": "fp32", "PARTIAL_OUT": "fp32", "PARTIAL_LSE": "fp32", "LEADS": "i32"}  # fmt: skip
    signature = {
        name: "constexpr" if name in constants else f"*{pointers[name]}" if name in pointers else "i32"
        for name in function.arg_names
    }
    if "softmax_scale" in signature:
        signature["softmax_scale"] = "fp32"
    signature |= _cache_descriptors(function.arg_names, dtype, constants)
    runtime_strides = [name for name in function.arg_names if name.startswith("stride_") and name not in constants]
    aligned = [name for name in function.arg_names if signature[name].startswith("*") or name in runtime_strides]
    source = getattr(importlib.import_module(front_end), source_type)(
        fn=function,
        signature=signature,
        constexprs={(function.arg_names.index(name),): value for name, value in constants.items()},
        attrs={(function.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned},
    )
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)


def _cache_descriptors(arg_names: list, dtype: str, constants: dict) -> dict:
    """The seesaw kernel's cache descriptors as launched (``triton_ops.cache_rows`` over caches of one page in the
    constants' sizes) where ``TMA`` is set, else None, as the launch passes them."""
    import torch
    from triton.runtime.jit import mangle_type

    from seamfix.runtime.kernels.absorbed_decode.triton_ops import cache_rows

    if "CKV_ROWS" not in arg_names:
        return {}
    if not constants.get("TMA"):
        constants.update(CKV_ROWS=None, KPE_ROWS=None)
        return {"CKV_ROWS": "constexpr", "KPE_ROWS": "constexpr"}
    element = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    widths = (constants["RANK"], constants["ROPE"])
    caches = (torch.empty(1, constants["PAGE"], width, dtype=element) for width in widths)
    rows = cache_rows(*caches, constants["BLOCK_N"])
    return {"CKV_ROWS": mangle_type(rows[0]), "KPE_ROWS": mangle_type(rows[1])}


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    compiled = _compile_for_hopper(request["kernel"], request["dtype"], request["constants"], request["options"])
    if request["ptx"] is not None:
        Path(request["ptx"]).write_text(compiled.asm["ptx"])
    print(json.dumps(compiled.metadata.shared))
