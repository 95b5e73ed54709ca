// A read-only memory mapping of a whole file, for image stores too large to
// copy: tensors view the mapping, and the OS pages in only what is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tabsight::io {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tabsight::io
