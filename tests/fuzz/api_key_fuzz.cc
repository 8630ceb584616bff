// What API keys parse: the admin API's key body (KeyService::CreateJson) and a keys file (YAML,
// KeyRegistry::LoadFile), each on a fresh in-memory registry. The first byte picks one. Neither may
// crash, and a key either is made whole (its secret authorizes it) or refused with a 4xx code.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "api/key_service.h"
#include "fuzz_check.h"

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
  return 0;
}
