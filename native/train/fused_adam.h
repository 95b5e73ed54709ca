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
// CPU parameters (on CUDA the trainer runs MultiTensorAdamStep, below). A gradient
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

// One step of `optimizer` (Adam or AdamW, as above) as multi-tensor
// operations: torch::optim's arithmetic, operation by operation in its
// order, but each operation applied to all parameters of a group at once
// with ATen's _foreach_* ops. On CUDA each of these covers many tensors per
// kernel launch, where torch::optim launches eight or nine kernels per
// parameter (about 1,600 a step for ResNet-50 and its heads). PyTorch's own
// Adam runs this way on CUDA by default (foreach). On the CPU the _foreach_* ops
// loop over the tensors with the ordinary kernels, so the result equals
// torch::optim's exactly (test/fused-adam.test.ts); the CPU trainer uses
// FusedAdamStep instead. Parameters whose step counts differ (one went
// without a gradient) are updated in separate lists. The moments are kept
// in the optimizer's state map, as above. amsgrad fails with kConfig.
void MultiTensorAdamStep(torch::optim::Optimizer& optimizer, bool decoupled);

// Whether the trainer uses MultiTensorAdamStep off the CPU: true unless
// TABSIGHT_MULTI_TENSOR_ADAM=0 (read once), which runs optimizer.step().
bool MultiTensorAdamEnabled();

// The key of `param` in a LibTorch optimizer's state map: in LibTorch 1.13 the
// string c10::guts::to_string(ptr) made (an ostringstream of the TensorImpl
// address), in 2.x the void* itself. The key type is read from the map.
using OptimizerStateKeyType = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;
OptimizerStateKeyType OptimizerStateKey(const torch::Tensor& param);

}  // namespace tabsight::train
