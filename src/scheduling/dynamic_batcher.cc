#include "scheduling/dynamic_batcher.h"

#include <fmt/format.h>

#include <sys/prctl.h>

#include <cstring>

#include "scheduling/apportion.h"
#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

std::string ShapeKey(const std::vector<Tensor>& inputs) {
  std::string key;
  for (const Tensor& t : inputs) {
    for (size_t i = 1; i < t.shape.size(); ++i) key += std::to_string(t.shape[i]) + ',';
    key += ';';
  }
  return key;
}

int64_t Micro(SteadyTime::duration d) { return std::chrono::duration_cast<Micros>(d).count(); }

// Offsets of each BYTES element in a length-prefixed buffer, plus the end offset.
Result<std::vector<size_t>> BytesElementOffsets(const Tensor& t, int64_t count) {
  std::vector<size_t> offsets;
  offsets.reserve(static_cast<size_t>(count) + 1);
  BytesElementReader reader(t.data.span());
  std::string_view element;
  for (int64_t i = 0; i < count; ++i) {
    offsets.push_back(reader.offset());
    if (!reader.Next(&element)) return Internal("BYTES tensor truncated");
  }
  offsets.push_back(reader.offset());
  return offsets;
}

}  // namespace

Result<Tensor> ConcatenateRows(const std::vector<const Tensor*>& parts) {
  if (parts.empty()) return Internal("nothing to concatenate");
  const Tensor& first = *parts.front();
  if (first.shape.empty()) return Internal("cannot batch a scalar tensor");
  Tensor out;
  out.name = first.name;
  out.dtype = first.dtype;
  out.shape = first.shape;
  out.shape[0] = 0;
  size_t total_bytes = 0;
  for (const Tensor* p : parts) {
    if (p->dtype != first.dtype || p->shape.size() != first.shape.size() ||
        !std::equal(p->shape.begin() + 1, p->shape.end(), first.shape.begin() + 1)) {
      return Internal(fmt::format("input '{}': tensors in one batch differ in type or shape", first.name));
    }
    out.shape[0] += p->shape[0];
    total_bytes += p->data.size();
  }
  std::vector<uint8_t> bytes(total_bytes);
  size_t pos = 0;
  for (const Tensor* p : parts) {
    if (!p->data.empty()) std::memcpy(bytes.data() + pos, p->data.data(), p->data.size());
    pos += p->data.size();
  }
  out.data = Buffer::Own(std::move(bytes));
  return out;
}

Result<std::vector<Tensor>> SplitRows(const Tensor& whole, const std::vector<int64_t>& rows) {
  if (whole.shape.empty()) return Internal(fmt::format("output '{}' has no batch dimension", whole.name));
  int64_t total_rows = 0;
  for (int64_t r : rows) total_rows += r;
  if (whole.shape[0] != total_rows) {
    return Internal(fmt::format("output '{}' has {} rows for a batch of {}", whole.name, whole.shape[0], total_rows));
  }
  FERRY_ASSIGN_OR_RETURN(int64_t count, ElementCount(whole.shape));
  const int64_t per_row = total_rows == 0 ? 0 : count / total_rows;

  std::vector<Tensor> pieces;
  pieces.reserve(rows.size());
  std::vector<size_t> offsets;
  if (whole.dtype == DataType::kBytes) {
    FERRY_ASSIGN_OR_RETURN(offsets, BytesElementOffsets(whole, count));
  } else if (whole.data.size() != static_cast<size_t>(count) * ElementSize(whole.dtype)) {
    return Internal(fmt::format("output '{}' holds {} bytes, its shape needs {}", whole.name, whole.data.size(),
                                count * ElementSize(whole.dtype)));
  }
  int64_t row = 0;
  for (int64_t r : rows) {
    Tensor piece;
    piece.name = whole.name;
    piece.dtype = whole.dtype;
    piece.shape = whole.shape;
    piece.shape[0] = r;
    size_t begin, end;
    if (whole.dtype == DataType::kBytes) {
      begin = offsets[row * per_row];
      end = offsets[(row + r) * per_row];
    } else {
      const size_t row_bytes = static_cast<size_t>(per_row) * ElementSize(whole.dtype);
      begin = row * row_bytes;
      end = (row + r) * row_bytes;
    }
    // Pieces share the batch output's storage: no copy per task.
    piece.data = Buffer::View(std::make_shared<Buffer>(whole.data), whole.data.data() + begin, end - begin);
    pieces.push_back(std::move(piece));
    row += r;
  }
  return pieces;
}

Result<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(
    DynamicBatcherOptions options, std::vector<std::unique_ptr<ModelInstance>> instances) {
  if (instances.empty()) return InvalidArgument("a scheduler needs at least one model instance");
  if (options.max_queue_size == 0) return InvalidArgument("max_queue_size must be positive");
  if (!options.model_has_batch_dim) {
    options.planner.batching_enabled = false;
    options.planner.max_batch_size = 1;
  }
  return std::unique_ptr<DynamicBatcher>(new DynamicBatcher(std::move(options), std::move(instances)));
}

