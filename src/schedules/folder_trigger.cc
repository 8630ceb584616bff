#include "schedules/folder_trigger.h"

#include <fmt/format.h>
#include <fnmatch.h>
#include <poll.h>
#include <sys/stat.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/json_writer.h"
#include "schedules/civil_time.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kMarker = ".done";

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

FolderTriggers::FolderTriggers(SqliteScheduleStore* store, BatchLauncher launcher, FolderTriggerOptions options,
                               FolderTriggerObserver observer)
    : store_(store), launcher_(std::move(launcher)), options_(std::move(options)), observer_(std::move(observer)) {}

FolderTriggers::~FolderTriggers() { Stop(); }

Status FolderTriggers::Add(const DefinitionFields& fields) {
  FERRY_ASSIGN_OR_RETURN(TriggerSpec spec, ParseTrigger(fields));
  FERRY_ASSIGN_OR_RETURN(fs::path folder, PathUnderRoot(options_.input_root, spec.watch, "watched folder"));
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec || !fs::is_directory(folder, ec)) {
    return InvalidArgument(fmt::format("trigger '{}': '{}' is not a folder that can be watched", spec.name, spec.watch));
  }
  folder = fs::canonical(folder, ec);  // now that it exists: no trailing '/', links resolved
  if (ec) return InvalidArgument(fmt::format("trigger '{}': '{}' cannot be resolved", spec.name, spec.watch));
  FERRY_RETURN_IF_ERROR(CheckLaunchable(launcher_, spec.batch, /*loading_ok=*/true, fmt::format("trigger '{}'", spec.name)));
  std::lock_guard lock(mu_);
  if (entries_.count(spec.name)) return Status(StatusCode::kAlreadyExists, fmt::format("trigger '{}' is defined twice", spec.name));
  for (const auto& [name, e] : entries_) {
    if (e.folder == folder) return InvalidArgument(fmt::format("trigger '{}' watches the folder of '{}'", spec.name, name));
  }
  const std::string name = spec.name;  // the right side of `=` is evaluated first
  entries_[name] = Entry{std::move(spec), std::move(folder), -1};
  return Status::Ok();
}

void FolderTriggers::Refuse(const std::string& name, const std::string& reason) {
  std::lock_guard lock(mu_);
  refused_[name] = reason;
}

std::vector<std::pair<std::string, std::string>> FolderTriggers::Refused() const {
  std::lock_guard lock(mu_);
  return {refused_.begin(), refused_.end()};
}

bool FolderTriggers::IsEntryName(const Entry& e, const std::string& name) const {
  if (name.empty() || name.front() == '.' || EndsWith(name, kMarker) || EndsWith(name, ".part") ||
      EndsWith(name, ".tmp") || EndsWith(name, "~")) {
    return false;
  }
  return ::fnmatch(e.spec.pattern.c_str(), name.c_str(), FNM_PERIOD) == 0;
}

bool FolderTriggers::IsComplete(const Entry& e, const std::string& name, bool renamed) const {
  std::error_code ec;
  if (e.spec.complete == CompleteWhen::kMarker) {
    return fs::exists(e.folder / name, ec) && fs::exists(e.folder / (name + std::string(kMarker)), ec);
  }
  struct stat st {};
  if (::stat((e.folder / name).c_str(), &st) != 0) return false;
  if (renamed) return true;
  // Found by a listing, not a rename: a file changed within the settle time may still be written.
  const int64_t mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
  return options_.clock->NowUnixMs() - mtime_ms >= options_.settle.count();
}

void FolderTriggers::Offer(const std::string& trigger, const std::string& name, bool renamed) {
  Entry entry;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(trigger);
    if (it == entries_.end()) return;
    entry = it->second;
  }
  if (IsEntryName(entry, name) && IsComplete(entry, name, renamed)) Take(entry, name);
}

