#include "keys/key_registry.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>

namespace ferry {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS api_keys(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  hash TEXT NOT NULL UNIQUE,
  prefix TEXT NOT NULL,
  models TEXT NOT NULL,
  rate_per_s REAL NOT NULL,
  burst INTEGER NOT NULL,
  tokens_per_s REAL NOT NULL DEFAULT 0,
  token_burst INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  revoked_ms INTEGER NOT NULL DEFAULT 0);
)sql";

std::string JoinModels(const std::vector<std::string>& models) {
  std::string out;
  for (const std::string& m : models) out += (out.empty() ? "" : ",") + m;
  return out;
}

std::vector<std::string> SplitModels(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string NewKeyId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("key_{:016x}", rng());
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) && !std::isupper(static_cast<unsigned char>(c)); });
}

// A key given a rate but no burst may burst as far as one second of its rate.
ApiKey& DefaultBurst(ApiKey& key) {
  if (key.burst == 0 && std::isfinite(key.rate_per_s) && key.rate_per_s > 0 && key.rate_per_s <= 1e6) {
    key.burst = static_cast<int64_t>(std::ceil(key.rate_per_s));
  }
  if (key.token_burst == 0 && std::isfinite(key.tokens_per_s) && key.tokens_per_s > 0 && key.tokens_per_s <= 1e9) {
    key.token_burst = static_cast<int64_t>(std::ceil(key.tokens_per_s));
  }
  return key;
}

Result<ApiKey> FileKey(const YAML::Node& node, size_t index) {
  const std::string where = fmt::format("keys file entry {}", index + 1);
  if (!node.IsMap()) return InvalidArgument(where + ": expected a map");
  ApiKey key;
  key.source = "file";
  for (const auto& field : node) {
    const std::string name = field.first.as<std::string>();
    if (name == "name") {
      key.name = field.second.as<std::string>();
    } else if (name == "sha256") {
      key.hash = field.second.as<std::string>();
    } else if (name == "models") {
      if (!field.second.IsSequence()) return InvalidArgument(where + ": models must be a list");
      for (const auto& m : field.second) key.models.push_back(m.as<std::string>());
    } else if (name == "rate_per_s") {
      key.rate_per_s = field.second.as<double>();
    } else if (name == "burst") {
      key.burst = field.second.as<int64_t>();
    } else if (name == "tokens_per_s") {
      key.tokens_per_s = field.second.as<double>();
    } else if (name == "token_burst") {
      key.token_burst = field.second.as<int64_t>();
    } else {
      return InvalidArgument(fmt::format("{}: unknown key '{}'", where, name.substr(0, 64)));
    }
  }
  if (!IsHex64(key.hash)) return InvalidArgument(where + ": sha256 must be 64 lower-case hex digits");
  FERRY_RETURN_IF_ERROR(CheckKeyFields(DefaultBurst(key)).WithContext(where));
  key.id = "file_" + key.name;
  key.prefix = "(file)";
  return key;
}

}  // namespace

Result<std::unique_ptr<KeyRegistry>> KeyRegistry::Open(const std::filesystem::path& db_path, const Clock* clock,
                                                       const WallClock* wall_clock) {
  std::error_code ec;
  if (db_path.has_parent_path()) std::filesystem::create_directories(db_path.parent_path(), ec);
  std::unique_ptr<KeyRegistry> registry(new KeyRegistry(clock, wall_clock));
  FERRY_ASSIGN_OR_RETURN(registry->db_, SqliteDb::Open(db_path, /*read_only=*/false));
  FERRY_RETURN_IF_ERROR(registry->db_->Exec("PRAGMA journal_mode=WAL"));
  FERRY_RETURN_IF_ERROR(registry->db_->Exec("PRAGMA synchronous=FULL"));
  FERRY_RETURN_IF_ERROR(registry->db_->Exec(kSchema));
  FERRY_RETURN_IF_ERROR(registry->AddMissingColumns());
  FERRY_RETURN_IF_ERROR(registry->LoadStored());
  return registry;
}

// Keys stored before token limits existed get the columns (no token limit).
Status KeyRegistry::AddMissingColumns() {
  FERRY_RETURN_IF_ERROR(db_->AddColumnIfMissing("api_keys", "tokens_per_s", "REAL NOT NULL DEFAULT 0"));
  return db_->AddColumnIfMissing("api_keys", "token_burst", "INTEGER NOT NULL DEFAULT 0");
}

Status KeyRegistry::LoadStored() {
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "SELECT id, name, hash, prefix, models, rate_per_s, burst, created_ms, revoked_ms, tokens_per_s, token_burst "
      "FROM api_keys"));
  std::lock_guard lock(mu_);
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ApiKey key;
    key.id = st.Text(0);
    key.name = st.Text(1);
    key.hash = st.Text(2);
    key.prefix = st.Text(3);
    key.models = SplitModels(st.Text(4));
    key.rate_per_s = st.Double(5);
    key.burst = st.Int(6);
    key.created_ms = st.Int(7);
    key.revoked_ms = st.Int(8);
    key.tokens_per_s = st.Double(9);
    key.token_burst = st.Int(10);
    AddLocked(key);
  }
  return Status::Ok();
}

void KeyRegistry::AddLocked(const ApiKey& key) {
  by_id_[key.id] = key;
  if (key.revoked_ms != 0) return;
  by_hash_.insert_or_assign(key.hash, Entry{key, TokenBucket(key.rate_per_s, key.burst, clock_->Now())});
  if (key.tokens_per_s > 0) {
    token_buckets_.insert_or_assign(key.name, TokenBucket(key.tokens_per_s, key.token_burst, clock_->Now()));
  }
}

