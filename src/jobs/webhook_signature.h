#pragma once
// Standard Webhooks signing: secrets written "whsec_<base64>", and the `webhook-signature` header
// "v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<body>'>". Thread-safe (pure functions).
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry {

std::string Base64Encode(std::string_view bytes);
// Standard alphabet with padding; kInvalidArgument for anything else.
Result<std::string> Base64Decode(std::string_view text);

// The key bytes of a "whsec_..." secret: 24 to 64 of them, as Standard Webhooks asks (at least 192 bits).
Result<std::string> ParseWebhookSecret(std::string_view secret);

// The value of the `webhook-signature` header for one delivery attempt.
std::string SignWebhook(std::string_view key, std::string_view id, int64_t timestamp_s, std::string_view body);

}  // namespace ferry
