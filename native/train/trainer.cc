#include "train/trainer.h"

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <atomic>
#include <mutex>
#include <numeric>
#include <sstream>
#include <type_traits>
#include <thread>

#include <ATen/Parallel.h>

#include "common/caching_cpu_allocator.h"
#include "common/env.h"
#include "common/error.h"
#include "common/rng.h"
#include "common/threads.h"
#include "distributed/gather.h"
#include "distributed/grad_reducer.h"
#include "distributed/sync_batch_norm.h"
#include "models/batch_norm.h"
#include "train/fused_adam.h"

namespace tabsight::train {

namespace nn = torch::nn;

namespace {

// Streams of the counter-based RNG.
constexpr uint64_t kStreamOrder = 1, kStreamView1 = 2, kStreamView2 = 3, kStreamCorrupt = 4;

std::string Str(int64_t v) { return std::to_string(v); }

// With several ranks, "cuda" means this rank's GPU: cuda:LOCAL_RANK.
torch::Device DeviceFor(const TrainConfig& c) {
  torch::Device d = ResolveDevice(c.device);
  if (d.is_cuda() && !d.has_index() && c.dist.enabled()) {
    return ResolveDevice("cuda:" + Str(c.dist.local_rank));
  }
  return d;
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

std::atomic<int> g_data_threads{0};

}  // namespace

void SetDataThreads(int n) {
  if (n < 0 || n > kMaxThreads) {
    Fail(ErrorCode::kConfig, "Expected integer between 0 and " + std::to_string(kMaxThreads) + " for dataThreads but received " +
                                 std::to_string(n));
  }
  g_data_threads.store(n);
}

int DataThreads(const torch::Device& device) {
  const int n = g_data_threads.load();
  if (n > 0) return n;
  return device.is_cuda() ? at::get_num_threads() : 1;
}

bool ResolveChannelsLast(const std::string& memory_format, const torch::Device& device) {
  if (memory_format == "channels_last") return true;
  if (memory_format == "contiguous") return false;
  if (memory_format == "auto") return !device.is_cuda();
  Fail(ErrorCode::kConfig, "Expected auto, channels_last or contiguous for memoryFormat but received \"" + memory_format + "\"");
}

torch::Device ResolveDevice(const std::string& device) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  if (device.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) {
      Fail(ErrorCode::kConfig,
           "device \"" + device + "\" was requested but this LibTorch (" TORCH_VERSION
           ") has no CUDA support or sees no GPU; build tabsight against a CUDA LibTorch (TORCH_DIR=/path/to/libtorch npm run build:native)");
    }
    torch::Device d(device);
    if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count())) {
      Fail(ErrorCode::kConfig, "device \"" + device + "\" does not exist; " + Str(torch::cuda::device_count()) + " GPU(s) visible");
    }
    return d;
  }
  Fail(ErrorCode::kConfig, "Expected cpu, cuda or cuda:N for device but received \"" + device + "\"");
}

NetworkImpl::NetworkImpl(const TrainConfig& c, int64_t tabular_width) {
  image = register_module("image", models::ResNet(c.image));
  const int64_t d = image->feature_dim();
  if (c.mode == "multimodal") {
    image_projection = register_module(
        "image_projection", models::ProjectionHead(d, c.projection_hidden, c.projection_dim, c.projection_batch_norm));
    tabular = register_module("tabular", models::TabularEncoder(tabular_width, c.tabular_hidden, c.tabular_layers));
    tabular_projection = register_module(
        "tabular_projection",
        models::ProjectionHead(c.tabular_hidden, c.projection_hidden, c.projection_dim, c.projection_batch_norm));
  } else if (c.mode == "simclr") {
    image_projection = register_module(
        "image_projection", models::ProjectionHead(d, c.projection_hidden, c.projection_dim, c.projection_batch_norm));
  } else if (c.mode == "supervised") {
    if (c.num_classes < 1) Fail(ErrorCode::kConfig, "supervised mode needs at least 2 classes or regression targets");
    classifier = register_module("classifier", nn::Linear(d, c.num_classes));
  } else {
    Fail(ErrorCode::kConfig, "Expected one of multimodal, simclr, supervised for mode but received \"" + c.mode + "\"");
  }
}

struct Trainer::Batch {
  torch::Tensor view1, view2, tabular, labels, targets;
  // The labels of the whole global batch (what a contrastive loss over
  // gathered projections masks with); equal to labels in one process.
  torch::Tensor labels_global;
};

class Trainer::DeterminismScope {
 public:
  DeterminismScope() {
    auto& ctx = at::globalContext();
    benchmark_ = ctx.benchmarkCuDNN();
    cudnn_ = ctx.deterministicCuDNN();
    algorithms_ = ctx.deterministicAlgorithms();
    warn_only_ = ctx.deterministicAlgorithmsWarnOnly();
    ctx.setBenchmarkCuDNN(false);
    ctx.setDeterministicCuDNN(true);
    ctx.setDeterministicAlgorithms(true, /*warn_only=*/false);
  }
  ~DeterminismScope() {
    auto& ctx = at::globalContext();
    ctx.setBenchmarkCuDNN(benchmark_);
    ctx.setDeterministicCuDNN(cudnn_);
    ctx.setDeterministicAlgorithms(algorithms_, warn_only_);
  }
  DeterminismScope(const DeterminismScope&) = delete;
  DeterminismScope& operator=(const DeterminismScope&) = delete;

 private:
  bool benchmark_, cudnn_, algorithms_, warn_only_;
};

Trainer::Trainer(TrainConfig config, TrainData data)
    : config_(std::move(config)), data_(std::move(data)), device_(DeviceFor(config_)) {
  Validate();
  precision_ = ParsePrecision(config_.precision);
  if (config_.deterministic) {
    determinism_ = std::make_unique<DeterminismScope>();
  } else if (device_.is_cuda()) {
    // Training shapes are fixed, so let cuDNN time its algorithms once per
    // shape and keep the fastest (torch.backends.cudnn.benchmark); process-wide.
    // TABSIGHT_CUDNN_BENCHMARK=0 keeps LibTorch's default (off).
    at::globalContext().setBenchmarkCuDNN(EnvFlag("TABSIGHT_CUDNN_BENCHMARK", true));
  }
  n_ = data_.rows.defined() ? data_.rows.size(0) : data_.images.size(0);
  world_ = config_.dist.enabled() ? config_.dist.world_size : 1;
  rank_ = config_.dist.enabled() ? config_.dist.rank : 0;
  batch_size_ = std::min<int64_t>(config_.batch_size, n_);
  batch_size_ -= batch_size_ % world_;  // only when the cap at n applies: TypeScript checks divisibility
  if (batch_size_ < world_) {
    Fail(ErrorCode::kConfig, "Expected at least one image per rank but " + Str(n_) + " images and " + Str(world_) +
                                 " ranks leave none");
  }
  local_batch_ = batch_size_ / world_;
  if (world_ > 1 && !config_.sync_batch_norm && local_batch_ < 2) {
    Fail(ErrorCode::kConfig, "Expected at least 2 images per rank without syncBatchNorm (batch norm needs them) but the batch of " +
                                 Str(batch_size_) + " over " + Str(world_) + " ranks gives " + Str(local_batch_));
  }
  steps_per_epoch_ = n_ / batch_size_;  // the last partial batch is dropped
  torch::manual_seed(config_.seed);
  net_ = Network(config_, data_.tabular.defined() ? data_.spec.EncodedWidth() : 0);
  if (!config_.init_weights.empty()) {
    LoadImageEncoderTensors(net_->image, io::ReadSafetensors(config_.init_weights), config_.init_weights);
  }
  net_->to(device_);
  channels_last_ = ResolveChannelsLast(config_.memory_format, device_);
  if (channels_last_) models::SetConvMemoryFormat(*net_->image, torch::MemoryFormat::ChannelsLast);
  if (config_.optimizer == "adam") {
    optimizer_ = std::make_unique<torch::optim::Adam>(
        net_->parameters(), torch::optim::AdamOptions(config_.lr).weight_decay(config_.weight_decay));
  } else if (config_.optimizer == "adamw") {
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        net_->parameters(), torch::optim::AdamWOptions(config_.lr).weight_decay(config_.weight_decay));
  } else {
    Fail(ErrorCode::kConfig, "Expected adam or adamw for optimizer but received \"" + config_.optimizer + "\"");
  }
  if (world_ > 1) {
    comm_ = dist::Comm::Create(config_.dist);
    reducer_ = std::make_unique<dist::GradReducer>(*comm_, net_->parameters());
    if (config_.sync_batch_norm) sync_bn_ = std::make_unique<dist::SyncBatchNorm>(comm_.get());
  }
}

Trainer::~Trainer() = default;

void Trainer::ReportFailure(const std::string& code, const std::string& message) noexcept {
  if (comm_ && code != CodeName(ErrorCode::kDist)) comm_->ReportFailure(code + ": " + message);
}

std::string Trainer::Fingerprint() const {
  int64_t params = 0;
  for (const auto& p : net_->parameters()) params += p.numel();
  return c10::str(config_.mode, '|', config_.seed, '|', config_.epochs, '|', batch_size_, '|', config_.optimizer, '|',
                  config_.lr, '|', config_.weight_decay, '|', config_.warmup_epochs, '|', config_.image.arch, '|', n_,
                  '|', data_.tabular.defined() ? data_.tabular.size(1) : 0, '|', config_.sync_batch_norm, '|', params,
                  '|', config_.clip.temperature, '|', config_.corruption_rate, '|', config_.augment.rate);
}

void Trainer::SyncRanks() {
  const auto fingerprint = static_cast<int64_t>(Fnv1a(Fingerprint()));
  // On the training device: NCCL only moves GPU tensors.
  auto mine = torch::tensor({global_step_, fingerprint}, torch::kLong).to(device_);
  auto all = comm_->AllGather(mine, "start-up check");
  for (int64_t r = 0; r < world_; ++r) {
    const auto step = all[static_cast<size_t>(r)][0].item<int64_t>();
    if (step != global_step_) {
      Fail(ErrorCode::kDist, "rank " + Str(r) + " starts at step " + Str(step) + " but rank " + Str(rank_) + " at step " +
                                 Str(global_step_) + ": resume on every rank or on none, from the same checkpoint");
    }
    if (all[static_cast<size_t>(r)][1].item<int64_t>() != fingerprint) {
      Fail(ErrorCode::kDist, "rank " + Str(r) + " was started with other training settings than rank " + Str(rank_) +
                                 " (mode, batch size, seed, schedule, model or data differ); start every rank with the same options");
    }
  }
  // Every rank seeded its initialisation (or read the checkpoint) the same
  // way; rank 0's copy makes that a guarantee, as DDP does.
  std::vector<torch::Tensor> state;
  for (auto& p : net_->parameters()) state.push_back(p);
  for (auto& b : net_->buffers()) state.push_back(b);
  comm_->Broadcast(state, 0, "initial weight broadcast");
}

