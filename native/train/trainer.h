// The training loop: multimodal CLIP (image + tabular), image-only SimCLR,
// and supervised image-only. Plain LibTorch; the binding runs Run() on a
// worker thread.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "distributed/dist_config.h"
#include "io/safetensors.h"
#include "losses/contrastive.h"
#include "models/mlp.h"
#include "models/resnet.h"
#include "train/augment.h"
#include "train/precision.h"
#include "train/tabular.h"

namespace tabsight::dist {
class Comm;
class GradReducer;
class SyncBatchNorm;
}  // namespace tabsight::dist

namespace tabsight::train {

struct TrainConfig {
  std::string mode = "multimodal";  // multimodal | simclr | supervised
  std::string device = "cpu";
  uint64_t seed = 0;
  int64_t epochs = 1;
  // The global batch: with world_size ranks each takes batch_size / world_size.
  int64_t batch_size = 64;
  std::string optimizer = "adam";  // adam | adamw
  double lr = 3e-3;
  double weight_decay = 1e-4;
  double warmup_epochs = 0;
  // "fp32", or "bf16": autocast around the forward pass and the loss
  // (train/precision.h); weights, gradients and Adam state stay fp32.
  std::string precision = "fp32";
  // Layout of the image encoder's convolution weights and input batches:
  // "channels_last" (NHWC in memory), "contiguous" (NCHW) or "auto"
  // (channels_last on the CPU, where it was measured faster; contiguous on
  // CUDA). Checkpoints are NCHW either way.
  std::string memory_format = "auto";
  models::ResNetOptions image;
  int64_t tabular_hidden = 2048, tabular_layers = 2;
  int64_t projection_hidden = 2048, projection_dim = 128;
  bool projection_batch_norm = true;  // model.projectionBatchNorm
  losses::ClipLossOptions clip;
  losses::NtXentOptions ntxent;
  AugmentOptions augment;
  double corruption_rate = 0.3;
  std::vector<double> mean, std;  // per-channel normalisation after scaling to [0, 1]
  int64_t num_classes = 0;        // supervised mode; 1 with regression targets
  // Initial image encoder weights (torchvision names), e.g. a pretrained run
  // for fine-tuning or ImageNet weights. Empty: random initialisation.
  std::string init_weights;
  int64_t checkpoint_every = 1;   // epochs
  // Data-parallel training (world_size > 1): the process group and whether
  // BatchNorm layers use the global batch's statistics.
  dist::DistConfig dist;
  bool sync_batch_norm = false;
  // Deterministic kernels while the trainer lives: cuDNN deterministic and
  // not autotuned, and LibTorch's deterministic mode, in which an op without
  // a deterministic kernel raises instead of running. These settings are
  // process-wide; the trainer puts the previous ones back when it is
  // destroyed. CUDA's cuBLAS also needs CUBLAS_WORKSPACE_CONFIG set before
  // its first use in the process (the TypeScript side sets it).
  bool deterministic = false;
  std::string out_dir;
  std::string config_json;  // the resolved config, stored in checkpoints
};

struct TrainData {
  torch::Tensor images;   // N×C×H×W, uint8 or float32, CPU (may view a mapping or a JS buffer)
  torch::Tensor tabular;  // N×F float32 (categorical codes as floats), multimodal only
  TabularSpec spec;
  torch::Tensor labels;  // N int64, or undefined
  torch::Tensor targets;  // N float32 regression targets (supervised), or undefined
  // Store rows to train on (int64), or undefined for all of them. With rows,
  // tabular and labels hold one row per entry of rows, in that order.
  torch::Tensor rows;
  // Scan float stores for NaN/Inf before training (callers that validated
  // the store already may skip it).
  bool scan_images = true;
  std::shared_ptr<void> keepalive;
};

struct Progress {
  int64_t epoch = 0;           // 0-based
  int64_t step = 0;            // global, 1-based after the step
  int64_t step_in_epoch = 0;   // 1-based after the step
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  double loss = 0, lr = 0, images_per_sec = 0;
  bool epoch_done = false;
  double epoch_loss = 0;        // mean over the epoch's steps, when epoch_done
  double retrieval_top1 = 0;    // in-batch, from the loss logits, mean over the epoch
  // This epoch's checkpoint is on disk: an event is delivered only once
  // every checkpoint written before it is complete (see Trainer::Run).
  bool checkpointed = false;
  // When the step (and its epoch's checkpoint, where written in place)
  // finished; delivery may come later (Trainer::Run). For timing.
  std::chrono::steady_clock::time_point done_at{};
};

struct TrainSummary {
  int64_t epochs_done = 0, steps_done = 0;
  double final_loss = 0;
  bool aborted = false;
  bool resumed = false;
};

// All modules of a run. Submodule names become checkpoint name prefixes.
struct NetworkImpl : torch::nn::Module {
  NetworkImpl(const TrainConfig& config, int64_t tabular_width);
  models::ResNet image{nullptr};
  models::ProjectionHead image_projection{nullptr};
  models::TabularEncoder tabular{nullptr};
  models::ProjectionHead tabular_projection{nullptr};
  torch::nn::Linear classifier{nullptr};
};
TORCH_MODULE(Network);

class Trainer {
 public:
  // With config.dist.world_size > 1 this joins the process group (blocking
  // until every rank has, or the timeout).
  Trainer(TrainConfig config, TrainData data);
  ~Trainer();

