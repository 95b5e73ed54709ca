"""The GPU epoch's inputs for support/mmcl_baseline.py (cuda.sh, cuda-ab.sh):
8,192 random uint8 images of 3 × 128 × 128 (images.npy), their row indices
(rows.i32) and 100 standard-normal continuous features (tabular.f32), the
shapes train_bench's epoch mode generates for tabsight's side.

    python3 gpu_epoch_data.py DIR
"""
import sys

import numpy as np


def main(d, n=8192, f=100):
    rng = np.random.default_rng(0)
    np.save(f"{d}/images.npy", rng.integers(0, 256, size=(n, 3, 128, 128), dtype=np.uint8))
    np.arange(n, dtype="<i4").tofile(f"{d}/rows.i32")
    rng.standard_normal((n, f), dtype=np.float32).astype("<f4").tofile(f"{d}/tabular.f32")


if __name__ == "__main__":
    main(sys.argv[1])
