// A C++ driver of tabsight's native trainer (native/train/trainer.h), for
// measuring the training step and the epoch where Node is not installed
// (GPU nodes): the same Trainer that `tabsight pretrain` runs through N-API,
// on synthetic data. Built by benchmarks/native/build.sh; used by
// benchmarks/cuda.sh.
//
//   train_bench --mode step|epoch|adam-check [--device cuda] [--arch resnet18] [--batch 64]
//               [--size 128] [--features 100] [--steps 20] [--warmup 3]
//               [--epochs 3] [--n 4096] [--precision fp32|bf16] [--threads N]
//               [--data-threads N] [--out DIR]
//
// step:  augmentation off, one epoch of warmup + steps batches; each step's
//        time is the wall time between the trainer's progress callbacks
//        (so it includes waiting for the prefetched batch, which is ready).
// epoch: MMCL's cardiac augmentations (rate 0.95, flip, rotation 45°,
//        colour jitter 0.5, random resized crop 0.2–1) and 30% tabular
//        corruption on a uint8 store of n images; each epoch's wall time,
//        checkpoint included (the part written in place: all of the first
//        and last epochs', and the copy of the state for the others, whose
//        file is written while the next epoch trains).
// adam-check: no training; the multi-tensor Adam step that the trainer runs
//        off the CPU against torch::optim's Adam and AdamW on `device`
//        (train/adam_check.h, as test/fused-adam.test.ts checks on the
//        CPU), one line per optimizer and weight decay.
// --data-threads: the prefetch thread's intra-op threads (SetDataThreads;
// default: 1 on the CPU, all intra-op threads on CUDA).
// Prints one JSON line per figure.
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <execinfo.h>
#include <unistd.h>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "train/adam_check.h"
#include "train/trainer.h"

namespace {

using Clock = std::chrono::steady_clock;

// Until 2026-11-28 every training run on a GPU node died with SIGSEGV after
// printing its figures: fs::remove_all bound to a copy of libstdc++'s inside
// pip's libtorch.so (build.sh now lists libstdc++ first). On a fatal signal
// this prints the raw frames (symbolised through the dynamic symbol table;
// the build links with -rdynamic), then dies of the same signal, so the exit
// status is unchanged.
void OnFatalSignal(int sig) {
  static const char msg[] = "train_bench: fatal signal, backtrace:\n";
  void* frames[64];
  const int n = backtrace(frames, 64);
  if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {}
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void InstallFatalSignalHandlers() {
  // backtrace() loads libgcc on its first call; do that now, not in the handler.
  void* frame;
  backtrace(&frame, 1);
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, OnFatalSignal);
}

// Where the process is, on stderr: a crash's stderr then says which stage it reached.
void Stage(const char* what) {
  std::fprintf(stderr, "train_bench: %s\n", what);
  std::fflush(stderr);
}

std::map<std::string, std::string> ParseArgs(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) throw std::runtime_error("expected --name value pairs, got " + k);
    a[k.substr(2)] = argv[i + 1];
  }
  return a;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

