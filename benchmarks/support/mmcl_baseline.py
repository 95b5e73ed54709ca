#!/usr/bin/python3
"""MMCL-style PyTorch baseline for benchmarks/epoch.js and benchmarks/data-path.js.

A torch Dataset in the shape of MMCL's ContrastiveImagingAndTabularDataset,
reduced to the views MMCL's CLIP step uses (one image view, augmented with
probability `rate` and otherwise only resized; one corrupted tabular view,
one-hot encoded):

  image:   the subject's uint8 C x H x W slice of images.npy (np.load, mmap)
           -> float / 255 (ToTensor-like) -> with probability rate:
           RandomHorizontalFlip, RandomRotation(45), ColorJitter(0.5, 0.5, 0.5),
           RandomResizedCrop(size, scale=(0.2, 1)); otherwise Resize(size)
           -> Normalize(mean, std) when asked.
           backend "tensor": torchvision's tensor transforms on the float
           tensor (what MMCL does: its cardiac images are tensors).
           backend "pil": the same transforms on a PIL RGB image of the uint8
           slice, then ToTensor.
  tabular: MMCL's corrupt(): int(rate * F) features chosen by random.sample,
           each replaced by random.sample of that feature's column (the
           training rows); then MMCL's one_hot_encode (per feature:
           the value, or F.one_hot(code, k)).

Modes (one JSON argument; requests and answers are JSON lines):

  epoch     the CLIP pretraining loop: torchvision resnet18 without fc, MMCL's
            tabular MLP and projection heads, CLIP (tau 0.1, lambda 0.5), Adam,
            a DataLoader (shuffle, drop_last, persistent workers; pinned memory
            and the model on the GPU with cfg["device"] "cuda"). On start it
            probes num_workers (each value of cfg["probe_workers"]: a warm-up
            step, then cfg["probe_steps"] timed steps of the whole loop) and
            keeps the fastest. Each "epoch" request runs one epoch over the
            training rows, saves model + optimiser state with torch.save (as
            MMCL's Lightning checkpoint callback does every epoch) and answers
            {"seconds", "steps", "loss"}.
  datapath  each {"backend": ..., "samples": n} request iterates a
            DataLoader(num_workers=0, batch 64, shuffle) over the Dataset for n
            samples (whole batches) in this process, torch at 1 thread, and
            answers {"seconds", "samples"}.
"""
import copy
import json
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T


class CardiacDataset(torch.utils.data.Dataset):
    def __init__(self, cfg, backend, normalize):
        self.images = np.load(cfg["images"], mmap_mode="r")
        self.rows = np.fromfile(cfg["rows"], dtype="<i4")
        tab = np.fromfile(cfg["tabular"], dtype="<f4").reshape(len(self.rows), -1)
        # MMCL keeps the table and its marginals as Python lists.
        self.data_tabular = tab.tolist()
        self.marginal_distributions = tab.T.tolist()
        self.field_lengths = cfg["cardinalities"]
        self.c = cfg["corruption"]
        self.rate = cfg["rate"]
        self.backend = backend
        size = cfg["size"]
        aug = [
            T.RandomHorizontalFlip(),
            T.RandomRotation(45),
            T.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5),
            T.RandomResizedCrop(size=size, scale=(0.2, 1.0)),
        ]
        default = [T.Resize(size=(size, size))]
        tail = [T.Normalize(cfg["mean"], cfg["std"])] if normalize else []
        if backend == "pil":
            self.transform = T.Compose(aug + [T.ToTensor()] + tail)
            self.default_transform = T.Compose(default + [T.ToTensor()] + tail)
        else:
            self.transform = T.Compose(aug + tail)
            self.default_transform = T.Compose(default + tail)

    def __len__(self):
        return len(self.rows)

    def corrupt(self, subject):
        subject = copy.deepcopy(subject)
        indices = random.sample(list(range(len(subject))), int(len(subject) * self.c))
        for i in indices:
            subject[i] = random.sample(self.marginal_distributions[i], k=1)[0]
        return subject

    def one_hot_encode(self, subject):
        out = []
        for i in range(len(subject)):
            k = self.field_lengths[i]
            if k == 0:
                out.append(subject[i].unsqueeze(0))
            elif subject[i] < 0:  # a code unseen in training: all zeros, as tabsight encodes it
                out.append(torch.zeros(k))
            else:
                out.append(torch.nn.functional.one_hot(subject[i].long(), num_classes=k).float())
        return torch.cat(out)

    def image(self, index):
        raw = np.array(self.images[self.rows[index]])  # C x H x W uint8, copied out of the map
        if self.backend == "pil":
            im = Image.fromarray(raw.transpose(1, 2, 0))
        else:
            im = torch.from_numpy(raw).float().div_(255.0)
        return self.transform(im) if random.random() < self.rate else self.default_transform(im)

    def __getitem__(self, index):
        view = self.image(index)
        tab = self.one_hot_encode(torch.tensor(self.corrupt(self.data_tabular[index]), dtype=torch.float))
        return view, tab


