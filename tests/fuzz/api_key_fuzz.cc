// What API keys parse: the admin API's key body (KeyService::CreateJson) and a keys file (YAML,
// KeyRegistry::LoadFile), each on a fresh in-memory registry. The first byte picks one. Neither may
// crash, and a key either is made whole (its secret authorizes it) or refused with a 4xx code.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "api/key_service.h"
#include "fuzz_check.h"

namespace {

// A key with a token rate starts with its whole burst, and spending well past it refuses the next ask.
void CheckTokenRates(ferry::KeyRegistry& registry) {
  for (const ferry::ApiKey& key : registry.List()) {
    if (key.tokens_per_s <= 0) continue;
    fuzz::Check(key.token_burst >= 1 && key.token_burst <= 1'000'000'000, "a token rate has a burst");
    fuzz::Check(registry.AdmitTokens(key.name).ok(), "a new key may generate");
    // Ten seconds of the rate past the burst: still in debt however fast the rate refills.
    registry.ChargeTokens(key.name, key.token_burst + static_cast<int64_t>(key.tokens_per_s * 10) + 1);
    const ferry::Status refused = registry.AdmitTokens(key.name);
    fuzz::Check(refused.code() == ferry::StatusCode::kResourceExhausted && refused.retry_after_s() >= 1,
                "a key in debt waits");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  ferry::Result<std::unique_ptr<ferry::KeyRegistry>> registry = ferry::KeyRegistry::Open(":memory:");
  fuzz::Check(registry.ok(), "an in-memory registry opens");
  if (data[0] % 2 == 0) {
    ferry::KeyService service(registry->get(), /*required=*/true);
    ferry::Result<std::string> made = service.CreateJson(rest);
    if (made.ok()) {
      fuzz::Check((*registry)->List().size() == 1, "a made key is listed");
      CheckTokenRates(**registry);
    } else {
      const ferry::StatusCode c = made.status().code();
      fuzz::Check(c == ferry::StatusCode::kInvalidArgument || c == ferry::StatusCode::kAlreadyExists,
                  "a refused body is the caller's fault");
    }
    return 0;
  }
  static const std::string path = "/tmp/ferry-fuzz-keys-" + std::to_string(getpid()) + ".yaml";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(rest.data(), 1, rest.size(), f);
  std::fclose(f);
  ferry::Status s = (*registry)->LoadFile(path);
  if (!s.ok()) {
    fuzz::Check(s.code() == ferry::StatusCode::kInvalidArgument, "a bad keys file is invalid, nothing else");
    fuzz::Check((*registry)->List().empty(), "nothing of a bad keys file is taken");
  }
  CheckTokenRates(**registry);
  return 0;
}
