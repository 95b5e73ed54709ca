// Our own safetensors reader and writer (https://github.com/huggingface/safetensors
// format: u64 little-endian header length, a JSON header, then the bytes).
// Checkpoints and the standalone image encoder use it.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tabsight::io {

using Metadata = std::map<std::string, std::string>;
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct Safetensors {
  NamedTensors tensors;
  Metadata metadata;
  const torch::Tensor* Find(const std::string& name) const;
};

// Writes atomically: a temporary file in the same folder, fsync, rename.
// Tensors are copied to CPU. Supported dtypes: F32, F64, F16, BF16, I64,
// I32, I16, I8, U8, BOOL.
void WriteSafetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata);

// The bytes WriteSafetensors writes (the tensors copied to the CPU), for a
// caller that writes them later or on another thread (WriteFileAtomic).
std::string SerializeSafetensors(const NamedTensors& tensors, const Metadata& metadata);

// Reads the whole file; errors (kData) name the file and the tensor.
Safetensors ReadSafetensors(const std::string& path);

// Writes `bytes` to `path` atomically (temp file + fsync + rename).
void WriteFileAtomic(const std::string& path, const std::string& bytes);

// Appends one line (a newline is added) and fsyncs, so that a line written
// before a checkpoint is on disk before the checkpoint is.
void AppendLine(const std::string& path, const std::string& line);

}  // namespace tabsight::io