void FolderTriggers::Take(const Entry& e, const std::string& name) {
  std::lock_guard taking(take_mu_);
  auto taken = taken_.find(e.spec.name);
  if (taken == taken_.end()) {  // the names taken before this process, read once
    Result<std::vector<std::string>> names = store_->TriggerFileNames(e.spec.name);
    if (!names.ok()) return;  // the store is busy: the next rescan tries again
    taken = taken_.emplace(e.spec.name, std::set<std::string>(names->begin(), names->end())).first;
  }
  if (taken->second.count(name)) return;
  BatchOrder o;
  o.id = DerivedBatchId({"trigger", e.spec.name, name});
  o.batch = e.spec.batch;
  o.batch.input = (e.folder / name).string();
  const int64_t now = options_.clock->NowUnixMs() / 1000;
  PatternValues values = SlotValues(TimeZone::Utc(), now);
  values.name = name;
  values.stem = fs::path(name).stem().string();
  TriggerFileRecord record{e.spec.name, name, o.id, "started", "", 0};
  Result<std::string> output = ExpandPattern(e.spec.batch.output, values, true);
  Result<bool> made = output.ok() ? Result<bool>(true) : Result<bool>(output.status());
  if (output.ok()) {
    o.batch.output = *output;
    JsonWriter w(&o.metadata_json);
    w.BeginObject().Key("trigger").String(e.spec.name).Key("file").String(name).EndObject();
    made = launcher_.launch(o);
  }
  if (!made.ok()) {
    if (made.status().code() == StatusCode::kUnavailable) return;  // a model loading, the disk: tried again later
    record.outcome = "refused";
    record.batch_id.clear();
    record.error = made.status().message();
    spdlog::warn("trigger '{}': '{}' starts no batch: {}", e.spec.name, name, record.error);
  }
  if (Status s = store_->AddTriggerFile(record); !s.ok() && s.code() != StatusCode::kAlreadyExists) {
    spdlog::warn("trigger '{}': cannot record '{}': {}", e.spec.name, name, s.message());
    return;
  }
  taken->second.insert(name);
  if (observer_.file) {
    observer_.file(e.spec.name, "seen");
    observer_.file(e.spec.name, record.outcome);
  }
}

void FolderTriggers::Rescan() {
  std::vector<Entry> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) entries.push_back(e);
  }
  for (const Entry& e : entries) {
    std::error_code ec;
    std::vector<std::string> names;
    for (fs::directory_iterator it(e.folder, ec), end; !ec && it != end; it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec) spdlog::warn("trigger '{}': cannot list '{}': {}", e.spec.name, e.folder.string(), ec.message());
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (stopping_) return;
      if (IsEntryName(e, name) && IsComplete(e, name, /*renamed=*/false)) Take(e, name);
    }
  }
}

void FolderTriggers::CheckOutcomes() {
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) names.push_back(name);
  }
  for (const std::string& trigger : names) {
    // Oldest first: they end first, and a long backlog must not hide them.
    Result<std::vector<TriggerFileRecord>> started = store_->ListTriggerFiles(trigger, "started", 1000, true);
    if (!started.ok()) continue;
    for (const TriggerFileRecord& f : *started) {
      Result<std::pair<std::string, std::string>> end = launcher_.outcome(f.batch_id);
      if (!end.ok() || end->first.empty()) continue;
      const std::string outcome = end->first == "completed" ? "completed" : "failed";
      if (store_->SetTriggerOutcome(trigger, f.name, outcome, end->second).ok() && observer_.file) {
        observer_.file(trigger, outcome);
      }
    }
  }
}

Result<TriggerView> FolderTriggers::View(const Entry& e, int64_t failures_limit) {
  TriggerView v{e.spec, e.folder, {}, {}};
  FERRY_ASSIGN_OR_RETURN(v.counts, store_->CountTriggerFiles(e.spec.name));
  for (const char* outcome : {"refused", "failed"}) {
    FERRY_ASSIGN_OR_RETURN(std::vector<TriggerFileRecord> files, store_->ListTriggerFiles(e.spec.name, outcome, failures_limit));
    v.failures.insert(v.failures.end(), files.begin(), files.end());
  }
  std::sort(v.failures.begin(), v.failures.end(),
            [](const TriggerFileRecord& a, const TriggerFileRecord& b) { return a.seen_ms > b.seen_ms; });
  if (static_cast<int64_t>(v.failures.size()) > failures_limit) v.failures.resize(static_cast<size_t>(failures_limit));
  return v;
}