DynamicBatcher::DynamicBatcher(DynamicBatcherOptions options, std::vector<std::unique_ptr<ModelInstance>> instances)
    : options_(std::move(options)), planner_(options_.planner), policy_(options_.scale) {
  std::lock_guard lock(mu_);
  for (auto& instance : instances) StartExecutorLocked(std::move(instance));
  if (options_.scale.max > options_.scale.min && options_.make_instance && options_.scale_every.count() > 0) {
    scaler_ = std::thread([this] { ScalerLoop(); });
  }
}

void DynamicBatcher::StartExecutorLocked(std::unique_ptr<ModelInstance> instance) {
  auto e = std::make_unique<Executor>();
  e->instance = std::move(instance);
  Executor* raw = e.get();
  executors_.push_back(std::move(e));
  ++active_;
  raw->thread = std::thread([this, raw] { ExecutorLoop(raw); });
}

DynamicBatcher::~DynamicBatcher() { Drain(); }

Status DynamicBatcher::Submit(InferenceTask&& task) {
  std::string key = options_.model_has_batch_dim ? ShapeKey(task.inputs) : std::string();
  {
    std::lock_guard lock(mu_);
    if (draining_) return Unavailable("the model version is unloading");
    // Each priority class is bounded separately, so a job or batch backlog never fills the online queue.
    std::deque<Queued>& queue = task.priority == Priority::kOnline ? queue_
                                : task.priority == Priority::kJob  ? background_
                                                                   : bulk_;
    if (queue.size() >= options_.max_queue_size) {
      return Unavailable(fmt::format("the model's queue is full ({} requests)", options_.max_queue_size));
    }
    const SteadyTime now = options_.clock->Now();
    if (task.priority == Priority::kOnline) FERRY_RETURN_IF_ERROR(AdmitLocked(task, now));
    task.enqueue_time = now;
    queue.push_back(Queued{std::move(task), std::move(key)});
  }
  cv_.notify_one();
  return Status::Ok();
}

size_t DynamicBatcher::QueueDepth() const {
  std::lock_guard lock(mu_);
  return queue_.size() + background_.size() + bulk_.size();
}

void DynamicBatcher::Drain() {
  {
    std::lock_guard lock(mu_);
    draining_ = true;
  }
  cv_.notify_all();
  scaler_cv_.notify_all();
  if (scaler_.joinable()) scaler_.join();  // then nobody changes executors_
  for (auto& e : executors_) {
    if (e->thread.joinable()) e->thread.join();
  }
}

Status DynamicBatcher::AdmitLocked(const InferenceTask& task, SteadyTime now) const {
  const Micros service = service_time_.value();
  if (service.count() <= 0) return Status::Ok();
  const BatchPlannerOptions& plan = planner_.options();
  WaitEstimateInput in;
  in.tasks_ahead = queue_.size();
  in.tasks_per_batch = plan.batching_enabled ? static_cast<size_t>(std::max<int64_t>(1, plan.max_batch_size)) : 1;
  in.instances = active_;
  in.busy_instances = busy_;
  in.service = service;
  const Micros wait = ExpectedWait(in);
  const double wait_ms = static_cast<double>(wait.count()) / 1000.0;
  if (options_.max_queue_wait.count() > 0 && wait > options_.max_queue_wait) {
    return Unavailable(fmt::format("the model is overloaded: about {:.1f} ms of work is queued ahead, over its "
                                   "max_queue_wait_ms ({})", wait_ms, options_.max_queue_wait.count() / 1000));
  }
  if (task.deadline && now + wait + service > *task.deadline) {
    return Unavailable(fmt::format("the model is overloaded: about {:.1f} ms of queued work and {:.1f} ms to run "
                                   "would end past the request's deadline", wait_ms,
                                   static_cast<double>(service.count()) / 1000.0));
  }
  return Status::Ok();
}

void DynamicBatcher::TakeExpiredLocked(SteadyTime now, std::vector<Queued>* expired) {
  for (std::deque<Queued>* queue : {&queue_, &background_, &bulk_}) {
    for (auto it = queue->begin(); it != queue->end();) {
      const InferenceTask& t = it->task;
      if ((t.cancel && t.cancel->cancelled()) || (t.deadline && now >= *t.deadline)) {
        expired->push_back(std::move(*it));
        it = queue->erase(it);
      } else {
        ++it;
      }
    }
  }
}

