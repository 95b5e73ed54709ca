// Our own safetensors reader and writer (https://github.com/huggingface/safetensors
// format: u64 little-endian header length, a JSON header, then the bytes).
// Checkpoints and the standalone image encoder use it.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
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

// Reads the whole file; errors (kData) name the file and the tensor. A file
// whose metadata holds data_crc32 (every file these writers wrote since
// 2026-11-27) is checked against it: a corrupt data section is an error.
Safetensors ReadSafetensors(const std::string& path);

// The metadata key of the data section's CRC-32 (IEEE, as zlib's crc32), 8
// lowercase hex digits; SerializeSafetensors sets it.
inline constexpr const char* kDataCrcKey = "data_crc32";

// CRC-32 (IEEE 802.3, reflected 0xEDB88320, as zlib's crc32) of `n` bytes,
// continuing from `crc` (0 to start).
uint32_t Crc32(const void* data, size_t n, uint32_t crc = 0);

// Writes `bytes` to `path` atomically (temp file + fsync + rename).
void WriteFileAtomic(const std::string& path, const std::string& bytes);

// Appends one line (a newline is added) and fsyncs, so that a line written
// before a checkpoint is on disk before the checkpoint is.
void AppendLine(const std::string& path, const std::string& line);

}  // namespace tabsight::io
