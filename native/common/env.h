// Switches read from the environment once, for the native paths that can be
// turned off (or on) to compare against LibTorch's own.
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace tabsight {

// An environment flag: `default_on` unless the variable is set. A flag that is
// on by default is turned off by "0"; one that is off by default is turned on
// by "1". Any other value leaves the default.
inline bool EnvFlag(const char* name, bool default_on) {
  const char* v = std::getenv(name);
  if (v == nullptr) return default_on;
  return default_on ? std::strcmp(v, "0") != 0 : std::strcmp(v, "1") == 0;
}

// A process-wide switch whose first value comes from EnvFlag and which a
// setter (the `_winograd(enabled)` kind of binding) can change later.
class EnvSwitch {
 public:
  EnvSwitch(const char* name, bool default_on) : enabled_(EnvFlag(name, default_on)) {}
  bool Enabled() const { return enabled_.load(std::memory_order_relaxed); }
  // Sets the switch; returns its previous value.
  bool Set(bool enabled) { return enabled_.exchange(enabled); }

 private:
  std::atomic<bool> enabled_;
};

}  // namespace tabsight
