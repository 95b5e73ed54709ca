#include "distributed/comm.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef TABSIGHT_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef TABSIGHT_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/error.h"

namespace tabsight::dist {

namespace {

using Ms = std::chrono::milliseconds;

constexpr auto kBeatInterval = std::chrono::milliseconds(1000);
// A heartbeat that has not moved for this long counts as stopped.
constexpr auto kBeatWindow = std::chrono::milliseconds(3000);

std::string Str(int64_t v) { return std::to_string(v); }

std::string Seconds(double s) {
  std::ostringstream o;
  o << s << " s";
  return o.str();
}

// c10::Error's what() carries a C++ backtrace; keep the message only.
std::string Message(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string Text(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

std::string JoinKey(int64_t r) { return "tabsight/join/" + Str(r); }
std::string BeatKey(int64_t r) { return "tabsight/beat/" + Str(r); }
std::string ErrorKey(int64_t r) { return "tabsight/error/" + Str(r); }

std::string RankList(const std::vector<int64_t>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + Str(ranks[i]);
  return s;
}

#ifdef TABSIGHT_HAVE_GLOO
bool IsLoopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}
#endif

}  // namespace

// The class ProcessGroupGloo and ProcessGroupNCCL derive from, whose
// collectives we call: c10d::ProcessGroup in LibTorch 1.x; from 2.0 the
// backends derive from c10d::Backend, and a ProcessGroup only dispatches to
// them. The collectives' signatures are the same in both.
#if TORCH_VERSION_MAJOR >= 2
using ProcessGroupBase = c10d::Backend;
#else
using ProcessGroupBase = c10d::ProcessGroup;
#endif

struct PendingWork {
  c10::intrusive_ptr<c10d::Work> work;
};

struct Comm::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;       // the rendezvous client (and server on rank 0)
  c10::intrusive_ptr<c10d::TCPStore> beat_store;  // heartbeats and diagnosis: its own connection
  std::mutex beat_mu;                             // guards beat_store
  c10::intrusive_ptr<ProcessGroupBase> pg;
  std::thread beat;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop = false;
  int64_t beats = 0;
  Ms timeout{60000};
};

bool HaveBackend(const std::string& backend) {
#ifdef TABSIGHT_HAVE_GLOO
  if (backend == "gloo") return true;
#endif
#ifdef TABSIGHT_HAVE_NCCL
  if (backend == "nccl") return true;
#endif
  return false;
}

Comm::Comm(const DistConfig& config) : config_(config), impl_(std::make_unique<Impl>()) {
  impl_->timeout = Ms(static_cast<int64_t>(config.timeout_sec * 1000));
}

Comm::~Comm() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stop = true;
  }
  impl_->stop_cv.notify_all();
  if (impl_->beat.joinable()) impl_->beat.join();
  try {
    impl_->pg.reset();  // waits for queued work; each piece is bounded by the timeout
    impl_->beat_store.reset();
    impl_->store.reset();
  } catch (...) {
  }
}

std::shared_ptr<Comm> Comm::Create(const DistConfig& config) {
  if (config.world_size < 2) Fail(ErrorCode::kConfig, "A process group needs a world size of at least 2");
  if (config.rank < 0 || config.rank >= config.world_size) {
    Fail(ErrorCode::kConfig, "Expected rank in [0, " + Str(config.world_size) + ") but received " + Str(config.rank));
  }
  if (!HaveBackend(config.backend)) {
    if (config.backend == "nccl") {
      Fail(ErrorCode::kConfig, "backend nccl needs a CUDA LibTorch built with NCCL (and nccl.h at build time); this build has " +
                                   std::string(HaveBackend("gloo") ? "gloo only" : "no distributed backend"));
    }
    Fail(ErrorCode::kConfig, "backend " + config.backend +
                                 " is not in this build of tabsight: install gloo's headers (Debian: apt-get install libgloo-dev) and rebuild (npm run build:native)");
  }
  std::shared_ptr<Comm> comm(new Comm(config));
  comm->Rendezvous();
  return comm;
}

