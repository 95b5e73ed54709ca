#!/usr/bin/python3
"""Captum-style Integrated Gradients in plain PyTorch, for benchmarks/ig.js.

The loop Captum 0.8's IntegratedGradients.attribute runs with
method="gausslegendre", a zero baseline, multiply_by_inputs=True and an
internal_batch_size (Captum is not installed here, so this is written out):

  alphas, weights = numpy leggauss(n): 0.5 * (1 + x), 0.5 * w
  steps per chunk = internal_batch_size // N (Captum's _batch_attribution)
  for each chunk of steps: stack baseline + alpha * (x - baseline) for the
    chunk's alphas (step-major), requires_grad, forward, torch.autograd.grad
    of the unbound outputs, scale each step's gradient by its weight and sum
    over steps; attribution = summed gradients * (x - baseline), summed
    over chunks.
  convergence delta = sum(attribution) - (F(x) - F(baseline)) (Captum's
  return_convergence_delta=True; tabsight always returns it).

Model: torchvision resnet18 loaded from a tabsight image_encoder.safetensors
(fc removed: the pooled features), eval mode, parameters left as Captum
leaves them (requires_grad=True; torch.autograd.grad w.r.t. the input does
not compute weight gradients). Target: a linear probe (W h + b)[:, index].

  ig_captum.py CONFIG_JSON   then one request per line:
    {"ibs": k}                -> {"seconds": s}
    {"ibs": k, "out": FILE}   -> also writes the attributions (float32) and
                                 {"delta": [...]} in the answer
"""
import json
import sys
import time

import numpy as np
import torch
import torchvision

sys.path.insert(0, sys.argv[2])  # test/fixtures, for read_safetensors
from torchvision_ref import read_safetensors  # noqa: E402


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    tensors, _ = read_safetensors(cfg["weights"])
    model = torchvision.models.resnet18(weights=None)
    missing = model.load_state_dict(tensors, strict=False).missing_keys
    assert sorted(missing) == ["fc.bias", "fc.weight"], missing
    model.fc = torch.nn.Identity()
    model.eval()
    n, c, h, w = cfg["shape"]
    x = torch.from_numpy(np.fromfile(cfg["images"], dtype="<f4").reshape(n, c, h, w))
    weight = torch.tensor(cfg["probe_weight"], dtype=torch.float32).view(cfg["probe_shape"])
    bias = torch.tensor(cfg["probe_bias"], dtype=torch.float32)
    index = cfg["probe_index"]

    def forward(inp):
        return (model(inp) @ weight.T + bias)[:, index]

    xs, ws = np.polynomial.legendre.leggauss(cfg["steps"])
    alphas = [0.5 * (1 + float(a)) for a in xs]
    step_sizes = [0.5 * float(v) for v in ws]

    def attribute(inputs, ibs):
        baseline = torch.zeros_like(inputs)
        num = inputs.shape[0]
        step_count = max(1, ibs // num)
        total = None
        start = 0
        while start < len(alphas):
            end = min(start + step_count, len(alphas))
            a, s = alphas[start:end], step_sizes[start:end]
            scaled = torch.cat([baseline + alpha * (inputs - baseline) for alpha in a], dim=0).requires_grad_()
            out = forward(scaled)
            grads = torch.autograd.grad(torch.unbind(out), scaled)[0]
            k = end - start
            scaled_grads = grads.contiguous().view(k, -1) * torch.tensor(s).view(k, 1)
            summed = scaled_grads.view(k, num, *inputs.shape[1:]).sum(0)
            part = summed * (inputs - baseline)
            total = part if total is None else total + part
            start = end
        with torch.no_grad():
            delta = total.reshape(num, -1).sum(1) - (forward(inputs) - forward(baseline))
        return total, delta

    print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        t0 = time.perf_counter()
        attr, delta = attribute(x, req["ibs"])
        secs = time.perf_counter() - t0
        ans = {"seconds": secs}
        if req.get("out"):
            attr.detach().numpy().astype("<f4").tofile(req["out"])
            ans["delta"] = delta.tolist()
        print(json.dumps(ans), flush=True)


if __name__ == "__main__":
    main()
