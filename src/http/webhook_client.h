#pragma once
// The outbound HTTP client webhook deliveries go through (jobs/WebhookDeliverer decides what to send
// and where; this only speaks HTTP). It connects to the pinned address it is given, never to a name it
// resolves itself, sends one POST, reads the answer's head and closes: redirects are reported, never
// followed. https verifies the certificate against the system's CAs and the URL's host name. One I/O
// thread of its own, so a slow receiver never holds up a serving thread. Thread-safe.
#include <memory>

#include "jobs/webhook_deliverer.h"

namespace ferry {

class WebhookClient {
 public:
  WebhookClient();
  // Stops the I/O thread; posts still in flight are never answered (their deliveries' leases expire).
  ~WebhookClient();
  WebhookClient(const WebhookClient&) = delete;
  WebhookClient& operator=(const WebhookClient&) = delete;

  void Post(WebhookHttpRequest request, std::function<void(WebhookHttpAnswer)> done);
  // Post as a WebhookPost for the deliverer; the client must outlive it.
  WebhookPost AsPost();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry
