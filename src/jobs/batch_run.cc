#include "jobs/batch_run.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>

namespace ferry {
namespace {

using std::chrono::milliseconds;

Status Errno(std::string_view what, const std::string& path) {
  const int err = errno;
  std::string message = fmt::format("{} '{}': {}", what, std::filesystem::path(path).filename().string(),
                                    std::strerror(err));
  if (err == EACCES || err == EPERM || err == EROFS) return PermissionDenied(std::move(message));
  if (err == ENOENT || err == ENOTDIR) return NotFound(std::move(message));
  return Unavailable(std::move(message));
}

// An append-only output file with a committed length: lines are buffered and reach the disk on Flush;
// Sync makes them durable. Confined to the batch's thread.
class OutputFile {
 public:
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Opens (creating) `path` and cuts it to `committed` bytes; returns the number of lines it held past
  // that length (written by a run that was cut off before its next checkpoint).
  Result<int64_t> Open(const std::string& path, int64_t committed) {
    path_ = path;
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return Errno("cannot open the output", path);
    const off_t size = ::lseek(fd_, 0, SEEK_END);
    if (size < committed) {
      return FailedPrecondition(fmt::format("the output '{}' is shorter ({} bytes) than its checkpoint ({} bytes)",
                                            std::filesystem::path(path).filename().string(), size, committed));
    }
    int64_t tail_lines = 0;
    std::string chunk(64 * 1024, '\0');
    for (off_t at = committed; at < size;) {
      const ssize_t n = ::pread(fd_, chunk.data(), chunk.size(), at);
      if (n <= 0) return Errno("cannot read the output", path);
      tail_lines += std::count(chunk.data(), chunk.data() + n, '\n');
      at += n;
    }
    if (::ftruncate(fd_, committed) != 0) return Errno("cannot truncate the output", path);
    if (::lseek(fd_, committed, SEEK_SET) < 0) return Errno("cannot seek the output", path);
    size_ = committed;
    return tail_lines;
  }
  void Append(std::string_view line) {
    buffer_.append(line);
    buffer_.push_back('\n');
  }
  bool WantsFlush() const { return buffer_.size() >= 64 * 1024; }
  Status Flush() {
    size_t done = 0;
    while (done < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // What did get written is past the committed length and is cut off again on resume.
        return Errno("cannot write the output", path_);
      }
      done += static_cast<size_t>(n);
    }
    size_ += static_cast<int64_t>(buffer_.size());
    buffer_.clear();
    return Status::Ok();
  }
  Status Sync() {
    FERRY_RETURN_IF_ERROR(Flush());
    if (::fsync(fd_) != 0) return Errno("cannot sync the output", path_);
    return Status::Ok();
  }
  int64_t size() const { return size_; }  // bytes flushed

 private:
  std::string path_;
  int fd_ = -1;
  std::string buffer_;
  int64_t size_ = 0;
};

Status SyncFolder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open the folder", folder.string());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot sync the folder", folder.string());
  return Status::Ok();
}

// Renames a partial file to its final name; a rename already made (a run cut off after it) is kept.
Status Publish(const std::string& final_path) {
  const std::string partial = PartialPath(final_path);
  std::error_code ec;
  if (!std::filesystem::exists(partial, ec) && std::filesystem::exists(final_path, ec)) return Status::Ok();
  if (::rename(partial.c_str(), final_path.c_str()) != 0) return Errno("cannot rename the output", final_path);
  return SyncFolder(std::filesystem::path(final_path).parent_path());
}

StoredFile FileRecord(const std::string& path) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  StoredFile f;
  f.id = NewFileId();
  f.filename = std::filesystem::path(path).filename().string();
  f.purpose = "batch_output";
  f.path = path;
  f.bytes = ec ? 0 : static_cast<int64_t>(bytes);
  return f;
}

// The state of one run. Confined to the batch's thread, except the slots' outcomes, which executors
// set under mu_.
class Runner {
 public:
  Runner(Batch batch, std::string owner, BatchStore* store, RecordExecutor* executor, const BatchRunOptions& options,
         std::shared_ptr<CancelToken> stop, BatchRunObserver observer)
      : batch_(std::move(batch)), owner_(std::move(owner)), store_(store), executor_(executor), options_(options),
        stop_(std::move(stop)), observer_(std::move(observer)), progress_(batch_.progress) {}

