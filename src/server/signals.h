#pragma once
// The signals `ferry serve` acts on: SIGTERM and SIGINT (drain; a second one exits at once) and SIGHUP
// (reload the TLS files). Handlers write the signal's number to a pipe, which is async-signal-safe, and
// NextSignal reads it on an ordinary thread. Handlers rather than sigwait: a library may start threads
// before main (OpenBLAS does, at load) with every signal unblocked, and the kernel hands a
// process-directed signal to any thread not blocking it: under sigwait alone, a signal that reached
// such a thread took the default action and killed the process without a drain.
#include <csignal>

#include "common/status.h"

namespace ferry {

// Installs the handlers (SA_RESTART) and blocks the three signals in the calling thread, so the
// threads it starts next inherit the block and never see EINTR from them. Call once, before threads.
Status InstallServeSignals();
// Unblocks them in the calling thread again, once its threads are started, so that some thread can
// always take a signal.
void UnblockServeSignals();
// Blocks until one of the signals arrives; returns its number.
int NextSignal();

}  // namespace ferry
