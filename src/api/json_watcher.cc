#include "api/json_watcher.h"

namespace ferry {

JsonWatcher::~JsonWatcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& e : entries_) End(*e);
}

Status JsonWatcher::Add(std::unique_ptr<Entry> entry) {
  std::lock_guard lock(mu_);
  if (stopping_) return Unavailable("shutting down");
  if (entries_.size() >= max_watches_) return Unavailable(busy_message_);
  entries_.push_back(std::move(entry));
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  cv_.notify_all();
  return Status::Ok();
}

Status JsonWatcher::Await(Read read, std::string not_found_message, std::chrono::steady_clock::time_point deadline,
                          Done done) {
  bool final_state = false;
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> now, read(&final_state));
  if (!now) return NotFound(std::move(not_found_message));
  if (final_state || std::chrono::steady_clock::now() >= deadline) {
    done(std::move(*now));
    return Status::Ok();
  }
  auto entry = std::make_unique<Entry>();
  entry->read = std::move(read);
  entry->last = std::move(*now);
  entry->done = std::move(done);
  entry->deadline = deadline;
  entry->not_found = std::move(not_found_message);
  return Add(std::move(entry));
}

bool JsonWatcher::PollAwait(Entry& e) {
  bool final_state = false;
  Result<std::optional<std::string>> now = e.read(&final_state);
  if (now.ok() && !now->has_value()) {
    e.done(NotFound(e.not_found));
    e.done = [](Result<std::string>) {};  // answered: ending it must not answer again
    return false;
  }
  if (now.ok()) e.last = std::move(**now);
  return !(final_state || std::chrono::steady_clock::now() >= e.deadline);
}

Status JsonWatcher::Watch(Read read, std::string not_found_message, std::shared_ptr<CancelToken> cancel,
                          std::function<bool(const std::string&)> send, std::function<void()> end) {
  bool final_state = false;
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> now, read(&final_state));
  if (!now) return NotFound(std::move(not_found_message));
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Unavailable("shutting down");
    if (entries_.size() >= max_watches_) return Unavailable(busy_message_);
  }
  if (!send(*now) || final_state) {
    end();
    return Status::Ok();
  }
  auto entry = std::make_unique<Entry>();
  entry->read = std::move(read);
  entry->cancel = std::move(cancel);
  entry->send = std::move(send);
  entry->end = std::move(end);
  entry->last = std::move(*now);
  entry->last_sent = std::chrono::steady_clock::now();
  std::function<void()> end_now = entry->end;
  // The first event is out: a watch that cannot be kept (shutting down, full) ends its stream.
  if (!Add(std::move(entry)).ok()) end_now();
  return Status::Ok();
}

bool JsonWatcher::Poll(Entry& e) {
  if (e.done) return PollAwait(e);
  if (e.cancel && e.cancel->cancelled()) return false;
  bool final_state = false;
  Result<std::optional<std::string>> now = e.read(&final_state);
  const auto t = std::chrono::steady_clock::now();
  if (!now.ok()) return true;         // unreadable now, perhaps readable next tick
  if (!now->has_value()) return false;  // removed (retention) while watched
  if (**now != e.last) {
    const bool keep = e.send(**now) && !final_state;
    e.last = std::move(**now);
    e.last_sent = t;
    return keep;
  }
  if (t - e.last_sent >= kKeepAlive) {
    e.last_sent = t;
    return e.send(std::string());
  }
  return true;
}

void JsonWatcher::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    std::vector<std::unique_ptr<Entry>> open = std::move(entries_);
    entries_.clear();
    lock.unlock();
    std::vector<std::unique_ptr<Entry>> kept;
    for (auto& e : open) {
      if (Poll(*e)) {
        kept.push_back(std::move(e));
      } else {
        End(*e);
      }
    }
    lock.lock();
    for (auto& e : kept) entries_.push_back(std::move(e));
    cv_.wait_for(lock, kEvery, [&] { return stopping_; });
  }
}

}  // namespace ferry