void Trainer::Validate() const {
  const auto& im = data_.images;
  if (!im.defined() || im.dim() != 4) Fail(ErrorCode::kShape, "Expected images of rank 4 [N, C, H, W]");
  if (im.scalar_type() != torch::kUInt8 && im.scalar_type() != torch::kHalf && im.scalar_type() != torch::kFloat32) {
    Fail(ErrorCode::kShape, "Expected uint8, float16 or float32 images");
  }
  int64_t n = im.size(0);
  if (data_.rows.defined()) {
    if (data_.rows.dim() != 1) Fail(ErrorCode::kShape, "Expected a 1-D list of rows");
    n = data_.rows.size(0);
    if (n > 0) {
      const int64_t lo = data_.rows.min().item<int64_t>(), hi = data_.rows.max().item<int64_t>();
      if (lo < 0 || hi >= im.size(0)) {
        Fail(ErrorCode::kShape, "rows holds " + Str(lo < 0 ? lo : hi) + ", outside the image store's " + Str(im.size(0)) + " images");
      }
    }
  }
  if (n < 2) Fail(ErrorCode::kShape, "Expected at least 2 images but received " + Str(n));
  if (im.size(1) != config_.image.in_channels) {
    Fail(ErrorCode::kShape, "Expected " + Str(config_.image.in_channels) + " image channels but received " + Str(im.size(1)));
  }
  if (static_cast<int64_t>(config_.mean.size()) != im.size(1) || static_cast<int64_t>(config_.std.size()) != im.size(1)) {
    Fail(ErrorCode::kConfig, "Expected one normalisation mean and std per image channel");
  }
  if (im.scalar_type() != torch::kUInt8 && data_.scan_images) {
    // Scan in chunks so a mapped store is never materialised at once.
    const int64_t chunk = std::max<int64_t>(1, (64ll << 20) / std::max<int64_t>(1, im[0].numel() * 4));
    for (int64_t s = 0; s < im.size(0); s += chunk) {
      auto part = im.narrow(0, s, std::min(chunk, im.size(0) - s));
      auto bad = torch::isfinite(part.to(torch::kFloat32)).logical_not();  // float16 widened (exact)
      if (bad.any().item<bool>()) {
        auto where = torch::nonzero(bad.flatten(1).any(1));
        Fail(ErrorCode::kData, "Image " + Str(s + where[0].item<int64_t>()) + " contains NaN or Inf values");
      }
    }
  }
  if (config_.mode == "multimodal") {
    if (!data_.tabular.defined()) Fail(ErrorCode::kConfig, "multimodal mode needs tabular data");
    if (data_.tabular.dim() != 2 || data_.tabular.size(0) != n) {
      Fail(ErrorCode::kShape, "Expected " + Str(n) + " tabular rows (one per image) but received shape " +
                                  c10::str(data_.tabular.sizes()));
    }
    ValidateRows(data_.tabular, data_.spec);
  }
  const bool regression = config_.mode == "supervised" && data_.targets.defined();
  if (regression && (data_.targets.dim() != 1 || data_.targets.size(0) != n)) {
    Fail(ErrorCode::kShape, "Expected " + Str(n) + " regression targets but received shape " + c10::str(data_.targets.sizes()));
  }
  const bool need_labels = (config_.mode == "supervised" && !regression) ||
                           (config_.mode == "multimodal" && config_.clip.remove_false_negatives) ||
                           (config_.mode == "simclr" && config_.ntxent.remove_false_negatives);
  if (need_labels && !data_.labels.defined()) Fail(ErrorCode::kConfig, "mode " + config_.mode + " with these options needs labels");
  if (data_.labels.defined()) {
    if (data_.labels.dim() != 1 || data_.labels.size(0) != n) {
      Fail(ErrorCode::kShape, "Expected " + Str(n) + " labels but received shape " + c10::str(data_.labels.sizes()));
    }
    if (config_.mode == "supervised") {
      const int64_t lo = data_.labels.min().item<int64_t>(), hi = data_.labels.max().item<int64_t>();
      if (lo < 0 || hi >= config_.num_classes) {
        Fail(ErrorCode::kData, "Expected labels in [0, " + Str(config_.num_classes) + ") but found " + Str(lo < 0 ? lo : hi));
      }
    }
  }
  if (config_.epochs < 1 || config_.batch_size < 2) Fail(ErrorCode::kConfig, "Expected epochs ≥ 1 and batchSize ≥ 2");
  if (config_.checkpoint_every < 1) {
    Fail(ErrorCode::kConfig, "Expected positive integer for checkpointEvery but received " + Str(config_.checkpoint_every));
  }
  ValidateAugmentOptions(config_.augment);
  losses::ValidateClipOptions(config_.clip);
  losses::ValidateNtXentOptions(config_.ntxent);
}

std::vector<int64_t> Trainer::EpochOrder(int64_t epoch) const {
  std::vector<int64_t> order(n_);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(DeriveSeed(config_.seed, {kStreamOrder, static_cast<uint64_t>(epoch)}));
  for (int64_t i = n_ - 1; i > 0; --i) {
    std::swap(order[i], order[static_cast<int64_t>(UniformInt(rng, static_cast<uint64_t>(i + 1)))]);
  }
  return order;
}

