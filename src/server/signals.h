#pragma once
// The signals `ferry serve` acts on: SIGTERM and SIGINT (drain; a second one exits at once) and SIGHUP
// (reload the TLS files). Handlers write the signal's number to a pipe, which is async-signal-safe, and
// NextSignal reads it on an ordinary thread. Handlers rather than sigwait: a library may start threads
// before main (OpenBLAS does, at load) with every signal unblocked, and the kernel hands a
// process-directed signal to any thread not blocking it: under sigwait alone, a signal that reached
// such a thread took the default action and killed the process without a drain.
#include <condition_variable>
#include <csignal>
#include <memory>
#include <mutex>

#include "common/status.h"

namespace ferry {

// Installs the handlers (SA_RESTART) and blocks the three signals in the calling thread, so the
// threads it starts next inherit the block and never see EINTR from them. Call once, before threads.
Status InstallServeSignals();

class Server;

// What `ferry serve` does with each signal, by phase, on a signal thread of its own (detached: it may
// outlive Serve). Starting: a stop signal exits at once (1), the loads are not waited for. Running:
// SIGHUP reloads the TLS files; the first SIGTERM or SIGINT wakes WaitForStop. Draining: a second one
// exits at once (1). Done: every signal is ignored, so a late one cannot change a clean exit.
class ServeSignalThread {
 public:
  // Starts the thread; call after InstallServeSignals.
  static std::shared_ptr<ServeSignalThread> Start();
  // The server is up: SIGHUP reloads its certificate, and a stop signal drains it.
  void Running(Server* server);
  // Blocks until the first stop signal (one that came during start-up has already exited); returns it.
  int WaitForStop();
  // The drain is over: the server is about to go.
  void Done();

 private:
  enum class Phase { kStarting, kRunning, kDraining, kDone };
  void Loop();

  std::mutex mu_;
  std::condition_variable stop_;
  Phase phase_ = Phase::kStarting;
  Server* server_ = nullptr;
  int stop_signal_ = 0;
};

}  // namespace ferry