  Result<BatchRunResult> Run();

 private:
  struct Slot {
    BatchRecord record;
    std::optional<RecordOutcome> outcome;  // under mu_
    std::optional<SteadyTime> retry_at;    // batch thread only
  };

  Status Fail(const Status& why);
  Status Validate();
  Status OpenFiles();
  Status Loop();
  void Submit(const std::shared_ptr<Slot>& slot);
  Status FillWindow();
  // Writes the answered records at the head of the window, in order; true if any.
  bool WriteReady();
  Status MaybeCheckpoint(bool force);
  Status MaybeHeartbeat();
  void CancelInFlight();
  Result<BatchRunResult> Finish(BatchState final_state);
  BatchRunResult Outcome(BatchState state) const { return {state, progress_, redone_, resumed_}; }

  Batch batch_;
  const std::string owner_;
  BatchStore* store_;
  RecordExecutor* executor_;
  const BatchRunOptions& options_;
  std::shared_ptr<CancelToken> stop_;
  BatchRunObserver observer_;
  BatchProgress progress_;

  std::unique_ptr<RecordReader> reader_;
  bool input_done_ = false;
  OutputFile output_;
  OutputFile errors_;
  std::deque<std::shared_ptr<Slot>> window_;
  std::shared_ptr<CancelToken> records_cancel_ = CancelToken::Create();
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelling_ = false;
  bool stopped_ = false;  // the run was told to stop (drain): the batch stays as its checkpoint left it
  int64_t redone_ = 0;
  bool resumed_ = false;
  int64_t since_checkpoint_ = 0;
  SteadyTime last_checkpoint_{};
  SteadyTime last_heartbeat_{};
};

Status Runner::Fail(const Status& why) {
  FERRY_RETURN_IF_ERROR(store_->Transition(batch_.id, owner_, BatchState::kFailed, why.message()));
  batch_.state = BatchState::kFailed;
  return Status::Ok();
}

Status Runner::Validate() {
  Result<std::unique_ptr<RecordReader>> reader =
      RecordReader::Open(batch_.spec.input_path, batch_.spec.format, options_.reader);
  if (!reader.ok()) return Fail(reader.status());
  if (Status s = executor_->Prepare((*reader)->header()); !s.ok()) return Fail(s);
  Result<int64_t> total = CountRecords(batch_.spec.input_path, batch_.spec.format);
  if (!total.ok()) return Fail(total.status());
  progress_ = BatchProgress{};
  progress_.total = *total;
  FERRY_RETURN_IF_ERROR(store_->Checkpoint(batch_.id, owner_, progress_));
  FERRY_RETURN_IF_ERROR(store_->Transition(batch_.id, owner_, BatchState::kInProgress));
  batch_.state = BatchState::kInProgress;
  return Status::Ok();
}

Status Runner::OpenFiles() {
  FERRY_ASSIGN_OR_RETURN(reader_, RecordReader::Open(batch_.spec.input_path, batch_.spec.format, options_.reader));
  FERRY_RETURN_IF_ERROR(executor_->Prepare(reader_->header()));
  FERRY_RETURN_IF_ERROR(reader_->Seek(progress_.input_offset, progress_.input_line, progress_.records_done));
  FERRY_ASSIGN_OR_RETURN(int64_t out_tail, output_.Open(PartialPath(batch_.spec.output_path), progress_.output_bytes));
  FERRY_ASSIGN_OR_RETURN(int64_t err_tail, errors_.Open(PartialPath(batch_.spec.errors_path), progress_.errors_bytes));
  redone_ = out_tail + err_tail;
  if (progress_.output_bytes == 0) {
    // Nothing committed yet: the header starts the file (and is cut and written again on a resume).
    if (const std::string header = executor_->OutputHeader(); !header.empty()) {
      output_.Append(header);
      redone_ = std::max<int64_t>(0, redone_ - 1);
    }
  }
  return Status::Ok();
}