void Comm::Rendezvous() {
  const auto& c = config_;
  const std::string where = c.master_addr + ":" + Str(c.master_port);
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(c.master_port);
  options.isServer = c.rank == 0 && !c.external_store;
  options.waitWorkers = false;  // the join keys below name who is missing
  options.timeout = impl_->timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(c.master_addr, options);
  } catch (const std::exception& e) {
    if (options.isServer) {
      Fail(ErrorCode::kDist, "rank 0 could not open the rendezvous store on " + where + " (" + Message(e) +
                                 "); is MASTER_PORT free?");
    }
    Fail(ErrorCode::kDist, "rank " + Str(c.rank) + " could not reach the rendezvous store at " + where + " within " +
                               Seconds(c.timeout_sec) + "; is rank 0 running with the same MASTER_ADDR and MASTER_PORT? (" +
                               Message(e) + ")");
  }
  auto& store = *impl_->store;
  std::vector<std::string> keys;
  for (int64_t r = 0; r < c.world_size; ++r) keys.push_back(JoinKey(r));
  try {
    store.set(JoinKey(c.rank), Bytes(Str(c.world_size)));
    store.wait(keys, impl_->timeout);
  } catch (const std::exception& e) {
    std::vector<int64_t> missing;
    try {
      for (int64_t r = 0; r < c.world_size; ++r) {
        if (!store.check({JoinKey(r)})) missing.push_back(r);
      }
    } catch (...) {
    }
    if (missing.empty()) Fail(ErrorCode::kDist, "the rendezvous at " + where + " failed: " + Message(e));
    Fail(ErrorCode::kDist, RankList(missing) + " did not join the rendezvous at " + where + " within " +
                               Seconds(c.timeout_sec) + " (world size " + Str(c.world_size) + ")");
  }
  for (int64_t r = 0; r < c.world_size; ++r) {
    const std::string w = Text(store.get(JoinKey(r)));
    if (w != Str(c.world_size)) {
      Fail(ErrorCode::kDist, "rank " + Str(r) + " was started with WORLD_SIZE " + w + " but rank " + Str(c.rank) +
                                 " with " + Str(c.world_size));
    }
  }

  // A second connection for the heartbeat thread, so that it never waits
  // behind a blocking call on the first.
  c10d::TCPStoreOptions beat_options = options;
  beat_options.isServer = false;
  beat_options.timeout = std::min(impl_->timeout, Ms(10000));
  try {
    impl_->beat_store = c10::make_intrusive<c10d::TCPStore>(c.master_addr, beat_options);
    impl_->beat_store->set(BeatKey(c.rank), Bytes("0:0"));
  } catch (const std::exception& e) {
    Fail(ErrorCode::kDist, "rank " + Str(c.rank) + " lost the rendezvous store at " + where + ": " + Message(e));
  }
  StartHeartbeat();

  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("tabsight/pg", impl_->store);
  try {
#ifdef TABSIGHT_HAVE_GLOO
    if (c.backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(impl_->timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname && *ifname) {
        std::string first(ifname);
        first = first.substr(0, first.find(','));
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(first));
      } else if (IsLoopback(c.master_addr)) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      opts->threads = 2;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, static_cast<int>(c.rank),
                                                              static_cast<int>(c.world_size), opts);
    }
#endif
#ifdef TABSIGHT_HAVE_NCCL
    if (c.backend == "nccl") {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = impl_->timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, static_cast<int>(c.rank),
                                                              static_cast<int>(c.world_size), opts);
    }
#endif
  } catch (const tabsight::Error&) {
    throw;
  } catch (const std::exception& e) {
    FailCollective("process group setup", Message(e));
  }
  if (!impl_->pg) Fail(ErrorCode::kConfig, "backend " + c.backend + " is not in this build of tabsight");
}

void Comm::StartHeartbeat() {
  Impl* impl = impl_.get();
  const int64_t rank = config_.rank;
  impl->beat = std::thread([this, impl, rank] {
    std::unique_lock<std::mutex> lock(impl->stop_mu);
    while (!impl->stop) {
      lock.unlock();
      try {
        std::lock_guard<std::mutex> guard(impl->beat_mu);
        ++impl->beats;
        impl->beat_store->set(BeatKey(rank), Bytes(Str(impl->beats) + ":" + Str(step_.load())));
      } catch (...) {
        // The store is gone (rank 0 exited); a failing collective reports it.
      }
      lock.lock();
      impl->stop_cv.wait_for(lock, kBeatInterval, [impl] { return impl->stop; });
    }
  });
}

void Comm::ReportFailure(const std::string& message) noexcept {
  try {
    std::lock_guard<std::mutex> guard(impl_->beat_mu);
    if (impl_->beat_store) impl_->beat_store->set(ErrorKey(config_.rank), Bytes(message));
  } catch (...) {
  }
}

