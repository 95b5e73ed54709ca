// Errors raised by the native core. Plain C++ (no napi.h): the binding maps
// each code to a JS error class with a stable `.code` (lib/errors.ts).
#pragma once

#include <stdexcept>
#include <string>

namespace tabsight {

enum class ErrorCode { kShape, kTorch, kOom, kDisposed, kAborted, kConfig, kData, kBusy, kDist };

inline const char* CodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kShape: return "ERR_SHAPE";
    case ErrorCode::kTorch: return "ERR_TORCH";
    case ErrorCode::kOom: return "ERR_OOM";
    case ErrorCode::kDisposed: return "ERR_DISPOSED";
    case ErrorCode::kAborted: return "ERR_ABORTED";
    case ErrorCode::kConfig: return "ERR_CONFIG";
    case ErrorCode::kData: return "ERR_DATA";
    case ErrorCode::kBusy: return "ERR_BUSY";
    case ErrorCode::kDist: return "ERR_DIST";
  }
  return "ERR_TORCH";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void Fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

}  // namespace tabsight