void Runner::Submit(const std::shared_ptr<Slot>& slot) {
  slot->retry_at.reset();
  executor_->Run(slot->record, records_cancel_, [this, slot](RecordOutcome outcome) {
    {
      std::lock_guard lock(mu_);
      slot->outcome = std::move(outcome);
    }
    cv_.notify_one();
  });
}

Status Runner::FillWindow() {
  while (!input_done_ && !cancelling_ && window_.size() < options_.max_in_flight && !stop_->cancelled()) {
    FERRY_ASSIGN_OR_RETURN(std::optional<BatchRecord> record, reader_->Next());
    if (!record) {
      input_done_ = true;
      break;
    }
    auto slot = std::make_shared<Slot>();
    slot->record = std::move(*record);
    window_.push_back(slot);
    if (!slot->record.error.ok()) {
      std::lock_guard lock(mu_);
      slot->outcome = RecordOutcome{RecordOutcome::Kind::kError, executor_->ErrorLine(slot->record, slot->record.error)};
    } else {
      Submit(slot);
    }
  }
  return Status::Ok();
}

bool Runner::WriteReady() {
  int64_t completed = 0, failed = 0;
  const SteadyTime now = options_.clock->Now();
  std::vector<std::shared_ptr<Slot>> resubmit;
  {
    std::lock_guard lock(mu_);
    for (auto& slot : window_) {
      if (slot->outcome && slot->outcome->kind == RecordOutcome::Kind::kRetry) {
        slot->outcome.reset();
        slot->retry_at = now + options_.retry_after;
      }
      if (slot->retry_at && *slot->retry_at <= now) resubmit.push_back(slot);
    }
    while (!window_.empty() && window_.front()->outcome) {
      Slot& s = *window_.front();
      const bool ok = s.outcome->kind == RecordOutcome::Kind::kOk;
      (ok ? output_ : errors_).Append(s.outcome->line);
      (ok ? completed : failed)++;
      progress_.records_done = s.record.index + 1;
      progress_.input_offset = s.record.end_offset;
      progress_.input_line = s.record.end_line;
      window_.pop_front();
    }
  }
  for (auto& slot : resubmit) Submit(slot);
  progress_.completed += completed;
  progress_.failed += failed;
  since_checkpoint_ += completed + failed;
  if (completed + failed > 0) {
    if (observer_.records) observer_.records(completed, failed);
    if (observer_.progress) observer_.progress(progress_);
  }
  return completed + failed > 0;
}

Status Runner::MaybeCheckpoint(bool force) {
  const SteadyTime now = options_.clock->Now();
  if (!force && since_checkpoint_ < options_.checkpoint_every_records &&
      (since_checkpoint_ == 0 || now - last_checkpoint_ < options_.checkpoint_every)) {
    if (output_.WantsFlush()) FERRY_RETURN_IF_ERROR(output_.Flush());
    if (errors_.WantsFlush()) FERRY_RETURN_IF_ERROR(errors_.Flush());
    return Status::Ok();
  }
  FERRY_RETURN_IF_ERROR(output_.Sync());
  FERRY_RETURN_IF_ERROR(errors_.Sync());
  progress_.output_bytes = output_.size();
  progress_.errors_bytes = errors_.size();
  FERRY_RETURN_IF_ERROR(store_->Checkpoint(batch_.id, owner_, progress_));
  since_checkpoint_ = 0;
  last_checkpoint_ = now;
  return Status::Ok();
}

Status Runner::MaybeHeartbeat() {
  const SteadyTime now = options_.clock->Now();
  if (now - last_heartbeat_ < options_.heartbeat_every) return Status::Ok();
  last_heartbeat_ = now;
  FERRY_ASSIGN_OR_RETURN(BatchState state, store_->Heartbeat(batch_.id, owner_, options_.lease));
  if (state == BatchState::kCancelling && !cancelling_) {
    cancelling_ = true;
    batch_.state = state;
  }
  return Status::Ok();
}

void Runner::CancelInFlight() {
  records_cancel_->Cancel();
  std::unique_lock lock(mu_);
  // Every submitted record answers (a cancelled task promptly); until then its callback refers to us.
  cv_.wait(lock, [this] {
    return std::all_of(window_.begin(), window_.end(), [](const auto& s) { return s->outcome || s->retry_at; });
  });
  window_.clear();
}

