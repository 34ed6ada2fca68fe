"""Seesaw decode kernel variants at H128 B128 S4k on the GPU, in rounds whose order rotates (issue 16).

Each variant is a module beside ``gluon_seesaw`` with the same ``decode_kernel`` arguments, launched in its place
(``kernels_decode_rounds.with_gluon_kernel``). ``--modules`` are checked against float64 on the whole batch first
and timed at uniform and variable lengths; ``--timing-only`` modules (ablations: copies that leave a stage out and
so compute wrong results by design) are timed at uniform lengths only. Graph-replayed, median over ``--rounds``;
each round starts one variant later than the previous, so no variant always runs first on a cooler card. Ceilings
measured in the same run. Writes $OUT/kernels_decode_variants.json.
"""

import argparse
import json
import os
import statistics
from functools import partial
from pathlib import Path

import torch
from kernels_decode import SHAPES, args_of, check, decode_case, matmul_ceiling, roofline
from kernels_decode_rounds import rounds_ms, with_gluon_kernel
from kernels_train import copy_bandwidth


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", required=True, help="comma-separated seesaw variants, checked and timed")
    parser.add_argument("--timing-only", default="", help="comma-separated ablations, timed only")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    modules = [name for name in args.modules.split(",") if name]
    ablations = [name for name in args.timing_only.split(",") if name]
    device = torch.device("cuda")
    torch.manual_seed(0)
    bandwidth, matmul = copy_bandwidth(device, args.reps), matmul_ceiling(device, args.reps)
    print(f"copy {bandwidth / 1e12:.3f} TB/s, matmul {matmul / 1e12:.0f} TFLOP/s", flush=True)
    report = {"device": torch.cuda.get_device_name(), "copy_Bps": bandwidth, "matmul_flops": matmul, "shapes": {}}
    for shape, names in (("H128 B128 S4k", modules + ablations), ("H128 B128 S4k varlen", modules)):
        case = decode_case(*SHAPES[shape], device)
        steps, errors = {}, {}
        for name in names:
            run = partial(with_gluon_kernel, name)
            if name in modules:
                errors[name] = check(case, run, device)
                print(shape, name, errors[name], flush=True)
            steps[name] = partial(lambda run, args: run(*args), run, args_of(case))
        rows = {}
        for name, values in rounds_ms(steps, device, args.reps, args.rounds, rotate=True).items():
            ms = statistics.median(values)
            rows[name] = {
                "us": ms * 1e3,
                "rounds_us": [v * 1e3 for v in values],
                **roofline(case, ms, bandwidth, matmul),
            }
            rounds_us = " ".join(f"{v * 1e3:.1f}" for v in values)
            print(f"| {shape} | {name} | {ms * 1e3:.1f} | {rows[name]['TFLOPS']:.0f} | {rounds_us} |", flush=True)
        report["shapes"][shape] = {"times": rows, "errors": errors}
        torch.cuda.empty_cache()
    out = Path(os.environ.get("OUT", "out"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels_decode_variants.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
