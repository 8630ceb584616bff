#include "keys/api_key.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace ferry {
namespace {

bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

}  // namespace

std::string NewKeySecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();  // no randomness: no key can be safe
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out = "fk_";
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::string HashKeySecret(std::string_view secret) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(secret.data(), secret.size(), digest, &size, EVP_sha256(), nullptr);
  std::string hex;
  hex.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

Status CheckKeyFields(const ApiKey& key) {
  if (key.name.empty() || key.name.size() > 64 || !std::all_of(key.name.begin(), key.name.end(), IsNameChar)) {
    return InvalidArgument(fmt::format("key name '{}' must be 1 to 64 letters, digits, '_', '.' or '-'",
                                       key.name.substr(0, 80)));
  }
  for (const std::string& m : key.models) {
    if (m.empty() || m.size() > 255 || m.front() == '.' || !std::all_of(m.begin(), m.end(), IsNameChar)) {
      return InvalidArgument(fmt::format("models: '{}' is no model name", m.substr(0, 80)));
    }
  }
  if (!std::isfinite(key.rate_per_s) || key.rate_per_s < 0 || key.rate_per_s > 1e6) {
    return InvalidArgument("rate_per_s must be within 0..1000000 (0: no limit)");
  }
  if (key.rate_per_s > 0 && (key.burst < 1 || key.burst > 1'000'000)) {
    return InvalidArgument("burst must be within 1..1000000 with a rate");
  }
  if (!std::isfinite(key.tokens_per_s) || key.tokens_per_s < 0 || key.tokens_per_s > 1e9) {
    return InvalidArgument("tokens_per_s must be within 0..1000000000 (0: no limit)");
  }
  if (key.tokens_per_s > 0 && (key.token_burst < 1 || key.token_burst > 1'000'000'000)) {
    return InvalidArgument("token_burst must be within 1..1000000000 with a token rate");
  }
  return Status::Ok();
}

void TokenBucket::Refill(SteadyTime now) {
  if (now <= last_) return;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(capacity_, tokens_ + seconds * rate_);
  last_ = now;
}

bool TokenBucket::Take(SteadyTime now) {
  Refill(now);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

bool TokenBucket::Available(SteadyTime now) {
  Refill(now);
  return tokens_ >= 1.0;
}

void TokenBucket::Spend(double n, SteadyTime now) {
  Refill(now);
  tokens_ -= n;
}

std::chrono::milliseconds TokenBucket::WaitForNext(SteadyTime now) const {
  TokenBucket copy = *this;
  copy.Refill(now);
  if (copy.tokens_ >= 1.0 || rate_ <= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(static_cast<int64_t>(std::ceil((1.0 - copy.tokens_) / rate_ * 1000.0)));
}

}  // namespace ferry