void DynamicBatcher::ExecutorLoop(Executor* self) {
  ModelInstance* instance = self->instance.get();
  // Queue delays are tens to hundreds of microseconds; Linux's default 50 us timer slack would add up
  // to half of that again to every wait.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  std::vector<PendingTask> head;
  std::vector<Queued> batch;
  std::vector<Queued> expired;
  while (true) {
    {
      std::unique_lock lock(mu_);
      while (true) {
        const SteadyTime now = options_.clock->Now();
        TakeExpiredLocked(now, &expired);
        if (!expired.empty()) break;  // complete them outside the lock first
        if (self->retire) {  // scaled down: the others take the work
          self->exited = true;
          cv_.notify_all();  // a wake-up meant for work may have come here: pass it on
          return;
        }
        if (queue_.empty() && background_.empty() && bulk_.empty()) {
          if (draining_) return;
          cv_.wait(lock);
          continue;
        }
        // Job work runs only while no online request waits, and bulk (batch) work only while neither
        // does; the classes never share a batch.
        std::deque<Queued>& queue = !queue_.empty() ? queue_ : !background_.empty() ? background_ : bulk_;
        head.clear();
        const size_t look = std::min<size_t>(queue.size(), static_cast<size_t>(planner_.options().max_batch_size));
        for (size_t i = 0; i < look; ++i) {
          head.push_back(PendingTask{queue[i].task.batch_size, queue[i].task.enqueue_time, &queue[i].shape_key});
        }
        BatchDecision decision = planner_.Decide(head, now);
        // While draining, queued work runs at once instead of waiting for company.
        if (decision.task_count == 0 && draining_) decision.task_count = head.size();
        if (decision.task_count > 0) {
          for (size_t i = 0; i < decision.task_count; ++i) {
            batch.push_back(std::move(queue.front()));
            queue.pop_front();
          }
          ++busy_;
          self->running = true;
          break;
        }
        // The planner's deadline is in the injected clock's time; wait the same span on the real clock.
        cv_.wait_for(lock, *decision.wait_until - now);
      }
    }
    for (Queued& q : expired) {
      const bool cancelled = q.task.cancel && q.task.cancel->cancelled();
      TaskTimings timings;
      timings.queue_us = Micro(options_.clock->Now() - q.task.enqueue_time);
      q.task.on_complete(cancelled ? Cancelled("the request was cancelled")
                                   : DeadlineExceeded("the request timed out in the queue"),
                         timings);
    }
    expired.clear();
    if (!batch.empty()) {
      const SteadyTime start = options_.clock->Now();
      RunBatch(instance, batch);
      batch.clear();
      const Micros took = std::chrono::duration_cast<Micros>(options_.clock->Now() - start);
      std::lock_guard lock(mu_);
      --busy_;
      self->running = false;
      service_time_.Add(took);
    }
  }
}

void DynamicBatcher::RunBatch(ModelInstance* instance, std::vector<Queued>& batch) {
  const SteadyTime start = options_.clock->Now();
  std::vector<int64_t> rows;
  int64_t total_rows = 0;
  for (const Queued& q : batch) {
    rows.push_back(q.task.batch_size);
    total_rows += q.task.batch_size;
  }

  // Each task is charged its rows' share of the batch's time, failed or not: the time was spent.
  auto fail_all = [&](const Status& status, int64_t compute_us) {
    const std::vector<int64_t> shares = Apportion(compute_us, rows);
    for (size_t i = 0; i < batch.size(); ++i) {
      Queued& q = batch[i];
      q.task.on_complete(status, TaskTimings{Micro(start - q.task.enqueue_time), compute_us, total_rows, shares[i]});
    }
  };

  std::vector<Tensor> merged;
  const std::vector<Tensor>* inputs = &batch.front().task.inputs;
  if (batch.size() > 1) {
    const size_t n_inputs = batch.front().task.inputs.size();
    merged.reserve(n_inputs);
    for (size_t i = 0; i < n_inputs; ++i) {
      std::vector<const Tensor*> parts;
      for (const Queued& q : batch) parts.push_back(&q.task.inputs[i]);
      Result<Tensor> joined = ConcatenateRows(parts);
      if (!joined.ok()) return fail_all(joined.status(), 0);
      merged.push_back(std::move(joined).value());
    }
    inputs = &merged;
  }

  Result<std::vector<Tensor>> outputs = Internal("backend did not run");
  try {
    outputs = instance->Execute(*inputs);
  } catch (const std::exception& e) {
    // Backends must not throw; if one does, the request fails and the server lives.
    outputs = Internal(fmt::format("backend error: {}", e.what()));
  }
  const int64_t compute_us = Micro(options_.clock->Now() - start);
  if (!outputs.ok()) return fail_all(outputs.status(), compute_us);

  if (batch.size() == 1) {
    Queued& q = batch.front();
    q.task.on_complete(std::move(outputs).value(),
                       TaskTimings{Micro(start - q.task.enqueue_time), compute_us, total_rows, compute_us});
    return;
  }
  std::vector<std::vector<Tensor>> per_task(batch.size());
  for (const Tensor& out : *outputs) {
    Result<std::vector<Tensor>> pieces = SplitRows(out, rows);
    if (!pieces.ok()) return fail_all(pieces.status(), compute_us);
    for (size_t i = 0; i < batch.size(); ++i) per_task[i].push_back(std::move((*pieces)[i]));
  }
  const std::vector<int64_t> shares = Apportion(compute_us, rows);
  for (size_t i = 0; i < batch.size(); ++i) {
    Queued& q = batch[i];
    q.task.on_complete(std::move(per_task[i]),
                       TaskTimings{Micro(start - q.task.enqueue_time), compute_us, total_rows, shares[i]});
  }
}

}  // namespace ferry