Status KeyRegistry::LoadFile(const std::filesystem::path& path) {
  std::vector<ApiKey> keys;
  try {
    const YAML::Node root = YAML::LoadFile(path.string());
    if (!root.IsSequence()) return InvalidArgument(fmt::format("keys file '{}': expected a list of keys", path.string()));
    for (size_t i = 0; i < root.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(ApiKey key, FileKey(root[i], i));
      keys.push_back(std::move(key));
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("keys file '{}': {}", path.string(), e.what()));
  }
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    const ApiKey& key = keys[i];
    const auto same = [&](const ApiKey& other) { return other.name == key.name || other.hash == key.hash; };
    const bool taken = std::any_of(by_id_.begin(), by_id_.end(), [&](const auto& kv) { return same(kv.second); }) ||
                       std::any_of(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(i), same);
    if (taken) return InvalidArgument(fmt::format("keys file: key '{}' repeats a name or secret", key.name));
  }
  for (const ApiKey& key : keys) AddLocked(key);
  return Status::Ok();
}

Result<std::pair<ApiKey, std::string>> KeyRegistry::Create(ApiKey key) {
  FERRY_RETURN_IF_ERROR(CheckKeyFields(DefaultBurst(key)));
  const std::string secret = NewKeySecret();
  key.id = NewKeyId();
  key.hash = HashKeySecret(secret);
  key.prefix = secret.substr(0, 10);
  key.created_ms = wall_clock_->NowUnixMs();
  key.revoked_ms = 0;
  key.source = "api";
  std::lock_guard lock(mu_);
  for (const auto& [id, other] : by_id_) {
    if (other.name == key.name) return Status(StatusCode::kAlreadyExists, fmt::format("a key named '{}' exists", key.name));
  }
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare(
      "INSERT INTO api_keys(id, name, hash, prefix, models, rate_per_s, burst, created_ms, tokens_per_s, token_burst) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  st.BindText(1, key.id).BindText(2, key.name).BindText(3, key.hash).BindText(4, key.prefix);
  st.BindText(5, JoinModels(key.models)).BindDouble(6, key.rate_per_s).Bind(7, key.burst);
  st.Bind(8, key.created_ms).BindDouble(9, key.tokens_per_s).Bind(10, key.token_burst);
  FERRY_RETURN_IF_ERROR(st.Run());
  AddLocked(key);
  return std::pair<ApiKey, std::string>(key, secret);
}

Status KeyRegistry::Revoke(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return NotFound(fmt::format("no key '{}'", id.substr(0, 80)));
  if (it->second.source == "file") return FailedPrecondition("a key from the keys file is revoked by editing the file");
  if (it->second.revoked_ms != 0) return Status::Ok();
  const int64_t now = wall_clock_->NowUnixMs();
  FERRY_ASSIGN_OR_RETURN(SqliteStatement st, db_->Prepare("UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1"));
  st.BindText(1, id).Bind(2, now);
  FERRY_RETURN_IF_ERROR(st.Run());
  it->second.revoked_ms = now;
  by_hash_.erase(it->second.hash);
  token_buckets_.erase(it->second.name);
  return Status::Ok();
}

std::vector<ApiKey> KeyRegistry::List() const {
  std::lock_guard lock(mu_);
  std::vector<ApiKey> out;
  for (const auto& [id, key] : by_id_) out.push_back(key);
  return out;
}

bool KeyRegistry::Knows(std::string_view secret) const {
  const std::string hash = HashKeySecret(secret);
  std::lock_guard lock(mu_);
  return by_hash_.count(hash) > 0;
}

Result<ApiKey> KeyRegistry::Authorize(std::string_view secret, std::string_view model,
                                      std::chrono::milliseconds* retry_after, bool listing) {
  const std::string hash = HashKeySecret(secret);
  std::lock_guard lock(mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return Unauthenticated("unknown or revoked API key");
  Entry& e = it->second;
  if (!e.key.models.empty() && !listing) {
    if (model.empty()) {
      return PermissionDenied(fmt::format("key '{}' may use only {}; this route names no model", e.key.name,
                                          JoinModels(e.key.models)));
    }
    if (std::find(e.key.models.begin(), e.key.models.end(), model) == e.key.models.end()) {
      return PermissionDenied(fmt::format("key '{}' may not use model '{}'", e.key.name, std::string(model).substr(0, 80)));
    }
  }
  if (e.key.rate_per_s > 0 && !e.bucket.Take(clock_->Now())) {
    if (retry_after != nullptr) *retry_after = e.bucket.WaitForNext(clock_->Now());
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("key '{}' is over its rate of {} requests per second", e.key.name, e.key.rate_per_s));
  }
  return e.key;
}

Status KeyRegistry::AdmitTokens(const std::string& name, std::chrono::milliseconds* retry_after) {
  std::lock_guard lock(mu_);
  auto it = token_buckets_.find(name);
  if (it == token_buckets_.end() || it->second.Available(clock_->Now())) return Status::Ok();
  const std::chrono::milliseconds wait = it->second.WaitForNext(clock_->Now());
  if (retry_after != nullptr) *retry_after = wait;
  return Status(StatusCode::kResourceExhausted,
                fmt::format("key '{}' is over its rate of {} tokens per second", name, it->second.rate()))
      .WithRetryAfter(std::max<int64_t>(1, (wait.count() + 999) / 1000));
}

void KeyRegistry::ChargeTokens(const std::string& name, int64_t tokens) {
  if (tokens <= 0) return;
  std::lock_guard lock(mu_);
  auto it = token_buckets_.find(name);
  if (it != token_buckets_.end()) it->second.Spend(static_cast<double>(tokens), clock_->Now());
}

}  // namespace ferry