std::string Join(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  InstallFatalSignalHandlers();
  try {
    auto a = ParseArgs(argc, argv);
    auto get = [&](const std::string& k, const std::string& d) { return a.count(k) ? a[k] : d; };
    const std::string mode = get("mode", "step");
    const std::string device = get("device", "cpu");
    const int64_t batch = std::stoll(get("batch", "64")), size = std::stoll(get("size", "128"));
    const int64_t features = std::stoll(get("features", "100"));
    const int64_t steps = std::stoll(get("steps", "20")), warmup = std::stoll(get("warmup", "3"));
    const int64_t epochs = mode == "epoch" ? std::stoll(get("epochs", "3")) : 1;
    const int64_t n = mode == "epoch" ? std::stoll(get("n", "4096")) : batch * (warmup + steps);
    if (a.count("threads")) at::set_num_threads(std::stoi(a["threads"]));
    if (a.count("data-threads")) tabsight::train::SetDataThreads(std::stoi(a["data-threads"]));
    if (mode == "adam-check") {
      for (const char* opt : {"adam", "adamw"}) {
        for (double wd : {0.0, 0.1}) {
          auto r = tabsight::train::CompareAdamWithLibTorch(opt, "multiTensor", 6, 3e-3, wd, 11, torch::Device(device));
          std::string st;
          for (size_t i = 0; i < r.steps.size(); ++i) st += (i ? "," : "") + std::to_string(r.steps[i]);
          std::printf(
              "{\"figure\":\"multi-tensor %s vs torch::optim\",\"device\":\"%s\",\"weight_decay\":%g,\"steps\":6,"
              "\"max_param_diff\":%.3e,\"max_moment_diff\":%.3e,\"max_update\":%.3e,\"step_counts\":[%s],\"torch\":\"%s\"}\n",
              opt, device.c_str(), wd, r.max_param_diff, r.max_moment_diff, r.max_update, st.c_str(), TORCH_VERSION);
        }
      }
      std::fflush(stdout);
      std::_Exit(0);
    }

    namespace fs = std::filesystem;
    const std::string out = get("out", (fs::temp_directory_path() / ("tabsight-train-bench-" + std::to_string(::getpid()))).string());
    fs::create_directories(out);

    tabsight::train::TrainConfig c;
    c.mode = "multimodal";
    c.device = device;
    c.seed = 0;
    c.epochs = epochs;
    c.batch_size = batch;
    c.lr = 3e-3;
    c.weight_decay = 1e-4;
    c.warmup_epochs = 0;
    c.precision = get("precision", "fp32");
    c.image.arch = get("arch", "resnet18");
    c.image.in_channels = 3;
    c.image.small_stem = false;
    c.tabular_hidden = 2048;
    c.tabular_layers = 2;
    c.projection_hidden = 2048;
    c.projection_dim = 128;
    c.clip.temperature = 0.1;
    c.clip.lambda = 0.5;
    c.augment.rate = mode == "epoch" ? 0.95 : 0.0;  // the struct's other defaults are MMCL's cardiac pipeline
    c.augment.out_h = c.augment.out_w = size;
    c.corruption_rate = 0.3;
    c.mean = {0.5, 0.5, 0.5};
    c.std = {0.25, 0.25, 0.25};
    c.checkpoint_every = 1;
    c.out_dir = out;
    c.config_json = "{}";

    tabsight::train::TrainData d;
    torch::manual_seed(1);
    d.images = torch::randint(0, 256, {n, 3, size, size}, torch::kUInt8);
    d.tabular = torch::randn({n, features});
    d.spec.cardinalities.assign(features, 0);
    d.scan_images = false;

    tabsight::train::Trainer trainer(c, d);
    std::vector<double> step_s, epoch_s;
    std::atomic<bool> abort{false};
    auto last = Clock::now();
    auto epoch_start = last;
    double loss = 0;
    const auto t0 = Clock::now();
    Stage("training");
    trainer.Run(
        [&](const tabsight::train::Progress& p) {
          // When the step finished, not when its event arrived: events are
          // held back while an epoch's checkpoint is written in the
          // background (Trainer::Run).
          const auto now = p.done_at;
          if (p.step > warmup) step_s.push_back(std::chrono::duration<double>(now - last).count());
          last = now;
          loss = p.loss;
          if (p.epoch_done) {
            epoch_s.push_back(std::chrono::duration<double>(now - epoch_start).count());
            epoch_start = now;
          }
        },
        abort);
    Stage("training done");
    const double total = std::chrono::duration<double>(Clock::now() - t0).count();
    const double med = Median(step_s);
    std::printf(
        "{\"figure\":\"tabsight-native-%s\",\"device\":\"%s\",\"arch\":\"%s\",\"precision\":\"%s\",\"batch\":%lld,"
        "\"size\":%lld,\"n\":%lld,\"threads\":%d,\"torch\":\"%s\",\"median_step_s\":%.6f,\"img_per_s\":%.2f,"
        "\"step_s\":%s,\"epoch_s\":%s,\"total_s\":%.3f,\"last_loss\":%.6f}\n",
        mode.c_str(), device.c_str(), c.image.arch.c_str(), c.precision.c_str(), static_cast<long long>(batch),
        static_cast<long long>(size), static_cast<long long>(n), at::get_num_threads(), TORCH_VERSION,
        med, med > 0 ? batch / med : 0.0, Join(step_s).c_str(), Join(epoch_s).c_str(), total, loss);
    std::fflush(stdout);
    Stage("figures printed; removing the run directory");
    fs::remove_all(out);
    Stage("run directory removed; exiting");
    // Skip static destructors: nothing is left to flush. (The segfault this
    // was added for, on every GPU run since 2026-11-26, was in remove_all
    // above, not here; see build.sh. Only this exit has been run on the GPU
    // since that fix.)
    std::_Exit(0);
  } catch (const tabsight::Error& e) {
    std::fprintf(stderr, "%s: %s\n", tabsight::CodeName(e.code()), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}