double Trainer::LearningRate(int64_t global_step) const {
  const int64_t total = config_.epochs * steps_per_epoch_;
  const int64_t warmup = static_cast<int64_t>(std::llround(config_.warmup_epochs * steps_per_epoch_));
  if (global_step < warmup) return config_.lr * static_cast<double>(global_step + 1) / static_cast<double>(warmup);
  const double span = std::max<int64_t>(1, total - warmup);
  const double progress = static_cast<double>(global_step - warmup) / span;
  return config_.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

torch::Tensor Trainer::Normalize(const torch::Tensor& x) const {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
  auto mean = torch::tensor(std::vector<float>(config_.mean.begin(), config_.mean.end()), opts).view({1, -1, 1, 1});
  auto std = torch::tensor(std::vector<float>(config_.std.begin(), config_.std.end()), opts).view({1, -1, 1, 1});
  return (x - mean) / std;
}

Trainer::Batch Trainer::MakeBatch(int64_t epoch, int64_t step_in_epoch) const {
  // The order is recomputed per batch; it costs O(N), small next to a step.
  auto order = EpochOrder(epoch);
  // The global batch is positions [s·B, (s+1)·B) of the epoch's permutation;
  // rank r takes its slice [r·b, (r+1)·b). Random draws are made for the
  // whole global batch and sliced, so each sample's augmentation and
  // corruption depend on its position in the global batch only: any number
  // of ranks sees exactly what one process sees.
  auto global_idx = torch::from_blob(order.data() + step_in_epoch * batch_size_, {batch_size_}, torch::kLong).clone();
  const int64_t offset = rank_ * local_batch_;
  auto idx = world_ == 1 ? global_idx : global_idx.narrow(0, offset, local_batch_).clone();
  const uint64_t e = static_cast<uint64_t>(epoch), s = static_cast<uint64_t>(step_in_epoch);
  Batch b;
  auto store_idx = data_.rows.defined() ? data_.rows.index_select(0, idx) : idx;
  auto raw = data_.images.index_select(0, store_idx);  // reads only this batch's pages of a mapped store
  auto raw_dev = raw.to(device_);
  auto augment = [&](uint64_t stream, const AugmentOptions& options) {
    auto params = SampleAugmentParams(batch_size_, raw.size(2), raw.size(3), options,
                                      DeriveSeed(config_.seed, {stream, e, s}));
    if (world_ > 1) params = std::vector<SampleParams>(params.begin() + offset, params.begin() + offset + local_batch_);
    auto x = Normalize(ApplyAugment(raw_dev, options, params));
    return channels_last_ ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
  };
  if (config_.mode == "simclr") {
    // As MMCL's ContrastiveImageDataset: the first view is always augmented,
    // the second one at the augmentation rate (else only resized), so no
    // pair is two copies of the resized image.
    AugmentOptions always = config_.augment;
    always.rate = 1.0;
    b.view1 = augment(kStreamView1, always);
    b.view2 = augment(kStreamView2, config_.augment);
  } else {
    b.view1 = augment(kStreamView1, config_.augment);
  }
  if (config_.mode == "multimodal") {
    auto rows = data_.tabular.index_select(0, global_idx);
    auto corrupted = CorruptRows(rows, data_.tabular, config_.corruption_rate,
                                 DeriveSeed(config_.seed, {kStreamCorrupt, e, s}));
    if (world_ > 1) corrupted = corrupted.narrow(0, offset, local_batch_);
    b.tabular = EncodeRows(corrupted, data_.spec).to(device_);
  }
  if (data_.labels.defined()) {
    b.labels_global = data_.labels.index_select(0, global_idx).to(device_);
    b.labels = world_ == 1 ? b.labels_global : data_.labels.index_select(0, idx).to(device_);
  }
  if (data_.targets.defined()) b.targets = data_.targets.index_select(0, idx).to(device_);
  return b;
}

TrainSummary Trainer::Run(const std::function<void(const Progress&)>& on_progress, const std::atomic<bool>& abort) {
  // Large CPU blocks are reused from step to step instead of being faulted
  // in again (common/caching_cpu_allocator.h).
  CpuCacheScope cpu_cache;
  TrainSummary summary;
  summary.resumed = resumed_;
  const int64_t total = config_.epochs * steps_per_epoch_;
  net_->train();
  if (comm_) SyncRanks();
  const bool contrastive = config_.mode != "supervised";
  // Set from the all-reduced abort flags, so every rank stops after the same step.
  bool stop_all = false;

  // Prefetch: a producer thread prepares the next batches (gather, augment,
  // corrupt, encode) while this thread runs the step.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Batch> queue;
  std::exception_ptr producer_error;
  bool stop = false;
  constexpr size_t kDepth = 2;
  const int64_t start = global_step_;
  const int data_threads = DataThreads(device_);
  std::thread producer([&, data_threads] {
    try {
      UseThreadsOnThisThread(data_threads);
      for (int64_t g = start; g < total; ++g) {
        Batch b = MakeBatch(g / steps_per_epoch_, g % steps_per_epoch_);
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || queue.size() < kDepth; });
        if (stop) return;
        queue.push_back(std::move(b));
        cv.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      producer_error = std::current_exception();
      cv.notify_all();
    }
  });
  auto join = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (producer.joinable()) producer.join();
  };

  double& epoch_loss = epoch_loss_sum_;
  double& epoch_top1 = epoch_top1_sum_;
  int64_t& epoch_steps = epoch_steps_;
  // Progress events held back while a checkpoint is written in the
  // background: delivered, in order, once it is on disk.
  std::vector<Progress> held;
  auto deliver = [&](const Progress& p) {
    if (checkpoint_write_.valid()) {
      if (checkpoint_write_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        held.push_back(p);
        return;
      }
      checkpoint_write_.get();  // rethrows the write's error
    }
    for (const auto& h : held) on_progress(h);
    held.clear();
    on_progress(p);
  };
  // Waits for the write in flight and delivers what it held.
  auto settle = [&] {
    WaitForCheckpoint();
    for (const auto& h : held) on_progress(h);
    held.clear();
  };
  bool checkpoint_written = false;  // by this Run: the first is written in place
  try {
    while (global_step_ < total) {
      if (world_ == 1 ? abort.load() : stop_all) {
        join();
        settle();
        if (rank_ == 0) SaveCheckpoint(config_.out_dir + "/checkpoint.safetensors");
        summary.aborted = true;
        summary.steps_done = global_step_;
        summary.epochs_done = epoch_;
        return summary;
      }
      Batch b;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !queue.empty() || producer_error; });
        if (queue.empty() && producer_error) std::rethrow_exception(producer_error);
        b = std::move(queue.front());
        queue.pop_front();
        cv.notify_all();
      }
      const auto t0 = std::chrono::steady_clock::now();
      const double lr = LearningRate(global_step_);
      for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);

      // Gradients are dropped rather than zeroed (PyTorch's
      // zero_grad(set_to_none=True)): backward then hands its gradient to
      // the parameter without a fill and an add. Every registered parameter
      // gets a gradient each step (Network registers only the modules its
      // mode uses), so Adam sees the same gradients as before.
      for (auto& p : net_->parameters()) p.mutable_grad().reset();
      if (comm_) {
        comm_->SetStep(global_step_);
        if (!sync_bn_) {
          // Without synchronised batch norm, rank 0's running statistics
          // (DDP's broadcast_buffers).
          std::vector<torch::Tensor> buffers = net_->buffers();
          comm_->Broadcast(buffers, 0, "buffer broadcast");
        }
      }
      if (reducer_) reducer_->Begin();
      // Contrastive losses see the global batch: projections are gathered
      // from every rank (distributed/gather.h).
      auto global = [&](const torch::Tensor& z, const char* what) {
        return comm_ ? dist::GatherWithLocalGrad(*comm_, z, what) : z;
      };
      torch::Tensor loss, logits, targets;
      std::unique_ptr<models::ScopedBatchNormOverride> sync_bn_scope;
      if (sync_bn_) sync_bn_scope = std::make_unique<models::ScopedBatchNormOverride>(sync_bn_.get());
      auto autocast = std::make_unique<AutocastScope>(device_, precision_);
      if (config_.mode == "multimodal") {
        auto zi = global(net_->image_projection(net_->image(b.view1)), "all-gather of image projections");
        auto zt = global(net_->tabular_projection(net_->tabular(b.tabular)), "all-gather of tabular projections");
        auto r = losses::ClipLoss(zi, zt, config_.clip, b.labels_global);
        loss = r.loss, logits = r.logits, targets = r.targets;
      } else if (config_.mode == "simclr") {
        auto z1 = global(net_->image_projection(net_->image(b.view1)), "all-gather of first-view projections");
        auto z2 = global(net_->image_projection(net_->image(b.view2)), "all-gather of second-view projections");
        auto r = losses::NtXentLoss(z1, z2, config_.ntxent, b.labels_global);
        loss = r.loss, logits = r.logits.masked_fill(torch::eye(r.logits.size(0), torch::TensorOptions().dtype(torch::kBool).device(r.logits.device())), -1e9), targets = r.targets;
      } else if (b.targets.defined()) {
        auto pred = net_->classifier(net_->image(b.view1)).squeeze(1);
        loss = torch::nn::functional::mse_loss(pred, b.targets);  // no ranking: top1 stays 0
      } else {
        logits = net_->classifier(net_->image(b.view1));
        targets = b.labels;
        loss = torch::nn::functional::cross_entropy(logits, targets);
      }
      autocast.reset();
      sync_bn_scope.reset();
      loss = loss.to(torch::kFloat32);
      loss.backward();
      // The step's one read back to the host: the loss and the retrieval
      // accuracy together, after backward is queued and before the update.
      // On a GPU, reading the loss before backward made the CPU wait for the
      // forward pass with no kernels queued, and the accuracy was a second
      // wait after the update. Reading it here still refuses a non-finite
      // loss before the parameters change.
      auto top1_t = logits.defined() ? logits.detach().argmax(1).eq(targets).to(torch::kFloat64).mean()
                                     : torch::zeros({}, loss.options().dtype(torch::kFloat64));
      const auto host = torch::stack({loss.detach().to(torch::kFloat64), top1_t}).cpu();
      double loss_value = host[0].item<double>();
      double top1 = host[1].item<double>();
      if (!std::isfinite(loss_value)) {
        Fail(ErrorCode::kTorch, "loss became " + std::to_string(loss_value) + " at step " + Str(global_step_ + 1) +
                                    "; lower the learning rate or check the inputs");
      }
      // Contrastive ranks each backpropagate the global loss through their
      // own rows, so the gradients add up to the single-process gradient;
      // supervised ranks each hold the mean over their rows, so they average.
      if (reducer_) reducer_->Finish(contrastive ? 1.0 : 1.0 / static_cast<double>(world_));
      // On the CPU, Adam's update in one pass per parameter (train/fused_adam.h).
      // Elsewhere, all parameters in a few multi-tensor operations.
      if (device_.is_cpu()) {
        FusedAdamStep(*optimizer_, config_.optimizer == "adamw");
      } else if (MultiTensorAdamEnabled()) {
        MultiTensorAdamStep(*optimizer_, config_.optimizer == "adamw");
      } else {
        optimizer_->step();
      }
      if (comm_) {
        // One small all-reduce per step: the supervised loss and accuracy
        // over the global batch (contrastive ones are already global and
        // equal on every rank) and whether any rank was asked to stop.
        auto summary_t = torch::tensor({contrastive ? 0.0 : loss_value, contrastive ? 0.0 : top1, abort.load() ? 1.0 : 0.0},
                                       torch::kDouble)
                             .to(device_);
        comm_->AllReduceSum(summary_t, "step summary all-reduce");
        summary_t = summary_t.cpu();
        if (!contrastive) {
          loss_value = summary_t[0].item<double>() / static_cast<double>(world_);
          top1 = summary_t[1].item<double>() / static_cast<double>(world_);
        }
        stop_all = summary_t[2].item<double>() > 0;
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

      ++global_step_;
      ++step_in_epoch_;
      epoch_loss += loss_value;
      epoch_top1 += top1;
      ++epoch_steps;
      Progress p;
      p.epoch = epoch_;
      p.step = global_step_;
      p.step_in_epoch = step_in_epoch_;
      p.steps_per_epoch = steps_per_epoch_;
      p.total_steps = total;
      p.loss = loss_value;
      p.lr = lr;
      p.images_per_sec = secs > 0 ? static_cast<double>(batch_size_) / secs : 0;
      summary.final_loss = loss_value;
      if (step_in_epoch_ == steps_per_epoch_) {
        p.epoch_done = true;
        p.epoch_loss = epoch_loss / epoch_steps;
        p.retrieval_top1 = epoch_top1 / epoch_steps;
        // metrics.jsonl gets the epoch's line before the checkpoint that
        // moves past the epoch, so a run killed in between redoes the epoch
        // on resume and the metrics and the checkpoint never disagree. The
        // previous epoch's checkpoint is on disk before this line is written.
        settle();
        char line[512];
        std::snprintf(line, sizeof(line),
                      "{\"epoch\":%lld,\"step\":%lld,\"loss\":%.17g,\"retrievalTop1\":%.17g,\"lr\":%.17g,\"imagesPerSec\":%.6g,\"threads\":%d}",
                      static_cast<long long>(epoch_), static_cast<long long>(global_step_), p.epoch_loss,
                      p.retrieval_top1, lr, p.images_per_sec, at::get_num_threads());
        if (rank_ == 0) io::AppendLine(config_.out_dir + "/metrics.jsonl", line);
        ++epoch_;
        step_in_epoch_ = 0;
        epoch_loss = epoch_top1 = 0;
        epoch_steps = 0;
        if ((epoch_ % config_.checkpoint_every == 0 || epoch_ == config_.epochs) && rank_ == 0) {
          // Written while the next epoch trains, except the run's first and
          // last (see Run in trainer.h). On an H200 the write was about
          // 0.55 s of a 1.25 s ResNet-18 epoch.
          const std::string path = config_.out_dir + "/checkpoint.safetensors";
          if (checkpoint_written && epoch_ < config_.epochs) {
            SaveCheckpointInBackground(path);
          } else {
            SaveCheckpoint(path);
          }
          checkpoint_written = true;
          p.checkpointed = true;
        }
      }
      p.done_at = std::chrono::steady_clock::now();
      deliver(p);
    }
  } catch (...) {
    join();
    try {
      WaitForCheckpoint();
    } catch (...) {
      // The training error is the one to report.
    }
    throw;
  }
  join();
  settle();
  if (rank_ == 0) SaveImageEncoder(config_.out_dir + "/image_encoder.safetensors");
  summary.steps_done = global_step_;
  summary.epochs_done = epoch_;
  return summary;
}

