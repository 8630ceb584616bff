#include "api/key_service.h"

#include <fmt/format.h>
#include <simdjson.h>

#include "common/json_writer.h"

namespace ferry {
namespace {

void WriteKey(JsonWriter& w, const ApiKey& k, const std::string* secret) {
  w.BeginObject().Key("object").String("api_key").Key("id").String(k.id).Key("name").String(k.name);
  w.Key("prefix").String(k.prefix).Key("source").String(k.source).Key("models").BeginArray();
  for (const std::string& m : k.models) w.String(m);
  w.EndArray().Key("rate_per_s").Double(k.rate_per_s).Key("burst").Int(k.burst);
  w.Key("tokens_per_s").Double(k.tokens_per_s).Key("token_burst").Int(k.token_burst);
  w.Key("created_at").Double(static_cast<double>(k.created_ms) / 1000.0);
  w.Key("revoked").Bool(k.revoked_ms != 0);
  if (secret != nullptr) w.Key("secret").String(*secret);
  w.EndObject();
}

Result<ApiKey> ParseKeyBody(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(body.data(), body.size()).get_object().get(root)) return InvalidArgument("the key must be a JSON object");
  ApiKey key;
  for (simdjson::dom::key_value_pair field : root) {
    const std::string_view name = field.key;
    const simdjson::dom::element value = field.value;
    if (name == "name") {
      std::string_view text;
      if (value.get_string().get(text)) return InvalidArgument("'name' must be a string");
      key.name = std::string(text);
    } else if (name == "models") {
      simdjson::dom::array models;
      if (value.get_array().get(models)) return InvalidArgument("'models' must be a list of model names");
      for (simdjson::dom::element m : models) {
        std::string_view text;
        if (m.get_string().get(text)) return InvalidArgument("'models' must be a list of model names");
        key.models.emplace_back(text);
      }
    } else if (name == "rate_per_s") {
      if (value.get_double().get(key.rate_per_s)) return InvalidArgument("'rate_per_s' must be a number");
    } else if (name == "burst") {
      if (value.get_int64().get(key.burst)) return InvalidArgument("'burst' must be an integer");
    } else if (name == "tokens_per_s") {
      if (value.get_double().get(key.tokens_per_s)) return InvalidArgument("'tokens_per_s' must be a number");
    } else if (name == "token_burst") {
      if (value.get_int64().get(key.token_burst)) return InvalidArgument("'token_burst' must be an integer");
    } else {
      return InvalidArgument(fmt::format("unknown key '{}'", std::string(name).substr(0, 64)));
    }
  }
  if (key.name.empty()) return InvalidArgument("'name' is required");
  return key;
}

}  // namespace

Result<ApiKey> KeyService::Authorize(const std::string* authorization, std::string_view model,
                                     std::chrono::milliseconds* retry_after, bool listing) {
  if (!required_) {
    ApiKey anyone;
    anyone.name = "(none)";
    return anyone;
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization == nullptr || authorization->compare(0, kBearer.size(), kBearer) != 0) {
    return Unauthenticated("this server needs an API key: 'Authorization: Bearer <key>'");
  }
  return registry_->Authorize(std::string_view(*authorization).substr(kBearer.size()), model, retry_after, listing);
}

bool KeyService::IsKey(const std::string* authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization == nullptr || authorization->compare(0, kBearer.size(), kBearer) != 0) return false;
  return registry_->Knows(std::string_view(*authorization).substr(kBearer.size()));
}

Result<std::string> KeyService::CreateJson(std::string_view body) {
  FERRY_ASSIGN_OR_RETURN(ApiKey fields, ParseKeyBody(body));
  FERRY_ASSIGN_OR_RETURN(auto made, registry_->Create(std::move(fields)));
  std::string out;
  JsonWriter w(&out);
  WriteKey(w, made.first, &made.second);
  return out;
}

Result<std::string> KeyService::ListJson() {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const ApiKey& k : registry_->List()) WriteKey(w, k, nullptr);
  w.EndArray().EndObject();
  return out;
}

Result<std::string> KeyService::RevokeJson(const std::string& id) {
  FERRY_RETURN_IF_ERROR(registry_->Revoke(id));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("object").String("api_key").Key("id").String(id).Key("revoked").Bool(true).EndObject();
  return out;
}

}  // namespace ferry
