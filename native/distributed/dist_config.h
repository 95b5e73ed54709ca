// Process group settings (what TypeScript resolves from torchrun's
// environment or the distributed option). Kept apart from comm.h so that
// the trainer's header does not depend on the communication code.
#pragma once

#include <cstdint>
#include <string>

namespace tabsight::dist {

struct DistConfig {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  double timeout_sec = 60;
  std::string backend = "gloo";  // gloo | nccl
  // The store at master_addr:master_port is hosted by someone else (torchrun's
  // agent with TORCHELASTIC_USE_AGENT_STORE=True); otherwise rank 0 hosts it.
  bool external_store = false;
  bool enabled() const { return world_size > 1; }
};

// Whether this build has a backend ("gloo", "nccl").
bool HaveBackend(const std::string& backend);

}  // namespace tabsight::dist
