#!/usr/bin/python3
"""PyTorch side of benchmarks/train-step.js and benchmarks/cuda.sh.

  train_step_torch.py '{"device": "cpu", "threads": 2, "arch": "resnet18", "batch": 64,
                        "size": 128, "features": 100, "steps": 4, "warmup": 1,
                        "precision": "fp32", "cudnn_benchmark": false,
                        "memory_format": "contiguous"}'

One multimodal CLIP step as tabsight's trainer runs it: torchvision's
ResNet (fc removed) at `size` px, MMCL's tabular MLP Linear(F, 2048) +
[BatchNorm, ReLU, Linear(2048, 2048)], projection heads Linear, BatchNorm,
ReLU, Linear to 128, CLIP (tau 0.1, lambda 0.5) on L2-normalised
projections, Adam (lr 3e-3, weight decay 1e-4). precision "bf16" wraps the
forward pass and the loss in torch.autocast(dtype=torch.bfloat16), as
tabsight's --precision bf16 does. memory_format "channels_last" converts the
image encoder and the image batch with torch.channels_last (PyTorch's
recipe), as tabsight's memoryFormat does; the default "contiguous" is NCHW,
as MMCL runs. Each step is timed with perf_counter up to
loss.item() after optimizer.step() (a device sync on CUDA). Prints one JSON
line: the versions and the per-step seconds after `warmup` steps.
"""
import json
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmcl_baseline import head, tabular_encoder  # noqa: E402  (the epoch baseline's MMCL modules)


def make_step(cfg):
    """The configured model, loss and Adam; returns (step, device, batch, size, arch, bf16, memory_format)."""
    dev = torch.device(cfg.get("device", "cpu"))
    if "threads" in cfg:
        torch.set_num_threads(int(cfg["threads"]))
    torch.backends.cudnn.benchmark = bool(cfg.get("cudnn_benchmark", False))
    torch.manual_seed(0)
    B, S, F = int(cfg.get("batch", 64)), int(cfg.get("size", 128)), int(cfg.get("features", 100))
    arch = cfg.get("arch", "resnet18")
    enc = getattr(torchvision.models, arch)()
    feat = enc.fc.in_features
    enc.fc = torch.nn.Identity()
    tab = tabular_encoder(F, 2048, 2)
    pi, pt = head(feat, 2048, 128), head(2048, 2048, 128)
    mods = torch.nn.ModuleList([enc, tab, pi, pt]).to(dev).train()
    opt = torch.optim.Adam(mods.parameters(), lr=3e-3, weight_decay=1e-4)
    x = torch.rand(B, 3, S, S, device=dev)
    memory_format = cfg.get("memory_format", "contiguous")
    if memory_format == "channels_last":
        enc.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    elif memory_format != "contiguous":
        raise SystemExit("memory_format must be contiguous or channels_last")
    t = torch.randn(B, F, device=dev)
    y = torch.arange(B, device=dev)
    fn = torch.nn.functional
    bf16 = cfg.get("precision", "fp32") == "bf16"

    def step():
        opt.zero_grad()
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            zi = fn.normalize(pi(enc(x)), dim=1)
            zt = fn.normalize(pt(tab(t)), dim=1)
            logits = zi @ zt.T / 0.1
            loss = 0.5 * fn.cross_entropy(logits, y) + 0.5 * fn.cross_entropy(logits.T, y)
        loss.backward()
        opt.step()
        return loss.item()

    return step, dev, B, S, arch, bf16, memory_format


def main():
    cfg = json.loads(sys.argv[1])
    step, dev, B, S, arch, bf16, memory_format = make_step(cfg)
    for _ in range(int(cfg.get("warmup", 1))):
        step()
    secs = []
    for _ in range(int(cfg.get("steps", 4))):
        t0 = time.perf_counter()
        step()
        secs.append(time.perf_counter() - t0)
    print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__, "device": str(dev),
                      "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                      "threads": torch.get_num_threads(), "arch": arch, "batch": B, "size": S, "precision": "bf16" if bf16 else "fp32",
                      "cudnn_benchmark": torch.backends.cudnn.benchmark, "memory_format": memory_format,
                      "step_s": secs}), flush=True)


if __name__ == "__main__":
    main()