Result<std::vector<TriggerView>> FolderTriggers::List(int64_t failures_limit) {
  std::vector<Entry> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) entries.push_back(e);
  }
  std::vector<TriggerView> out;
  for (const Entry& e : entries) {
    FERRY_ASSIGN_OR_RETURN(TriggerView v, View(e, failures_limit));
    out.push_back(std::move(v));
  }
  return out;
}

Result<TriggerView> FolderTriggers::Get(const std::string& name, int64_t failures_limit) {
  Entry e;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return NotFound(fmt::format("no trigger '{}'", name.substr(0, 64)));
    e = it->second;
  }
  return View(e, failures_limit);
}

Status FolderTriggers::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || entries_.empty()) return Status::Ok();
  stopping_ = false;
  stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) return Unavailable(fmt::format("triggers: eventfd: {}", std::strerror(errno)));
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    spdlog::warn("triggers: no inotify ({}): folders are only listed every {} ms", std::strerror(errno),
                 options_.rescan_every.count());
  }
  for (auto it = entries_.begin(); inotify_fd_ >= 0 && it != entries_.end();) {
    Entry& e = it->second;
    e.watch = ::inotify_add_watch(inotify_fd_, e.folder.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_ONLYDIR);
    if (e.watch < 0) {  // this trigger is refused; the others run
      const std::string reason = fmt::format("cannot watch '{}': {}", e.folder.string(), std::strerror(errno));
      spdlog::error("trigger '{}' does not run: {}", it->first, reason);
      refused_[it->first] = reason;
      it = entries_.erase(it);
      continue;
    }
    by_watch_[e.watch] = it->first;
    ++it;
  }
  // Watches first, then the listing: an entry arriving in between is seen by both and taken once.
  thread_ = std::thread([this] {
    Rescan();
    Loop();
  });
  return Status::Ok();
}

void FolderTriggers::Stop() {
  stopping_ = true;
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  for (int* fd : {&inotify_fd_, &stop_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void FolderTriggers::HandleEvents() {
  alignas(inotify_event) char buf[16 * 1024];
  while (!stopping_) {
    const ssize_t n = ::read(inotify_fd_, buf, sizeof(buf));
    if (n <= 0) return;
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        Rescan();
        continue;
      }
      std::string trigger;
      CompleteWhen complete = CompleteWhen::kRenamed;
      {
        std::lock_guard lock(mu_);
        auto it = by_watch_.find(ev->wd);
        if (it == by_watch_.end() || ev->len == 0) continue;
        trigger = it->second;
        complete = entries_.at(trigger).spec.complete;
      }
      std::string name(ev->name);
      if (complete == CompleteWhen::kRenamed) {
        // Only a rename makes an entry complete: one created here is still being written.
        if ((ev->mask & IN_MOVED_TO) != 0) Offer(trigger, name, /*renamed=*/true);
        continue;
      }
      if (EndsWith(name, kMarker)) name.resize(name.size() - kMarker.size());  // a marker names its entry
      Offer(trigger, name, false);
    }
  }
}

void FolderTriggers::Loop() {
  auto next_rescan = std::chrono::steady_clock::now() + options_.rescan_every;
  auto next_check = std::chrono::steady_clock::now();
  while (true) {
    // Without inotify (-1), poll skips the first descriptor and the loop lists the folders only.
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int rc = ::poll(fds, 2, static_cast<int>(options_.check_every.count()));
    if (rc < 0 && errno != EINTR) {
      spdlog::error("triggers: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0 || stopping_) return;
    try {
      if (fds[1].revents & POLLIN) HandleEvents();
      if (std::chrono::steady_clock::now() >= next_check) {
        CheckOutcomes();
        next_check = std::chrono::steady_clock::now() + options_.check_every;
      }
      if (std::chrono::steady_clock::now() >= next_rescan) {
        Rescan();
        next_rescan = std::chrono::steady_clock::now() + options_.rescan_every;
      }
    } catch (const std::exception& e) {
      spdlog::error("triggers: {}", e.what());
    }
  }
}

}  // namespace ferry