def seed_worker(worker_id):
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


def loader(ds, cfg, workers, shuffle=True):
    g = torch.Generator()
    g.manual_seed(cfg.get("seed", 0))
    return torch.utils.data.DataLoader(
        ds, batch_size=cfg["batch"], shuffle=shuffle, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0, worker_init_fn=seed_worker, generator=g,
        pin_memory=cfg.get("device", "cpu").startswith("cuda"))


def head(d, hidden, out):
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, out))


def tabular_encoder(width, hidden, layers):
    mods = [torch.nn.Linear(width, hidden)]
    for _ in range(layers - 1):
        mods += [torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden)]
    return torch.nn.Sequential(*mods)


def versions(extra):
    import PIL
    out = {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
           "python": sys.version.split()[0], "torch_threads": torch.get_num_threads()}
    out.update(extra)
    return out


def epoch_mode(cfg):
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg.get("seed", 0))
    random.seed(cfg.get("seed", 0))
    ds = CardiacDataset(cfg, cfg.get("backend", "tensor"), normalize=True)
    width = sum(1 if k == 0 else k for k in cfg["cardinalities"])
    m = cfg["model"]
    enc = torchvision.models.resnet18(weights=None)
    enc.fc = torch.nn.Identity()
    tab = tabular_encoder(width, m["tabularHidden"], m["tabularLayers"])
    pi, pt = head(512, m["projectionHidden"], m["projectionDim"]), head(m["tabularHidden"], m["projectionHidden"], m["projectionDim"])
    modules = torch.nn.ModuleDict({"image": enc, "tabular": tab, "image_projection": pi, "tabular_projection": pt})
    dev = torch.device(cfg.get("device", "cpu"))
    torch.backends.cudnn.benchmark = bool(cfg.get("cudnn_benchmark", False))
    modules.to(dev).train()
    opt = torch.optim.Adam(modules.parameters(), lr=cfg["lr"], weight_decay=cfg["weightDecay"])
    F_ = torch.nn.functional
    tau = cfg["temperature"]

    def step(batch):
        x, t = (v.to(dev, non_blocking=True) for v in batch)
        opt.zero_grad()
        zi = F_.normalize(pi(enc(x)), dim=1)
        zt = F_.normalize(pt(tab(t)), dim=1)
        logits = zi @ zt.T / tau
        y = torch.arange(x.shape[0], device=dev)
        loss = 0.5 * F_.cross_entropy(logits, y) + 0.5 * F_.cross_entropy(logits.T, y)
        loss.backward()
        opt.step()
        return loss.item()

    # Probe num_workers on the whole loop (data + step), after a warm-up step each.
    probe = {}
    for w in cfg["probe_workers"]:
        dl = loader(ds, cfg, w)
        it = iter(dl)
        step(next(it))
        t0 = time.perf_counter()
        for _ in range(cfg["probe_steps"]):
            step(next(it))
        probe[str(w)] = (time.perf_counter() - t0) / cfg["probe_steps"]
        del it, dl
    workers = int(min(probe, key=probe.get)) if cfg.get("workers") is None else int(cfg["workers"])
    dl = loader(ds, cfg, workers)
    ckpt = os.path.join(cfg["tmp"], "py-checkpoint.pt")
    print(json.dumps(versions({"num_workers": workers, "probe_s_per_step": probe, "steps_per_epoch": len(dl), "encoded_width": width})), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        t0 = time.perf_counter()
        losses = [step(b) for b in dl]
        torch.save({"model": modules.state_dict(), "optimizer": opt.state_dict()}, ckpt)
        secs = time.perf_counter() - t0
        print(json.dumps({"seconds": secs, "steps": len(losses), "loss": float(np.mean(losses))}), flush=True)


def datapath_mode(cfg):
    torch.set_num_threads(1)
    random.seed(cfg.get("seed", 0))
    torch.manual_seed(cfg.get("seed", 0))
    sets = {b: CardiacDataset(cfg, b, normalize=False) for b in ("tensor", "pil")}
    print(json.dumps(versions({})), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        dl = loader(sets[req["backend"]], cfg, 0)
        want = req["samples"] // cfg["batch"]
        done = 0
        t0 = time.perf_counter()
        while done < want:
            for _ in dl:
                done += 1
                if done == want:
                    break
        secs = time.perf_counter() - t0
        print(json.dumps({"seconds": secs, "samples": done * cfg["batch"]}), flush=True)


if __name__ == "__main__":
    mode, cfg = sys.argv[1], json.loads(sys.argv[2])
    cfg.setdefault("tmp", tempfile.gettempdir())
    {"epoch": epoch_mode, "datapath": datapath_mode}[mode](cfg)
