#include "api/admin_service.h"

#include <fmt/format.h>

#include <simdjson.h>

#include <algorithm>
#include <set>

#include "common/json_writer.h"

namespace ferry {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte of `a` is visited whatever matches, so timing tells nothing about the secret's content.
  size_t diff = a.size() ^ b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

std::string AdminService::ServerMetadataJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("name").String("ferry").Key("version").String(FERRY_VERSION).Key("extensions").BeginArray();
  w.String("binary_tensor_data").String("model_configuration").String("parameters").String("model_repository");
  w.EndArray().EndObject();
  return out;
}

Status AdminService::CheckAdmin(const std::string* authorization) const {
  if (options_.admin_key.empty()) {
    return PermissionDenied("this route needs the admin key, and this server has none: start it with --admin-key, "
                            "or call its loopback admin listener (--admin-port)");
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization == nullptr || authorization->compare(0, kBearer.size(), kBearer) != 0) {
    return Unauthenticated("this route needs the admin key: 'Authorization: Bearer <admin key>'");
  }
  if (!ConstantTimeEquals(std::string_view(*authorization).substr(kBearer.size()), options_.admin_key)) {
    return Unauthenticated("wrong admin key");
  }
  return Status::Ok();
}

Result<std::string> AdminService::RepositoryIndexJson(std::string_view request_body,
                                                      const std::vector<std::string>& only_models) const {
  const auto listed = [&](const std::string& model) {
    return only_models.empty() || std::find(only_models.begin(), only_models.end(), model) != only_models.end();
  };
  bool ready_only = false;
  if (request_body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(request_body.data(), request_body.size()).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
      return InvalidArgument("the index request must be a JSON object such as {\"ready\": true}");
    }
    simdjson::dom::element ready;
    if (doc["ready"].get(ready) == simdjson::SUCCESS) {
      if (ready.get(ready_only) != simdjson::SUCCESS) return InvalidArgument("'ready' must be a boolean");
    }
  }
  std::vector<VersionStatus> loaded = manager_->Index();
  std::set<std::string> known;
  for (const VersionStatus& s : loaded) known.insert(s.model);
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  for (const VersionStatus& s : loaded) {
    if ((ready_only && s.state != VersionState::kReady && !s.asleep) || !listed(s.model)) continue;
    w.BeginObject().Key("name").String(s.model);
    if (s.version > 0) w.Key("version").String(std::to_string(s.version));
    w.Key("state").String(VersionStateName(s.state)).Key("reason").String(s.reason).EndObject();
  }
  if (!ready_only) {
    Result<std::vector<RepositoryModel>> on_disk = repository_->Scan();
    if (on_disk.ok()) {
      for (const RepositoryModel& m : *on_disk) {
        if (known.count(m.name) || !listed(m.name)) continue;
        w.BeginObject().Key("name").String(m.name).Key("state").String("UNAVAILABLE").Key("reason");
        w.String(m.config.ok() ? "not loaded" : m.config.status().message()).EndObject();
      }
    }
  }
  w.EndArray();
  return out;
}

Status AdminService::LoadModel(std::string_view name) {
  if (!ModelRepository::IsValidModelName(name)) return InvalidArgument("invalid model name");
  FERRY_RETURN_IF_ERROR(watcher_->LoadModel(name));
  // The load API answers once the model has settled, so that a 200 means it is servable.
  manager_->WaitUntilIdle(std::chrono::minutes(5));
  return manager_->AcquireBlocking(name, std::nullopt, std::nullopt).status();  // a sleeping model wakes
}

Status AdminService::UnloadModel(std::string_view name) {
  if (!ModelRepository::IsValidModelName(name)) return InvalidArgument("invalid model name");
  if (manager_->Servable(name, std::nullopt).code() == StatusCode::kNotFound) {
    return NotFound(fmt::format("model '{}' is not loaded", name));
  }
  watcher_->UnloadModel(name);
  return Status::Ok();
}

}  // namespace ferry
