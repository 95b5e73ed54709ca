// Contrastive losses on L2-normalised projections (plain LibTorch).
//
// Each loss validates its own settings and returns the loss with the logits
// and targets it used (as MMCL's losses do), so callers can compute
// retrieval accuracy from the same numbers.
#pragma once

#include <torch/torch.h>

namespace tabsight::losses {

struct ClipLossOptions {
  double temperature = 0.1;
  // Weight of the image→tabular direction (rows); 1 − lambda weighs
  // tabular→image (columns). MMCL: 0.5.
  double lambda = 0.5;
  // MMCL's "remove false negatives": pairs (i, j ≠ i) with the same label
  // are dropped from the softmax denominators. Needs labels.
  bool remove_false_negatives = false;
};

struct NtXentOptions {
  double temperature = 0.1;
  bool remove_false_negatives = false;
};

struct LossResult {
  torch::Tensor loss;     // scalar
  torch::Tensor logits;   // the similarity matrix divided by the temperature
  torch::Tensor targets;  // the index of each row's positive
};

void ValidateClipOptions(const ClipLossOptions& options);
void ValidateNtXentOptions(const NtXentOptions& options);

// z_image, z_tabular: N×D (not yet normalised). labels: N int64, or undefined.
LossResult ClipLoss(const torch::Tensor& z_image, const torch::Tensor& z_tabular, const ClipLossOptions& options,
                    const torch::Tensor& labels = torch::Tensor());

// SimCLR's NT-Xent on two views: z1, z2 N×D. The 2N×2N similarity matrix has
// its diagonal removed; row i's positive is i ± N.
LossResult NtXentLoss(const torch::Tensor& z1, const torch::Tensor& z2, const NtXentOptions& options,
                      const torch::Tensor& labels = torch::Tensor());

}  // namespace tabsight::losses