Status Runner::Loop() {
  last_checkpoint_ = last_heartbeat_ = options_.clock->Now();
  while (true) {
    FERRY_RETURN_IF_ERROR(FillWindow());
    if (window_.empty() && (input_done_ || cancelling_)) return MaybeCheckpoint(/*force=*/true);
    if (stop_->cancelled() || cancelling_) {
      stopped_ = !cancelling_;
      CancelInFlight();
      return MaybeCheckpoint(/*force=*/true);
    }
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, milliseconds(50), [this] { return window_.front()->outcome.has_value(); });
    }
    WriteReady();
    FERRY_RETURN_IF_ERROR(MaybeCheckpoint(/*force=*/false));
    FERRY_RETURN_IF_ERROR(MaybeHeartbeat());
  }
}

Result<BatchRunResult> Runner::Finish(BatchState final_state) {
  if (final_state == BatchState::kCompleted) {
    Status s = store_->Transition(batch_.id, owner_, BatchState::kFinalizing);
    if (s.code() == StatusCode::kFailedPrecondition) {
      // A cancel that came after the last record: the batch ends cancelled, with every record written.
      FERRY_ASSIGN_OR_RETURN(BatchState now, store_->Heartbeat(batch_.id, owner_, options_.lease));
      if (now != BatchState::kCancelling) return s;
      final_state = BatchState::kCancelled;
    } else if (!s.ok()) {
      return s;
    }
  }
  FERRY_RETURN_IF_ERROR(Publish(batch_.spec.output_path));
  FERRY_RETURN_IF_ERROR(Publish(batch_.spec.errors_path));
  if (final_state == BatchState::kCompleted) {
    if (Status s = executor_->Finalize(batch_); !s.ok()) {
      if (s.code() == StatusCode::kUnavailable) return s;
      FERRY_RETURN_IF_ERROR(Fail(s));
      return Outcome(BatchState::kFailed);
    }
  }
  FERRY_RETURN_IF_ERROR(store_->Finish(batch_.id, owner_, final_state, FileRecord(batch_.spec.output_path),
                                       FileRecord(batch_.spec.errors_path)));
  return Outcome(final_state);
}

Result<BatchRunResult> Runner::Run() {
  if (batch_.state == BatchState::kValidating) {
    FERRY_RETURN_IF_ERROR(Validate());
    if (batch_.state == BatchState::kFailed) return Outcome(BatchState::kFailed);
  } else if (batch_.state == BatchState::kInProgress) {
    resumed_ = true;
  }
  if (batch_.state == BatchState::kFinalizing) return Finish(BatchState::kCompleted);
  if (Status s = OpenFiles(); !s.ok()) {
    // An input that vanished or an output that cannot be written will not get better by retrying.
    if (s.code() == StatusCode::kUnavailable) return s;
    FERRY_RETURN_IF_ERROR(batch_.state == BatchState::kCancelling
                              ? store_->Transition(batch_.id, owner_, BatchState::kCancelled, s.message())
                              : Fail(s));
    return Outcome(batch_.state == BatchState::kCancelling ? BatchState::kCancelled : BatchState::kFailed);
  }
  if (resumed_) FERRY_RETURN_IF_ERROR(store_->RecordResume(batch_.id, owner_, redone_));
  cancelling_ = batch_.state == BatchState::kCancelling;
  if (Status s = Loop(); !s.ok()) {
    CancelInFlight();  // their callbacks refer to this run
    return s;
  }
  if (cancelling_) return Finish(BatchState::kCancelled);
  if (stopped_) return Outcome(batch_.state);
  return Finish(BatchState::kCompleted);
}

}  // namespace

std::string PartialPath(const std::string& final_path) { return final_path + ".partial"; }

Result<BatchRunResult> RunBatch(const Batch& batch, const std::string& owner, BatchStore* store,
                                RecordExecutor* executor, const BatchRunOptions& options,
                                std::shared_ptr<CancelToken> stop, BatchRunObserver observer) {
  if (!stop) stop = CancelToken::Create();
  Runner runner(batch, owner, store, executor, options, std::move(stop), std::move(observer));
  return runner.Run();
}

}  // namespace ferry