void Trainer::SaveCheckpoint(const std::string& path) {
  WaitForCheckpoint();  // an older file must not land after this one
  io::NamedTensors tensors;
  io::Metadata meta;
  CheckpointContents(tensors, meta);
  io::WriteSafetensors(path, tensors, meta);
}

void Trainer::SaveCheckpointInBackground(const std::string& path) {
  WaitForCheckpoint();
  io::NamedTensors tensors;
  io::Metadata meta;
  CheckpointContents(tensors, meta);
  // Serialising copies every tensor into the bytes (from the device, or
  // from the CPU tensors' storage), so the next steps may update the
  // parameters while the file is written.
  auto bytes = std::make_shared<const std::string>(io::SerializeSafetensors(tensors, meta));
  checkpoint_write_ = std::async(std::launch::async, [path, bytes] { io::WriteFileAtomic(path, *bytes); });
}

void Trainer::WaitForCheckpoint() {
  if (checkpoint_write_.valid()) checkpoint_write_.get();  // rethrows the write's error
}

void Trainer::CheckpointContents(io::NamedTensors& tensors, io::Metadata& meta) {
  for (const auto& item : net_->named_parameters()) tensors.emplace_back("model." + item.key(), item.value());
  for (const auto& item : net_->named_buffers()) tensors.emplace_back("model." + item.key(), item.value());
  // Optimiser state, keyed by parameter name.
  auto& state = optimizer_->state();
  int64_t adam_step = -1, moments = 0;
  for (const auto& item : net_->named_parameters()) {
    auto key = OptimizerStateKey(item.value());
    auto it = state.find(key);
    if (it == state.end()) continue;
    ++moments;
    if (config_.optimizer == "adam") {
      auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
      tensors.emplace_back("optim." + item.key() + ".exp_avg", s.exp_avg());
      tensors.emplace_back("optim." + item.key() + ".exp_avg_sq", s.exp_avg_sq());
      adam_step = s.step();
    } else {
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      tensors.emplace_back("optim." + item.key() + ".exp_avg", s.exp_avg());
      tensors.emplace_back("optim." + item.key() + ".exp_avg_sq", s.exp_avg_sq());
      adam_step = s.step();
    }
  }
  auto gen_state = at::detail::getDefaultCPUGenerator().get_state();
  tensors.emplace_back("rng.torch_cpu", gen_state);
  meta["format"] = "tabsight-checkpoint-1";
  meta["config"] = config_.config_json;
  meta["epoch"] = Str(epoch_);
  meta["step_in_epoch"] = Str(step_in_epoch_);
  meta["global_step"] = Str(global_step_);
  meta["optimizer"] = config_.optimizer;
  meta["optimizer_step"] = Str(adam_step);
  // How many parameters have moments: a parameter the loss never reached has
  // none, so only the count tells a stripped tensor from an untrained one.
  meta["optimizer_moments"] = Str(moments);
  // Positions count global batches of batch_size images, whatever the
  // number of ranks, so a run resumes with any world size that divides it.
  meta["batch_size"] = Str(batch_size_);
  meta["world_size"] = Str(world_);
  // Sums over the current epoch's finished steps, so a resumed epoch reports
  // the same mean loss as an uninterrupted one.
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", epoch_loss_sum_);
  meta["epoch_loss_sum"] = buf;
  std::snprintf(buf, sizeof(buf), "%.17g", epoch_top1_sum_);
  meta["epoch_top1_sum"] = buf;
  meta["epoch_steps"] = Str(epoch_steps_);
  meta["rng"] = "counter-based: every draw derives from (seed=" + std::to_string(config_.seed) +
                ", epoch, step, stream); rng.torch_cpu holds LibTorch's CPU generator";
}

