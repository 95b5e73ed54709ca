'use strict';
// Analytic FLOP counts for benchmarks/roofline.js.
//
// Only convolutions and linear layers are counted (multiply-adds, MACs;
// FLOPs = 2 × MACs). BatchNorm, ReLU, pooling, residual adds, the loss and
// the optimiser are elementwise: together about 1 % of a ResNet-18's
// FLOPs, and memory-bound rather than FMA-bound, so a roofline against the
// FMA peak leaves them out (the usual convention; torchvision's "GFLOPS"
// column counts the same MACs).
//
//   conv  MACs = C_out × C_in × k × k × H_out × W_out,
//         H_out = floor((H + 2p − k) / s) + 1
//   linear MACs = in × out (per sample)
//
// ResNet-18 (torchvision's BasicBlock layout): conv1 7×7/2 (or the small
// stem 3×3/1 without max-pool) → max-pool 3×3/2 → 4 stages of 2 blocks
// (64, 128, 256, 512 channels; the first block of stages 2–4 has stride 2
// and a 1×1/2 downsample conv) → global average pool (fc removed).
//
// Training: backward ≈ 2 × forward (one product for the input gradient,
// one for the weight gradient, each as large as the forward product), so a
// step ≈ 3 × forward. Exactly, the image stem's input gradient is not
// needed (the input does not require grad): 3 × forward − conv1 forward.

function conv(state, cin, cout, k, s, p) {
  const h = Math.floor((state.h + 2 * p - k) / s) + 1;
  const w = Math.floor((state.w + 2 * p - k) / s) + 1;
  const macs = cout * cin * k * k * h * w;
  state.h = h;
  state.w = w;
  return macs;
}

/** MACs of one image through a ResNet-18 trunk (to the pooled features). */
function resnet18Macs(size, { smallStem = false, inChannels = 3 } = {}) {
  const st = { h: size, w: size };
  let total = 0;
  let stem;
  if (smallStem) {
    stem = conv(st, inChannels, 64, 3, 1, 1);
  } else {
    stem = conv(st, inChannels, 64, 7, 2, 3);
    st.h = Math.floor((st.h + 2 - 3) / 2) + 1; // max-pool 3×3/2, padding 1
    st.w = Math.floor((st.w + 2 - 3) / 2) + 1;
  }
  total += stem;
  let cin = 64;
  for (const [c, stride] of [[64, 1], [128, 2], [256, 2], [512, 2]]) {
    for (let b = 0; b < 2; b++) {
      const s = b === 0 ? stride : 1;
      const inH = st.h;
      const inW = st.w;
      total += conv(st, cin, c, 3, s, 1);
      total += conv(st, c, c, 3, 1, 1);
      if (b === 0 && (s !== 1 || cin !== c)) total += conv({ h: inH, w: inW }, cin, c, 1, s, 0);
      cin = c;
    }
  }
  return { macs: total, stemMacs: stem, featureDim: 512 };
}

/**
 * MACs of one image through a ResNet-50 trunk (torchvision v1.5 Bottleneck:
 * 1×1, 3×3 with the stage's stride, 1×1 to 4× the width; a 1×1 downsample
 * on the first block of each stage). 4.09 GMACs at 224 px, torchvision's
 * figure.
 */
function resnet50Macs(size, { inChannels = 3 } = {}) {
  const st = { h: size, w: size };
  const stem = conv(st, inChannels, 64, 7, 2, 3);
  st.h = Math.floor((st.h + 2 - 3) / 2) + 1;
  st.w = Math.floor((st.w + 2 - 3) / 2) + 1;
  let total = stem;
  let cin = 64;
  for (const [planes, blocks, stride] of [[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]]) {
    for (let b = 0; b < blocks; b++) {
      const s = b === 0 ? stride : 1;
      const inH = st.h;
      const inW = st.w;
      total += conv(st, cin, planes, 1, 1, 0);
      total += conv(st, planes, planes, 3, s, 1);
      total += conv(st, planes, planes * 4, 1, 1, 0);
      if (b === 0) total += conv({ h: inH, w: inW }, cin, planes * 4, 1, s, 0);
      cin = planes * 4;
    }
  }
  return { macs: total, stemMacs: stem, featureDim: 2048 };
}

/** MACs per sample of MMCL's tabular MLP and the two projection heads, and the CLIP logits. */
function multimodalHeadMacs({ tabularIn, tabularHidden = 2048, tabularLayers = 2, projectionHidden = 2048, projectionDim = 128, featureDim = 512, batch = 64 }) {
  const tabular = tabularIn * tabularHidden + (tabularLayers - 1) * tabularHidden * tabularHidden;
  const imageHead = featureDim * projectionHidden + projectionHidden * projectionDim;
  const tabularHead = tabularHidden * projectionHidden + projectionHidden * projectionDim;
  const logits = batch * projectionDim; // B × B × D per batch
  return { tabular, imageHead, tabularHead, logits, total: tabular + imageHead + tabularHead + logits };
}

/** FLOPs per image: inference (trunk only) and one multimodal CLIP training step. */
function resnet18Flops({ size, smallStem = false, tabularIn = 100, batch = 64, arch = 'resnet18' }) {
  const trunk = arch === 'resnet50' ? resnet50Macs(size) : resnet18Macs(size, { smallStem });
  const heads = multimodalHeadMacs({ tabularIn, batch, featureDim: trunk.featureDim });
  const forward = 2 * (trunk.macs + heads.total);
  return {
    inference: 2 * trunk.macs,
    trainForward: forward,
    train: 3 * forward,
    trainExact: 3 * forward - 2 * trunk.stemMacs,
    trunkMacs: trunk.macs,
    headMacs: heads.total,
  };
}

module.exports = { resnet18Macs, resnet50Macs, multimodalHeadMacs, resnet18Flops };
