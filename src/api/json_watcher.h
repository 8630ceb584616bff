#pragma once
// Watches of stored objects (a job, a batch) for event streams: one thread polls every open watch,
// so a watch holds no thread of its own, and sends the object's JSON each time it changed (an empty
// string after kKeepAlive without a change, for a keep-alive comment) until the object is final, the
// client left (its cancel token) or `send` refused. Thread-safe.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/cancel_token.h"
#include "common/result.h"

namespace ferry {

class JsonWatcher {
 public:
  // The watched object's JSON now, or nullopt once it is gone; `final_state` says whether it can change
  // again. A read error keeps the watch (the store may be readable next tick).
  using Read = std::function<Result<std::optional<std::string>>(bool* final_state)>;
  static constexpr std::chrono::milliseconds kEvery{50};
  static constexpr std::chrono::milliseconds kKeepAlive{15'000};

  // `max_watches`: beyond it Watch answers kUnavailable with `busy_message`.
  JsonWatcher(size_t max_watches, std::string busy_message)
      : max_watches_(max_watches), busy_message_(std::move(busy_message)) {}
  ~JsonWatcher();  // ends the watches still open

  // Reads the object now: kNotFound (and no call of `send` or `end`) when there is none; else sends it
  // at once from this thread, and later changes from the watch thread; `end` once it is over. `send`
  // must not block.
  Status Watch(Read read, std::string not_found_message, std::shared_ptr<CancelToken> cancel,
               std::function<bool(const std::string&)> send, std::function<void()> end);
  // A long-poll: `done` gets the object once it is final or `deadline` passed, whichever comes first
  // (at once, from this thread, when it already is), and kNotFound if it disappears meanwhile. Holds
  // no thread while it waits. kNotFound (and no call) when there is no such object now.
  using Done = std::function<void(Result<std::string>)>;
  Status Await(Read read, std::string not_found_message, std::chrono::steady_clock::time_point deadline,
               Done done);

 private:
  struct Entry {
    Read read;
    std::shared_ptr<CancelToken> cancel;
    std::function<bool(const std::string&)> send;
    std::function<void()> end;
    std::string last;
    std::chrono::steady_clock::time_point last_sent;
    Done done;  // set for a long-poll (Await), which ends at `deadline`
    std::chrono::steady_clock::time_point deadline;
    std::string not_found;
  };
  Status Add(std::unique_ptr<Entry> entry);
  static bool PollAwait(Entry& e);
  static void End(Entry& e) {
    if (e.done) {
      e.done(e.last);
    } else {
      e.end();
    }
  }
  void Loop();
  // One tick for one watch: false when it is over.
  static bool Poll(Entry& e);

  const size_t max_watches_;
  const std::string busy_message_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Entry>> entries_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ferry
