#pragma once
// The one place where a Status becomes an HTTP status code.
#include "common/status.h"

namespace ferry {

int HttpStatusFor(StatusCode code);
// Seconds a client should wait before retrying, for statuses that invite a retry (503/429); 0 otherwise.
int RetryAfterSecondsFor(StatusCode code);

}  // namespace ferry