  // Trains from the current position to the last epoch. Calls on_progress
  // after every step (on this thread), in step order. Stops between steps
  // when `abort` is set: a checkpoint of the exact position is written
  // first.
  //
  // Epoch-end checkpoints other than the run's first and last are written
  // to disk on another thread while the next epoch trains (the tensors are
  // copied on this thread first, so the file holds the epoch's end). Until
  // that write is complete, progress events are held back and then
  // delivered in order, so an event that says `checkpointed`, and any event
  // after it, means the file is on disk. The next checkpoint, an abort, the
  // end of the run and the next epoch's metrics line wait for the write; its
  // error is the run's error. The first checkpoint is written in place, so
  // a failing disk is reported at once, and the last because the run ends.
  TrainSummary Run(const std::function<void(const Progress&)>& on_progress, const std::atomic<bool>& abort);

  // Restores weights, optimiser, position from a checkpoint.
  void LoadCheckpoint(const std::string& path);
  void SaveCheckpoint(const std::string& path);
  // torchvision names, no prefix, no fc.
  void SaveImageEncoder(const std::string& path);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t batch_size() const { return batch_size_; }
  int64_t local_batch_size() const { return local_batch_; }

  // Tells the other ranks why this one failed (no-op in a single process,
  // and for ERR_DIST errors, which another rank caused).
  void ReportFailure(const std::string& code, const std::string& message) noexcept;

 private:
  struct Batch;
  Batch MakeBatch(int64_t epoch, int64_t step_in_epoch) const;
  std::vector<int64_t> EpochOrder(int64_t epoch) const;
  double LearningRate(int64_t global_step) const;
  torch::Tensor Normalize(const torch::Tensor& x) const;
  void Validate() const;
  // Distributed start: every rank at the same position with the same
  // settings, then rank 0's weights and buffers everywhere.
  void SyncRanks();
  std::string Fingerprint() const;
  // What a checkpoint holds: weights, buffers, optimiser state, RNG, position.
  void CheckpointContents(io::NamedTensors& tensors, io::Metadata& meta);
  // The checkpoint serialised here (a copy of the current state) and written
  // on another thread; at most one write is in flight.
  void SaveCheckpointInBackground(const std::string& path);
  // Waits for the write in flight, if any, and rethrows its error.
  void WaitForCheckpoint();

  // LibTorch's process-wide determinism settings, set for this trainer and
  // restored when it is destroyed (TrainConfig::deterministic).
  class DeterminismScope;

  TrainConfig config_;
  TrainData data_;
  torch::Device device_;
  std::unique_ptr<DeterminismScope> determinism_;
  Precision precision_ = Precision::kFloat32;
  bool channels_last_ = false;
  Network net_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  // The checkpoint write in flight (SaveCheckpointInBackground), if any.
  std::future<void> checkpoint_write_;
  int64_t n_ = 0, batch_size_ = 0, steps_per_epoch_ = 0;
  int64_t rank_ = 0, world_ = 1, local_batch_ = 0;
  int64_t epoch_ = 0, step_in_epoch_ = 0, global_step_ = 0;
  double epoch_loss_sum_ = 0, epoch_top1_sum_ = 0;
  int64_t epoch_steps_ = 0;
  bool resumed_ = false;
  // Distributed state (world_ > 1); declared after net_ so that the
  // reducer's parameter hooks go before the parameters.
  std::shared_ptr<dist::Comm> comm_;
  std::unique_ptr<dist::GradReducer> reducer_;
  std::unique_ptr<dist::SyncBatchNorm> sync_bn_;
};

// Resolves and checks a device string ("cpu", "cuda", "cuda:1").
torch::Device ResolveDevice(const std::string& device);

// Whether a memoryFormat ("auto", "channels_last", "contiguous") means
// channels_last on `device`; "auto" is channels_last on the CPU only.
// Anything else fails with kConfig.
bool ResolveChannelsLast(const std::string& memory_format, const torch::Device& device);

// Intra-op threads of the prefetch (data) thread, process-wide. 0 (the
// default) means: 1 when training on the CPU, where the step needs the cores
// and a second OpenMP team would oversubscribe them; the intra-op count on
// CUDA, where the step mostly launches kernels and the data path is the
// bottleneck.
void SetDataThreads(int n);
int DataThreads(const torch::Device& device);

// Embeds images with an image encoder in eval mode: uint8 is scaled by 1/255,
// then resized to out_h×out_w and normalised. memory_format sets the layout
// of each input batch only (the encoder's weights are left as they are);
// "auto" is channels_last on the CPU where the first residual stage's maps
// are at least 32 px on a side (out_h ≥ 128, or ≥ 32 with the small stem),
// where it was measured faster, and NCHW otherwise. No forward pass sees a
// single image (a lone remainder joins the batch before it; one image alone is
// run as a batch of two copies), so on the CPU an image's embedding does not
// depend on the batching around it.
torch::Tensor EmbedImages(models::ResNet& encoder, const torch::Tensor& images, const std::vector<double>& mean,
                          const std::vector<double>& std, int64_t out_h, int64_t out_w, int64_t batch_size,
                          const torch::Device& device, const std::atomic<bool>* abort = nullptr,
                          const std::string& memory_format = "auto");

// Image encoder weights under torchvision names (prefix stripped).
io::NamedTensors ImageEncoderTensors(models::ResNet& encoder);
// Loads torchvision-named weights; reports missing, unexpected and
// mismatched keys by name (kData).
void LoadImageEncoderTensors(models::ResNet& encoder, const io::Safetensors& file, const std::string& path);

}  // namespace tabsight::train