void Trainer::LoadCheckpoint(const std::string& path) {
  auto file = io::ReadSafetensors(path);
  auto meta_text = [&](const char* key) -> const std::string& {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) Fail(ErrorCode::kData, "Checkpoint " + path + " lacks metadata field " + key);
    return it->second;
  };
  auto not_a = [&](const char* key, const char* what) {
    Fail(ErrorCode::kData, "Checkpoint " + path + " has metadata field " + key + " = \"" + meta_text(key) + "\", not " + what);
  };
  auto meta_int = [&](const char* key) -> int64_t {
    const std::string& text = meta_text(key);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) not_a(key, "an integer");
    return v;
  };
  auto meta_double = [&](const char* key) -> double {
    const std::string& text = meta_text(key);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) not_a(key, "a number");
    return v;
  };
  // The position comes first: it is checked before anything is loaded or used.
  const int64_t epoch = meta_int("epoch"), step_in_epoch = meta_int("step_in_epoch");
  const int64_t global_step = meta_int("global_step"), epoch_steps = meta_int("epoch_steps");
  auto bad_position = [&](const char* key, const std::string& expected) {
    Fail(ErrorCode::kData, "Checkpoint " + path + " has metadata field " + key + " = " + meta_text(key) + "; expected " +
                               expected);
  };
  if (epoch < 0 || epoch > config_.epochs) bad_position("epoch", "an integer in [0, " + Str(config_.epochs) + "] (the configured epochs)");
  if (step_in_epoch < 0 || step_in_epoch >= steps_per_epoch_) {
    bad_position("step_in_epoch", "an integer in [0, " + Str(steps_per_epoch_) + ") (the steps per epoch)");
  }
  if (epoch == config_.epochs && step_in_epoch != 0) bad_position("step_in_epoch", "0 at the end of the last epoch");
  if (epoch_steps < 0) bad_position("epoch_steps", "a non-negative integer");
  if (global_step != epoch * steps_per_epoch_ + step_in_epoch) {
    Fail(ErrorCode::kData, "Checkpoint " + path + " was written with " + "a different dataset or batch size (step " +
                               Str(global_step) + " does not match epoch " + Str(epoch) + ")");
  }
  const double epoch_loss_sum = meta_double("epoch_loss_sum"), epoch_top1_sum = meta_double("epoch_top1_sum");
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& name, torch::Tensor& dst) {
    const torch::Tensor* src = file.Find(name);
    if (!src) Fail(ErrorCode::kData, "Checkpoint " + path + " lacks tensor " + name);
    if (src->sizes() != dst.sizes()) {
      Fail(ErrorCode::kData, "Checkpoint " + path + ": tensor " + name + " has shape " + c10::str(src->sizes()) +
                                 " but the model expects " + c10::str(dst.sizes()));
    }
    dst.copy_(*src);
  };
  for (auto& item : net_->named_parameters()) load("model." + item.key(), item.value());
  for (auto& item : net_->named_buffers()) load("model." + item.key(), item.value());

  const int64_t opt_step = meta_int("optimizer_step");
  auto& state = optimizer_->state();
  state.clear();
  // Moments take their parameter's layout (channels_last convolution weights
  // keep channels_last moments), as a fresh optimiser's zeros_like would.
  auto like = [](const torch::Tensor& src, const torch::Tensor& param) { return torch::empty_like(param).copy_(src); };
  if (opt_step >= 0) {
    int64_t moments = 0;
    for (auto& item : net_->named_parameters()) {
      const torch::Tensor* m = file.Find("optim." + item.key() + ".exp_avg");
      const torch::Tensor* v = file.Find("optim." + item.key() + ".exp_avg_sq");
      if (!m && !v) continue;  // a parameter the loss never reached has no state (as in torch::optim)
      if (!m || !v) {
        Fail(ErrorCode::kData, "Checkpoint " + path + " has tensor optim." + item.key() +
                                   (m ? ".exp_avg but not .exp_avg_sq" : ".exp_avg_sq but not .exp_avg"));
      }
      for (const auto& [which, t] : {std::pair<const char*, const torch::Tensor*>{"exp_avg", m}, {"exp_avg_sq", v}}) {
        if (t->sizes() != item.value().sizes()) {
          Fail(ErrorCode::kData, "Checkpoint " + path + ": tensor optim." + item.key() + "." + which + " has shape " +
                                     c10::str(t->sizes()) + " but its parameter has " + c10::str(item.value().sizes()));
        }
      }
      ++moments;
      auto key = OptimizerStateKey(item.value());
      if (config_.optimizer == "adam") {
        auto s = std::make_unique<torch::optim::AdamParamState>();
        s->step(opt_step);
        s->exp_avg(like(*m, item.value()));
        s->exp_avg_sq(like(*v, item.value()));
        state[key] = std::move(s);
      } else {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(opt_step);
        s->exp_avg(like(*m, item.value()));
        s->exp_avg_sq(like(*v, item.value()));
        state[key] = std::move(s);
      }
    }
    // After optimizer steps the Adam moments of every trained parameter are saved: none at all is a stripped file,
    // which would otherwise resume silently with a fresh optimiser.
    if (opt_step > 0 && moments == 0) {
      Fail(ErrorCode::kData, "Checkpoint " + path + " is at optimizer step " + Str(opt_step) +
                                 " but holds no Adam moments (optim.*.exp_avg, optim.*.exp_avg_sq)");
    }
    // Checkpoints since 2026-11-28 record the count; older ones are held to the rule above only.
    if (file.metadata.count("optimizer_moments") != 0) {
      const int64_t saved = meta_int("optimizer_moments");
      if (saved != moments) {
        Fail(ErrorCode::kData, "Checkpoint " + path + " holds Adam moments for " + Str(moments) +
                                   " parameter(s) of this model but was written with " + Str(saved) +
                                   " (metadata optimizer_moments): tensors optim.* were removed or renamed");
      }
    }
  }
  if (const torch::Tensor* g = file.Find("rng.torch_cpu")) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(*g);
  }
  epoch_ = epoch;
  step_in_epoch_ = step_in_epoch;
  global_step_ = global_step;
  epoch_steps_ = epoch_steps;
  epoch_loss_sum_ = epoch_loss_sum;
  epoch_top1_sum_ = epoch_top1_sum;
  resumed_ = true;
}