std::string Comm::Diagnose() {
  const auto& c = config_;
  struct Beat {
    bool known = false;
    int64_t beats = 0, step = 0;
  };
  auto reported = [&]() -> std::string {
    for (int64_t r = 0; r < c.world_size; ++r) {
      if (r == c.rank) continue;
      if (impl_->beat_store->check({ErrorKey(r)})) return "rank " + Str(r) + " failed: " + Text(impl_->beat_store->get(ErrorKey(r)));
    }
    return "";
  };
  auto read = [&]() {
    std::vector<Beat> beats(static_cast<size_t>(c.world_size));
    for (int64_t r = 0; r < c.world_size; ++r) {
      if (!impl_->beat_store->check({BeatKey(r)})) continue;
      const std::string v = Text(impl_->beat_store->get(BeatKey(r)));
      const auto colon = v.find(':');
      auto& b = beats[static_cast<size_t>(r)];
      b.known = true;
      b.beats = std::stoll(v.substr(0, colon));
      b.step = colon == std::string::npos ? 0 : std::stoll(v.substr(colon + 1));
    }
    return beats;
  };
  try {
    std::vector<Beat> before;
    {
      std::lock_guard<std::mutex> guard(impl_->beat_mu);
      if (!impl_->beat_store) return "";
      if (auto r = reported(); !r.empty()) return r;
      before = read();
    }
    std::this_thread::sleep_for(kBeatWindow);
    std::lock_guard<std::mutex> guard(impl_->beat_mu);
    if (auto r = reported(); !r.empty()) return r;
    auto after = read();
    std::vector<int64_t> stopped, behind;
    const int64_t my_step = step_.load();
    int64_t behind_step = my_step;
    for (int64_t r = 0; r < c.world_size; ++r) {
      if (r == c.rank) continue;
      const auto& a = after[static_cast<size_t>(r)];
      const auto& b = before[static_cast<size_t>(r)];
      if (!a.known || a.beats == b.beats) {
        stopped.push_back(r);
      } else if (a.step < my_step) {
        behind.push_back(r);
        behind_step = std::min(behind_step, a.step);
      }
    }
    const auto window = std::chrono::duration<double>(kBeatWindow).count();
    if (!stopped.empty()) {
      return RankList(stopped) + (stopped.size() == 1 ? " has" : " have") + " died or hung (no heartbeat for " +
             Seconds(window) + ")";
    }
    if (!behind.empty()) {
      return RankList(behind) + " did not respond within " + Seconds(c.timeout_sec) + " (still at step " +
             Str(behind_step) + "; this rank is at step " + Str(my_step) + ")";
    }
    return "";
  } catch (const std::exception&) {
    if (c.external_store) return "the rendezvous store at " + c.master_addr + ":" + Str(c.master_port) + " is unreachable";
    if (c.rank != 0) {
      return "rank 0 (which hosts the rendezvous store at " + c.master_addr + ":" + Str(c.master_port) +
             ") is unreachable: it has died or exited";
    }
    return "";
  }
}

void Comm::FailCollective(const char* what, const std::string& detail) {
  const auto& c = config_;
  std::string culprit = Diagnose();
  if (culprit.empty()) {
    culprit = c.world_size == 2 ? "rank " + Str(1 - c.rank) + " did not respond within " + Seconds(c.timeout_sec)
                                : "a rank did not respond within " + Seconds(c.timeout_sec);
  }
  Fail(ErrorCode::kDist, culprit + "; rank " + Str(c.rank) + " stopped in the " + what + " (" + c.backend + ": " +
                             detail + ")");
}

std::shared_ptr<PendingWork> Comm::AllReduceSumAsync(torch::Tensor& tensor) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  options.timeout = impl_->timeout;
  try {
    return std::make_shared<PendingWork>(PendingWork{impl_->pg->allreduce(tensors, options)});
  } catch (const std::exception& e) {
    FailCollective("all-reduce", Message(e));
  }
}

void Comm::Wait(const std::shared_ptr<PendingWork>& work, const char* what) {
  try {
    // Gloo enforces the timeout on every transfer; the bound here only
    // guarantees that nothing waits forever.
    work->work->wait(impl_->timeout + Ms(5000));
  } catch (const tabsight::Error&) {
    throw;
  } catch (const std::exception& e) {
    FailCollective(what, Message(e));
  }
}

void Comm::AllReduceSum(torch::Tensor& tensor, const char* what) { Wait(AllReduceSumAsync(tensor), what); }

std::vector<torch::Tensor> Comm::AllGather(const torch::Tensor& tensor, const char* what) {
  auto input = tensor.contiguous();
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int64_t r = 0; r < config_.world_size; ++r) outputs[0].push_back(torch::empty_like(input));
  std::vector<at::Tensor> inputs{input};
  c10d::AllgatherOptions options;
  options.timeout = impl_->timeout;
  std::shared_ptr<PendingWork> work;
  try {
    work = std::make_shared<PendingWork>(PendingWork{impl_->pg->allgather(outputs, inputs, options)});
  } catch (const std::exception& e) {
    FailCollective(what, Message(e));
  }
  Wait(work, what);
  return outputs[0];
}

void Comm::Broadcast(std::vector<torch::Tensor>& tensors, int64_t root, const char* what) {
  torch::NoGradGuard no_grad;
  // One flat buffer per dtype (Gloo broadcasts one tensor per call).
  std::map<c10::ScalarType, std::vector<size_t>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].defined() && tensors[i].numel() > 0) groups[tensors[i].scalar_type()].push_back(i);
  }
  for (auto& [type, members] : groups) {
    std::vector<torch::Tensor> flat_parts;
    for (size_t i : members) flat_parts.push_back(tensors[i].detach().reshape({-1}));
    std::vector<at::Tensor> flat{torch::cat(flat_parts)};
    c10d::BroadcastOptions options;
    options.rootRank = static_cast<int64_t>(root);
    options.rootTensor = 0;
    options.timeout = impl_->timeout;
    std::shared_ptr<PendingWork> work;
    try {
      work = std::make_shared<PendingWork>(PendingWork{impl_->pg->broadcast(flat, options)});
    } catch (const std::exception& e) {
      FailCollective(what, Message(e));
    }
    Wait(work, what);
    int64_t offset = 0;
    for (size_t i : members) {
      auto& t = tensors[i];
      t.detach().copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace tabsight::dist
