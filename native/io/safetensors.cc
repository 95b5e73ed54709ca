#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "common/error.h"
#include "io/json.h"

namespace tabsight::io {

namespace {

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
};

const DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32}, {"F64", torch::kFloat64}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};

const char* DtypeName(c10::ScalarType t) {
  for (const auto& d : kDtypes) {
    if (d.type == t) return d.name;
  }
  Fail(ErrorCode::kData, std::string("safetensors: unsupported dtype ") + c10::toString(t));
}

[[noreturn]] void Bad(const std::string& path, const std::string& what) {
  Fail(ErrorCode::kData, "Invalid safetensors file " + path + ": " + what);
}

// Slicing-by-8 tables: table[0] is the bytewise table, table[k][i] the CRC
// of byte i followed by k zero bytes.
struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
    }
  }
};

std::string Hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

}  // namespace

uint32_t Crc32(const void* data, size_t n, uint32_t crc) {
  static const CrcTables tables;
  const auto& t = tables.t;
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    const uint32_t hi = uint32_t(p[4]) | uint32_t(p[5]) << 8 | uint32_t(p[6]) << 16 | uint32_t(p[7]) << 24;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
        t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = t[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
  return ~c;
}

const torch::Tensor* Safetensors::Find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

void WriteFileAtomic(const std::string& path, const std::string& bytes) {
  std::random_device rd;
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail(ErrorCode::kData, "Cannot write " + path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      Fail(ErrorCode::kData, "Cannot write " + path + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    Fail(ErrorCode::kData, "Cannot write " + path + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    Fail(ErrorCode::kData, "Cannot rename into " + path + ": " + std::strerror(err));
  }
}

void AppendLine(const std::string& path, const std::string& line) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) Fail(ErrorCode::kData, "Cannot append to " + path + ": " + std::strerror(errno));
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      Fail(ErrorCode::kData, "Cannot append to " + path + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
}

void WriteSafetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  WriteFileAtomic(path, SerializeSafetensors(tensors, metadata));
}

std::string SerializeSafetensors(const NamedTensors& tensors, const Metadata& metadata_in) {
  std::vector<torch::Tensor> cpu;
  cpu.reserve(tensors.size());
  for (const auto& item : tensors) cpu.push_back(item.second.detach().to(torch::kCPU).contiguous());
  // The data section's checksum, so that a reader can tell a damaged file from a valid one.
  uint32_t crc = 0;
  for (const auto& t : cpu) crc = Crc32(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size(), crc);
  Metadata metadata = metadata_in;
  metadata[kDataCrcKey] = Hex32(crc);
  std::ostringstream header;
  header << "{";
  bool first = true;
  if (!metadata.empty()) {
    header << "\"__metadata__\":{";
    bool mfirst = true;
    for (const auto& [k, v] : metadata) {
      header << (mfirst ? "" : ",") << QuoteJson(k) << ":" << QuoteJson(v);
      mfirst = false;
    }
    header << "}";
    first = false;
  }
  size_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string& name = tensors[i].first;
    const torch::Tensor& t = cpu[i];
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    header << (first ? "" : ",") << QuoteJson(name) << ":{\"dtype\":\"" << DtypeName(t.scalar_type())
           << "\",\"shape\":[";
    for (int64_t i = 0; i < t.dim(); ++i) header << (i ? "," : "") << t.size(i);
    header << "],\"data_offsets\":[" << offset << "," << offset + nbytes << "]}";
    offset += nbytes;
    first = false;
  }
  header << "}";
  std::string h = header.str();
  while (h.size() % 8 != 0) h += ' ';  // the spec pads the header to 8 bytes

  std::string bytes;
  bytes.reserve(8 + h.size() + offset);
  uint64_t hlen = h.size();
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((hlen >> (8 * i)) & 0xFF);
  bytes += h;
  for (const auto& t : cpu) bytes.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return bytes;
}

