#include "server/signals.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "server/server.h"

namespace ferry {
namespace {

int g_pipe[2] = {-1, -1};

extern "C" void OnServeSignal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &b, 1);  // full pipe: the signal is one of many
  errno = saved;
}

sigset_t ServeSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// The signal thread unblocks them for itself, so that a thread of ours can always take one.
void UnblockServeSignals() {
  const sigset_t set = ServeSignals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

// Blocks until one of the signals arrives; returns its number.
int NextSignal() {
  unsigned char b = 0;
  for (;;) {
    const ssize_t n = ::read(g_pipe[0], &b, 1);
    if (n == 1) return b;
    if (n < 0 && errno == EINTR) continue;
    return SIGTERM;  // the pipe is gone: treat it as a stop
  }
}

}  // namespace

Status InstallServeSignals() {
  if (g_pipe[0] < 0 && ::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Internal(std::string("cannot make the signal pipe: ") + std::strerror(errno));
  }
  // The read end blocks (NextSignal waits on it); the write end never does (a handler must not).
  ::fcntl(g_pipe[0], F_SETFL, ::fcntl(g_pipe[0], F_GETFL) & ~O_NONBLOCK);
  struct sigaction action {};
  action.sa_handler = OnServeSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    if (::sigaction(sig, &action, nullptr) != 0) {
      return Internal(std::string("cannot install a signal handler: ") + std::strerror(errno));
    }
  }
  const sigset_t set = ServeSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return Status::Ok();
}

std::shared_ptr<ServeSignalThread> ServeSignalThread::Start() {
  auto t = std::shared_ptr<ServeSignalThread>(new ServeSignalThread());
  std::thread([t] { t->Loop(); }).detach();
  return t;
}

void ServeSignalThread::Loop() {
  UnblockServeSignals();  // the one thread of ours that takes them (besides any a library started early)
  for (;;) {
    const int sig = NextSignal();
    std::unique_lock lock(mu_);
    switch (phase_) {
      case Phase::kDone:
        continue;
      case Phase::kStarting:
        if (sig == SIGHUP) continue;
        spdlog::warn("signal {} during start-up: exiting without waiting for the loads", sig);
        std::_Exit(1);
      case Phase::kRunning:
        if (sig == SIGHUP) {
          if (Status s = server_->ReloadTls(); !s.ok()) {
            spdlog::error("SIGHUP: the TLS files cannot be loaded; the certificate in force stays: {}", s.message());
          }
          continue;
        }
        phase_ = Phase::kDraining;
        stop_signal_ = sig;
        stop_.notify_all();
        continue;
      case Phase::kDraining:
        if (sig == SIGHUP) continue;
        spdlog::warn("second signal: exiting without waiting");
        std::_Exit(1);
    }
  }
}

void ServeSignalThread::Running(Server* server) {
  std::lock_guard lock(mu_);
  server_ = server;
  phase_ = Phase::kRunning;
}

int ServeSignalThread::WaitForStop() {
  std::unique_lock lock(mu_);
  stop_.wait(lock, [&] { return stop_signal_ != 0; });
  return stop_signal_;
}

void ServeSignalThread::Done() {
  std::lock_guard lock(mu_);
  phase_ = Phase::kDone;
  server_ = nullptr;
}

}  // namespace ferry
