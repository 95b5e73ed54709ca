// Adam and AdamW steps in one pass over each parameter's memory.
//
// LibTorch's torch::optim::Adam::step runs its update as about eight tensor
// operations per parameter (weight decay, two moment updates, sqrt, divide,
// add, addcdiv), each a full pass over memory, and allocates two
// temporaries. On the CPU the step is memory-bound, so FusedAdamStep does
// the same arithmetic element by element in one at::parallel_for pass:
// read the parameter, its gradient and both moments once, write them once.
//
// It keeps LibTorch's state (AdamParamState / AdamWParamState in the
// optimizer's state map, under LibTorch's own keys), so checkpoints, resume
// and a plain optimizer.step() see the same state. It takes dense float32
// CPU parameters (the trainer calls optimizer.step() on CUDA). A gradient
// or moment in another layout than its parameter is copied to that layout
// first.
//
// The result equals LibTorch's to float32 rounding: LibTorch's vectorised
// kernels fuse some multiply-adds (one rounding) where this loop may round
// twice, so elements can differ in the last bit or two
// (test/fused-adam.test.ts compares several steps against torch::optim).
#pragma once

#include <torch/torch.h>

#include <string>

namespace tabsight::train {

// One step of `optimizer`, which must be a torch::optim::Adam (decoupled =
// false) or torch::optim::AdamW (decoupled = true). Parameters without a
// gradient are skipped, as LibTorch skips them. amsgrad fails with kConfig;
// a parameter that is not a dense float32 CPU tensor fails with kTorch.
void FusedAdamStep(torch::optim::Optimizer& optimizer, bool decoupled);

// The key of `param` in a LibTorch optimizer's state map: in LibTorch 1.13 the
// string c10::guts::to_string(ptr) made (an ostringstream of the TensorImpl
// address), in 2.x the void* itself. The key type is read from the map.
using OptimizerStateKeyType = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;
OptimizerStateKeyType OptimizerStateKey(const torch::Tensor& param);

}  // namespace tabsight::train