Safetensors ReadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(ErrorCode::kData, "Cannot open safetensors file " + path + ": " + std::strerror(errno));
  // A directory opens too (and reports a bogus size); only a regular file has bytes to read.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) Fail(ErrorCode::kData, "Cannot stat safetensors file " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) Bad(path, S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file");
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  if (!in || end < 0) Bad(path, "could not determine its size");
  const uint64_t size = static_cast<uint64_t>(end);
  in.seekg(0);
  if (size < 8) Bad(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  unsigned char lenbuf[8];
  if (!in.read(reinterpret_cast<char*>(lenbuf), 8)) Bad(path, "could not read the 8-byte header length");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(lenbuf[i]) << (8 * i);
  if (hlen > size - 8) Bad(path, "header length " + std::to_string(hlen) + " runs past the end of the file");
  std::string hdr(hlen, '\0');
  if (!in.read(hdr.data(), static_cast<std::streamsize>(hlen))) Bad(path, "could not read the header");
  Json root;
  try {
    root = ParseJson(hdr);
  } catch (const std::exception& e) {
    Bad(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (root.type != Json::Type::kObject) Bad(path, "header is not a JSON object");
  const uint64_t data_size = size - 8 - hlen;
  std::string data(data_size, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  if (!in) Bad(path, "could not read the data section");

  Safetensors out;
  for (const auto& [name, entry] : root.fields) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : entry.fields) {
        if (v.type != Json::Type::kString) Bad(path, "metadata value for " + k + " is not a string");
        out.metadata[k] = v.text;
      }
      continue;
    }
  }
  if (auto it = out.metadata.find(kDataCrcKey); it != out.metadata.end()) {
    const std::string got = Hex32(Crc32(data.data(), data.size()));
    if (it->second != got) {
      Bad(path, "its data section does not match its checksum (CRC-32 " + got + ", " + kDataCrcKey + " " + it->second +
                    "): the file is damaged");
    }
  }
  for (const auto& [name, entry] : root.fields) {
    if (name == "__metadata__") continue;
    const Json* dtype = entry.Find("dtype");
    const Json* shape = entry.Find("shape");
    const Json* offsets = entry.Find("data_offsets");
    if (!dtype || !shape || !offsets || dtype->type != Json::Type::kString || shape->type != Json::Type::kArray ||
        offsets->type != Json::Type::kArray || offsets->items.size() != 2) {
      Bad(path, "tensor " + name + " lacks dtype, shape or data_offsets");
    }
    c10::ScalarType type = torch::kFloat32;
    bool known = false;
    for (const auto& d : kDtypes) {
      if (dtype->text == d.name) type = d.type, known = true;
    }
    if (!known) Bad(path, "tensor " + name + " has unsupported dtype " + dtype->text);
    std::vector<int64_t> dims;
    int64_t numel = 1;
    try {
      for (const auto& d : shape->items) {
        int64_t v = d.AsInt();
        if (v < 0) throw std::runtime_error("negative");
        dims.push_back(v);
        numel *= v;
      }
      const uint64_t begin = static_cast<uint64_t>(offsets->items[0].AsInt());
      const uint64_t end = static_cast<uint64_t>(offsets->items[1].AsInt());
      const uint64_t expected = static_cast<uint64_t>(numel) * c10::elementSize(type);
      if (begin > end || end > data_size) {
        Bad(path, "tensor " + name + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                      "] outside the " + std::to_string(data_size) + "-byte data section");
      }
      if (end - begin != expected) {
        Bad(path, "tensor " + name + " has " + std::to_string(end - begin) + " bytes but its shape and dtype need " +
                      std::to_string(expected));
      }
      auto t = torch::empty(dims, torch::TensorOptions().dtype(type));
      if (expected) std::memcpy(t.data_ptr(), data.data() + begin, expected);
      out.tensors.emplace_back(name, t);
    } catch (const tabsight::Error&) {
      throw;
    } catch (const std::exception& e) {
      Bad(path, "tensor " + name + " has a malformed shape or data_offsets");
    }
  }
  return out;
}

}  // namespace tabsight::io
