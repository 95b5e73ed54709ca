#include "distributed/gather.h"

namespace tabsight::dist {

torch::Tensor GatherWithLocalGrad(Comm& comm, const torch::Tensor& local, const char* what) {
  std::vector<torch::Tensor> parts;
  {
    torch::NoGradGuard no_grad;
    parts = comm.AllGather(local.detach().contiguous(), what);
  }
  parts[static_cast<size_t>(comm.rank())] = local;
  return torch::cat(parts, 0);
}

}  // namespace tabsight::dist
