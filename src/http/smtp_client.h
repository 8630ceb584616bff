#pragma once
// Alert e-mail through an SMTP relay, with libcurl: smtp:// (STARTTLS when the relay config asks for
// it) or smtps://, optional login (the password from the environment variable the config names).
// Thread-safe: each call is its own connection.
#include <chrono>

#include "usage/alert_mailer.h"

namespace ferry {

// The message as sent (RFC 5322: From, To, Subject, Date, Message-ID, a plain UTF-8 body); exposed for tests.
std::string RenderMail(const AlertMail& mail, int64_t unix_ms);

// Sends one message; kUnavailable for anything the relay or the network refused (to be tried again),
// kInvalidArgument for a message the relay can never take.
Status SendSmtpMail(const AlertMail& mail, const EmailAlertTarget& relay, std::chrono::milliseconds timeout);

}  // namespace ferry