io::NamedTensors ImageEncoderTensors(models::ResNet& encoder) {
  io::NamedTensors tensors;
  for (const auto& item : encoder->named_parameters()) tensors.emplace_back(item.key(), item.value());
  for (const auto& item : encoder->named_buffers()) tensors.emplace_back(item.key(), item.value());
  return tensors;
}

void Trainer::SaveImageEncoder(const std::string& path) {
  io::Metadata meta;
  meta["format"] = "tabsight-image-encoder-1";
  meta["arch"] = config_.image.arch;
  meta["in_channels"] = Str(config_.image.in_channels);
  meta["small_stem"] = config_.image.small_stem ? "true" : "false";
  meta["feature_dim"] = Str(net_->image->feature_dim());
  meta["config"] = config_.config_json;
  io::WriteSafetensors(path, ImageEncoderTensors(net_->image), meta);
}

void LoadImageEncoderTensors(models::ResNet& encoder, const io::Safetensors& file, const std::string& path) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing, mismatched, unexpected;
  std::vector<std::string> known;
  auto visit = [&](const std::string& name, torch::Tensor& dst) {
    known.push_back(name);
    const torch::Tensor* src = file.Find(name);
    if (!src) return missing.push_back(name);
    if (src->sizes() != dst.sizes()) {
      return mismatched.push_back(name + " (file " + c10::str(src->sizes()) + ", model " + c10::str(dst.sizes()) + ")");
    }
    dst.copy_(src->to(dst.dtype()));
  };
  for (auto& item : encoder->named_parameters()) visit(item.key(), item.value());
  for (auto& item : encoder->named_buffers()) visit(item.key(), item.value());
  for (const auto& [name, t] : file.tensors) {
    if (std::find(known.begin(), known.end(), name) == known.end() && name.rfind("fc.", 0) != 0) unexpected.push_back(name);
  }
  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    std::string msg = "Weights in " + path + " do not fit the " + encoder->options().arch + " image encoder:";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg += std::string(" ") + what + " ";
      for (size_t i = 0; i < v.size() && i < 8; ++i) msg += (i ? ", " : "") + v[i];
      if (v.size() > 8) msg += ", … (" + Str(static_cast<int64_t>(v.size())) + " in all)";
      msg += ";";
    };
    list("missing", missing);
    list("shape mismatch", mismatched);
    list("unexpected", unexpected);
    Fail(ErrorCode::kData, msg);
  }
}

torch::Tensor EmbedImages(models::ResNet& encoder, const torch::Tensor& images, const std::vector<double>& mean,
                          const std::vector<double>& std, int64_t out_h, int64_t out_w, int64_t batch_size,
                          const torch::Device& device, const std::atomic<bool>* abort, const std::string& memory_format) {
  // "auto" for embedding: channels_last on the CPU only where the first
  // residual stage's maps are at least 32 px on a side. Below that oneDNN's
  // NCHW path embedded faster (benchmarks/RESULTS.md, "Memory format").
  // That is the AVX-512 rule; Run.embed resolves "auto" itself from the
  // CPU's flags (embeddingMemoryFormat, lib/cpu.ts) and passes the result.
  const int64_t stage1 = encoder->options().small_stem ? out_h : out_h / 4;
  const bool channels_last = memory_format == "auto" ? ResolveChannelsLast(memory_format, device) && stage1 >= 32
                                                     : ResolveChannelsLast(memory_format, device);
  if (images.dim() != 4) Fail(ErrorCode::kShape, "Expected images of rank 4 [N, C, H, W] but received " + c10::str(images.sizes()));
  if (batch_size < 1) Fail(ErrorCode::kConfig, "Expected positive integer for batchSize but received " + Str(batch_size));
  if (images.size(1) != encoder->options().in_channels) {
    Fail(ErrorCode::kShape, "Expected " + Str(encoder->options().in_channels) + " image channels but received " + Str(images.size(1)));
  }
  if (images.scalar_type() == torch::kFloat32 && !torch::isfinite(images).all().item<bool>()) {
    auto where = torch::nonzero(torch::isfinite(images).logical_not().flatten(1).any(1));
    Fail(ErrorCode::kData, "Image " + Str(where[0].item<int64_t>()) + " contains NaN or Inf values");
  }
  torch::InferenceMode guard;
  encoder->eval();
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto m = torch::tensor(std::vector<float>(mean.begin(), mean.end()), opts).view({1, -1, 1, 1});
  auto s = torch::tensor(std::vector<float>(std.begin(), std.end()), opts).view({1, -1, 1, 1});
  std::vector<torch::Tensor> outs;
  const int64_t n = images.size(0);
  // No forward pass sees a batch of one image. On the CPU LibTorch convolves
  // a single image by another path than a batch: its embedding differed from
  // the same image's in any batch of 2 or more by up to 1e-5, while batches of
  // 2, 4, 8, 16, 24, 32, 56, 64 and 120 gave identical bits (ResNet-18, 32 and
  // 128 px). So a remainder of one image joins the batch before it, and a
  // lone image is embedded twice in one batch: an image's embedding then does
  // not depend on how the images around it were batched, and a metric saved
  // from a cohort's embeddings is reproduced exactly from a subset's.
  for (int64_t i = 0; i < n;) {
    if (abort && abort->load()) Fail(ErrorCode::kAborted, "embedding was aborted");
    int64_t count = std::min(batch_size, n - i);
    if (n - i - count == 1) ++count;
    auto part = images.narrow(0, i, count).to(device);
    if (count == 1) part = part.expand({2, -1, -1, -1});
    auto x = (ToFloatResized(part, out_h, out_w) - m) / s;
    // On the CPU a channels_last input takes oneDNN's NHWC path, faster than
    // NCHW with the same weights (benchmarks/RESULTS.md, "Memory format").
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    outs.push_back(encoder->forward(x).narrow(0, 0, count).to(torch::kCPU).contiguous());
    i += count;
  }
  if (outs.empty()) return torch::zeros({0, encoder->feature_dim()});
  return torch::cat(outs, 0);
}

}  // namespace tabsight::train
