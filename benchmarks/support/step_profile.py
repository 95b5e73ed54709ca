#!/usr/bin/python3
"""Where the CPU train step's time goes, by ATen operator (the roofline gap).

  step_profile.py [channels_last|contiguous] [steps]

Runs train-step.js's PyTorch step (train_step_torch.make_step: its model,
loss and Adam; ResNet-18 at 128 px, batch 64, 2 threads) under torch.profiler after
two warm-up steps, and prints one JSON line per operator group with its
seconds per step, its share of the step, and, for the convolutions, the
GFLOP/s they reach (analytic FLOPs from support/flops.js's count: forward
1.184 GFLOP per image, backward twice that). tabsight's trainer calls the same
LibTorch 1.13 kernels, so the split describes both; run it with the addon's
OPENBLAS_CORETYPE (benchmarks/README.md). Not part of `npm run bench`.
"""
import json
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step_torch import make_step  # noqa: E402  (train-step.js's PyTorch step)

GROUPS = {
    "convolution forward": ["aten::mkldnn_convolution"],
    "convolution backward": ["aten::convolution_backward"],
    "batch norm": ["aten::native_batch_norm", "aten::native_batch_norm_backward"],
    "relu": ["aten::threshold_backward", "aten::clamp_min_", "aten::relu_", "aten::clamp_min"],
    "adam": ["aten::addcdiv_", "aten::addcmul_", "aten::sqrt", "aten::mul_", "aten::div", "aten::add_"],
    "zero_grad fill": ["aten::fill_", "aten::zero_"],
    "linear layers and logits": ["aten::mm", "aten::addmm"],
    "max pool": ["aten::max_pool2d_with_indices", "aten::max_pool2d_with_indices_backward"],
}


def main():
    fmt = sys.argv[1] if len(sys.argv) > 1 else "channels_last"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    step, _, B, _, _, _, _ = make_step({"threads": 2, "arch": "resnet18", "batch": 64, "size": 128, "features": 100,
                                        "memory_format": fmt})
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - t0) / steps
    self_s = {}
    for e in prof.key_averages():
        self_s[e.key] = self_s.get(e.key, 0.0) + e.self_cpu_time_total / 1e6 / steps
    total = sum(self_s.values())
    print(json.dumps({"figure": "profiled step", "memory_format": fmt, "steps": steps, "wall_s_per_step": round(wall, 4),
                      "self_cpu_s_per_step": round(total, 4), "torch": torch.__version__}))
    flops = {"convolution forward": 1.184e9 * B, "convolution backward": 2 * 1.184e9 * B}
    seen = set()
    for name, ops in GROUPS.items():
        s = sum(self_s.get(op, 0.0) for op in ops)
        seen.update(ops)
        line = {"figure": f"ops: {name}", "s_per_step": round(s, 4), "share": round(s / total, 3)}
        if name in flops and s > 0:
            line["gflops"] = round(flops[name] / s / 1e9, 1)
        print(json.dumps(line))
    rest = sum(v for k, v in self_s.items() if k not in seen)
    print(json.dumps({"figure": "ops: everything else", "s_per_step": round(rest, 4), "share": round(rest / total, 3)}))


if __name__ == "__main__":
    main()
