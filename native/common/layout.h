// The memory layout a native kernel works in for a 4-d tensor.
#pragma once

#include <torch/torch.h>

namespace tabsight {

// NCHW when x is contiguous (also when it is both, as at 1×1 maps), else
// channels_last when it is, else NCHW (after the caller's copy).
inline at::MemoryFormat LayoutOf(const torch::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast) ? at::MemoryFormat::ChannelsLast
                                                                               : at::MemoryFormat::Contiguous;
}

}  // namespace tabsight
