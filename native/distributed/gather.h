// All-gather of projections for contrastive losses with global negatives.
#pragma once

#include <torch/torch.h>

#include "distributed/comm.h"

namespace tabsight::dist {

// Every rank's rows, in rank order (rank r's rows at [r·b, (r+1)·b)), with
// this rank's slice replaced by `local` itself so that gradients flow back
// to it (as OpenCLIP's gather_features). Each rank then computes the loss of
// the whole global batch; the gradient reaching `local` is exactly the
// global loss's gradient with respect to this rank's rows, and the
// parameter gradients of all ranks add up (sum all-reduce, no averaging) to
// the single-process gradient of that loss.
torch::Tensor GatherWithLocalGrad(Comm& comm, const torch::Tensor& local, const char* what);

}  // namespace tabsight::dist
