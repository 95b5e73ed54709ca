#include "distributed/grad_reducer.h"

#include <map>

#include "common/error.h"

namespace tabsight::dist {

GradReducer::GradReducer(Comm& comm, std::vector<torch::Tensor> params, int64_t bucket_bytes) : comm_(comm) {
  // Reverse registration order; a bucket holds one dtype and device.
  std::vector<torch::Tensor> trainable;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (it->requires_grad()) trainable.push_back(*it);
  }
  int64_t bucket_numel = 0;
  for (auto& p : trainable) {
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool fits = !buckets_.empty() && buckets_.back().flat.scalar_type() == p.scalar_type() &&
                      buckets_.back().flat.device() == p.device() &&
                      (bucket_numel * static_cast<int64_t>(p.element_size()) + bytes <= bucket_bytes);
    if (!fits) {
      if (!buckets_.empty()) buckets_.back().flat = torch::zeros({bucket_numel}, buckets_.back().flat.options());
      Bucket b;
      b.flat = torch::empty({0}, p.options().requires_grad(false));
      buckets_.push_back(b);
      bucket_numel = 0;
    }
    Slot s;
    s.param = p;
    s.bucket = buckets_.size() - 1;
    s.offset = bucket_numel;
    bucket_numel += p.numel();
    buckets_.back().size += 1;
    slots_.push_back(s);
  }
  if (!buckets_.empty()) buckets_.back().flat = torch::zeros({bucket_numel}, buckets_.back().flat.options());
  for (size_t i = 0; i < slots_.size(); ++i) {
    slots_[i].hook = slots_[i].param.register_hook([this, i](const torch::Tensor& grad) { OnGrad(i, grad); });
  }
  Begin();
}

GradReducer::~GradReducer() {
  for (auto& s : slots_) {
    try {
      s.param.remove_hook(s.hook);
    } catch (...) {
    }
  }
}

void GradReducer::Begin() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : slots_) s.ready = false;
  for (auto& b : buckets_) {
    b.pending = b.size;
    b.work.reset();
  }
  next_launch_ = 0;
}

void GradReducer::OnGrad(size_t index, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mu_);
  Slot& s = slots_[index];
  Bucket& b = buckets_[s.bucket];
  auto view = b.flat.narrow(0, s.offset, s.param.numel());
  if (s.ready) {
    // A second gradient for the same parameter in one backward: autograd
    // normally sums them before the hook; accept it while the bucket waits.
    if (b.work) Fail(ErrorCode::kTorch, "gradient reducer: a parameter's gradient arrived after its bucket was sent");
    view.add_(grad.detach().reshape({-1}));
    return;
  }
  view.copy_(grad.detach().reshape({-1}));
  s.ready = true;
  --b.pending;
  LaunchReady();
}

void GradReducer::LaunchReady() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    auto& b = buckets_[next_launch_];
    b.work = comm_.AllReduceSumAsync(b.flat);
    ++next_launch_;
  }
}

void GradReducer::Finish(double scale) {
  std::vector<bool> used(slots_.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Parameters without a gradient this step (unused on every rank, since
    // all ranks run the same graph) count as zeros in their bucket.
    for (size_t i = 0; i < slots_.size(); ++i) {
      auto& s = slots_[i];
      used[i] = s.ready;
      if (!s.ready) {
        buckets_[s.bucket].flat.narrow(0, s.offset, s.param.numel()).zero_();
        s.ready = true;
        --buckets_[s.bucket].pending;
      }
    }
    LaunchReady();
  }
  for (auto& b : buckets_) comm_.Wait(b.work, "gradient all-reduce");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!used[i]) continue;
    auto& s = slots_[i];
    auto reduced = buckets_[s.bucket].flat.narrow(0, s.offset, s.param.numel()).view(s.param.sizes());
    auto& g = s.param.mutable_grad();
    if (!g.defined()) g = torch::empty_like(s.param);
    if (scale == 1.0) {
      g.copy_(reduced);
    } else {
      g.copy_(reduced * scale);
    }
  }
}

}  // namespace tabsight::dist
