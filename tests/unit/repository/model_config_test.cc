#include "repository/model_config.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <limits>
#include <string>

namespace ferry {
namespace {

Result<ModelConfig> Parse(std::string_view yaml, std::string_view folder = "cnn") {
  return ParseModelConfig(yaml, folder);
}

// Parsing fails with kInvalidArgument and a message containing `needle`.
void ExpectError(std::string_view yaml, std::string_view needle, std::string_view folder = "cnn") {
  Result<ModelConfig> r = Parse(yaml, folder);
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "' for:\n" << yaml;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "message: " << r.status().message() << "\nexpected to contain: " << needle;
}

constexpr char kFull[] = R"(
name: cnn
backend: opencv_dnn
platform: onnxruntime_onnx
model_filename: net.onnx
max_batch_size: 8
inputs:
  - name: input
    datatype: FP32
    dims: [3, 224, -1]
  - name: mask
    datatype: UINT8
    dims: []
outputs:
  - name: probabilities
    datatype: FP16
    dims: [10]
version_policy: {latest: 2}
dynamic_batching:
  max_queue_delay_us: 500
  preferred_batch_sizes: [4, 8]
instance_group: {count: 3, threads: 2}
max_queue_size: 128
default_timeout_ms: 250
parameters: {target: cpu, fp16: true, layers: 12}
)";

TEST(ParseModelConfigTest, ParsesEveryField) {
  Result<ModelConfig> r = Parse(kFull);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.name, "cnn");
  EXPECT_EQ(c.backend, "opencv_dnn");
  EXPECT_EQ(c.platform, "onnxruntime_onnx");
  EXPECT_EQ(c.model_filename, "net.onnx");
  EXPECT_EQ(c.max_batch_size, 8);
  ASSERT_EQ(c.inputs.size(), 2u);
  EXPECT_EQ(c.inputs[0].name, "input");
  EXPECT_EQ(c.inputs[0].dtype, DataType::kFp32);
  EXPECT_EQ(c.inputs[0].dims, (Shape{3, 224, -1}));
  EXPECT_EQ(c.inputs[1].name, "mask");
  EXPECT_EQ(c.inputs[1].dtype, DataType::kUint8);
  EXPECT_TRUE(c.inputs[1].dims.empty());
  ASSERT_EQ(c.outputs.size(), 1u);
  EXPECT_EQ(c.outputs[0].name, "probabilities");
  EXPECT_EQ(c.outputs[0].dtype, DataType::kFp16);
  EXPECT_EQ(c.outputs[0].dims, (Shape{10}));
  EXPECT_EQ(c.version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(c.version_policy.latest_count, 2);
  EXPECT_TRUE(c.dynamic_batching.enabled);
  EXPECT_EQ(c.dynamic_batching.max_queue_delay_us, 500);
  EXPECT_EQ(c.dynamic_batching.preferred_batch_sizes, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(c.instance_count, 3);
  EXPECT_EQ(c.threads_per_instance, 2);
  EXPECT_EQ(c.max_queue_size, 128);
  EXPECT_EQ(c.default_timeout_us, 250'000);
  using Option = std::pair<std::string, std::string>;
  EXPECT_EQ(c.backend_options,
            (std::vector<Option>{{"target", "cpu"}, {"fp16", "true"}, {"layers", "12"}}));
}

TEST(ParseModelConfigTest, DefaultsForAnEmptyFile) {
  for (std::string_view yaml : {"", "# only a comment\n", "~\n", "{}"}) {
    Result<ModelConfig> r = Parse(yaml, "resnet");
    ASSERT_TRUE(r.ok()) << "'" << yaml << "': " << r.status().ToString();
    const ModelConfig& c = *r;
    EXPECT_EQ(c.name, "resnet");  // taken from the folder
    EXPECT_EQ(c.backend, "");  // the server's default ONNX backend
    EXPECT_EQ(c.platform, "onnx");
    EXPECT_EQ(c.model_filename, "model.onnx");
    EXPECT_EQ(c.max_batch_size, 0);
    EXPECT_TRUE(c.inputs.empty());
    EXPECT_TRUE(c.outputs.empty());
    EXPECT_EQ(c.version_policy.kind, VersionPolicy::Kind::kLatest);
    EXPECT_EQ(c.version_policy.latest_count, 1);
    EXPECT_FALSE(c.dynamic_batching.enabled);
    EXPECT_EQ(c.instance_count, 1);
    EXPECT_EQ(c.threads_per_instance, 0);
    EXPECT_EQ(c.max_queue_size, 64);
    EXPECT_EQ(c.default_timeout_us, 0);
    EXPECT_TRUE(c.backend_options.empty());
  }
}

TEST(ParseModelConfigTest, NameMustMatchFolder) {
  EXPECT_TRUE(Parse("name: cnn\n", "cnn").ok());
  ExpectError("name: other\n", "name 'other' does not match the model folder 'cnn'");
  // Without a folder to compare with, the config's own name is used...
  Result<ModelConfig> r = Parse("name: solo\n", "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name, "solo");
  // ...and a config with neither has no name.
  ExpectError("max_batch_size: 1\n", "name is empty", "");
  ExpectError("name: ''\n", "name is empty", "");
  ExpectError("name: .hidden\n", "not a valid model name", "");
  ExpectError("name: a/b\n", "not a valid model name", "");
}

TEST(ParseModelConfigTest, EveryDataTypeName) {
  const std::pair<const char*, DataType> kTypes[] = {
      {"BOOL", DataType::kBool},     {"UINT8", DataType::kUint8},   {"UINT16", DataType::kUint16},
      {"UINT32", DataType::kUint32}, {"UINT64", DataType::kUint64}, {"INT8", DataType::kInt8},
      {"INT16", DataType::kInt16},   {"INT32", DataType::kInt32},   {"INT64", DataType::kInt64},
      {"FP16", DataType::kFp16},     {"FP32", DataType::kFp32},     {"FP64", DataType::kFp64},
      {"BF16", DataType::kBf16},     {"BYTES", DataType::kBytes},
  };
  for (const auto& [name, type] : kTypes) {
    Result<ModelConfig> r =
        Parse(std::string("inputs: [{name: x, datatype: ") + name + ", dims: [1]}]\n");
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    EXPECT_EQ(r->inputs[0].dtype, type) << name;
  }
  // Triton's spelling, as found in a config.pbtxt.
  Result<ModelConfig> r = Parse("inputs: [{name: x, datatype: TYPE_STRING, dims: [1]}]\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->inputs[0].dtype, DataType::kBytes);
  ExpectError("inputs: [{name: x, datatype: FLOAT, dims: [1]}]\n",
              "inputs[0].datatype: unknown datatype 'FLOAT' (line 1); expected one of: BOOL");
}

TEST(ParseModelConfigTest, TensorErrors) {
  ExpectError("inputs:\n  - datatype: FP32\n    dims: [1]\n", "inputs[0]: missing required key 'name'");
  ExpectError("inputs:\n  - name: x\n    dims: [1]\n", "inputs[0]: missing required key 'datatype'");
  ExpectError("outputs:\n  - name: x\n    datatype: FP32\n", "outputs[0]: missing required key 'dims'");
  ExpectError("inputs: [{name: '', datatype: FP32, dims: [1]}]\n", "inputs[0]: name is empty");
  ExpectError("inputs: [{name: x, datatype: FP32, dims: [1]}, {name: x, datatype: FP32, dims: [2]}]\n",
              "inputs[1]: duplicate name 'x'");
  ExpectError("outputs: [{name: y, datatype: FP32, dims: [1, -2]}]\n",
              "outputs[0] 'y': dims[1] is -2; dims must be >= -1");
  ExpectError("inputs: {name: x}\n", "inputs: expected a list of tensors (line 1)");
  ExpectError("inputs: [x]\n", "inputs[0]: expected a mapping");
  ExpectError("inputs: [{name: x, datatype: FP32, dims: 3}]\n", "inputs[0].dims: expected a list of integers");
  ExpectError("inputs: [{name: x, datatype: FP32, dims: [3, abc]}]\n",
              "inputs[0].dims[1]: expected an integer, got 'abc'");
  ExpectError("inputs: [{name: x, datatype: FP32, dims: [1.5]}]\n", "expected an integer, got '1.5'");
  ExpectError("inputs: [{name: x, datatype: FP32, dims: [0x10]}]\n", "expected an integer, got '0x10'");
  ExpectError("inputs: [{name: [x], datatype: FP32, dims: [1]}]\n", "inputs[0].name: expected a string");
  // Input and output namespaces are separate (Triton allows the same name in both).
  EXPECT_TRUE(Parse("inputs: [{name: x, datatype: FP32, dims: [1]}]\n"
                    "outputs: [{name: x, datatype: FP32, dims: [1]}]\n")
                  .ok());
}

TEST(ParseModelConfigTest, WrongTypes) {
  ExpectError("- a\n- b\n", "the config: expected a mapping");
  ExpectError("just a string\n", "the config: expected a mapping");
  ExpectError("max_batch_size: abc\n", "max_batch_size: expected an integer, got 'abc' (line 1)");
  ExpectError("max_batch_size: 99999999999999999999\n", "max_batch_size: '99999999999999999999' is out of range");
  ExpectError("max_batch_size: [1]\n", "max_batch_size: expected an integer");
  ExpectError("backend: {a: 1}\n", "backend: expected a string (line 1)");
  ExpectError("backend:\n", "backend: expected a string");  // null, not the string "null"
  ExpectError("name:\n", "name: expected a string");
  ExpectError("max_queue_size: true\n", "max_queue_size: expected an integer, got 'true'");
  ExpectError("? [a, b]\n: 1\n", "the config: keys must be plain strings");
}

TEST(ParseModelConfigTest, ScalarsAndBounds) {
  ExpectError("max_batch_size: -1\n", "max_batch_size must be >= 0, got -1");
  ExpectError("platform: ''\n", "platform must not be empty");
  for (std::string_view bad : {"'../model.onnx'", "'a/b.onnx'", "'a\\b.onnx'", "''", "'.'", "'..'"}) {
    ExpectError(std::string("model_filename: ") + std::string(bad) + "\n", "must be a plain file name");
  }
  ExpectError("instance_group: {count: 0}\n", "instance_group.count must be >= 1, got 0");
  ExpectError("instance_group: {threads: -1}\n", "instance_group.threads must be >= 0, got -1");
  ExpectError("instance_group: 2\n", "instance_group: expected a mapping");
  ExpectError("instance_group: {min: 2}\n", "autoscaling needs max");
  ExpectError("instance_group: {min: 3, max: 2}\n", "need 1 <= min <= count <= max <= 64");
  ExpectError("instance_group: {count: 5, min: 1, max: 4}\n", "need 1 <= min <= count <= max <= 64");
  ExpectError("instance_group: {max: 65}\n", "need 1 <= min <= count <= max <= 64");
  ExpectError("instance_group: {cooldown_s: 3}\n", "needs autoscaling");
  ExpectError("instance_group: {max: 2, scale_up_after_s: -1}\n", "0 to 86400 seconds");
  ExpectError("max_queue_size: 0\n", "max_queue_size must be >= 1, got 0");
  ExpectError("default_timeout_ms: -5\n", "default_timeout_ms must be within 0..");
  ExpectError("default_timeout_ms: 9223372036854776\n", "default_timeout_ms must be within 0..");
  Result<ModelConfig> r = Parse("default_timeout_ms: 9223372036854775\ninstance_group: {threads: 0}\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->default_timeout_us, 9223372036854775000);
}

TEST(ParseModelConfigTest, VersionPolicyForms) {
  struct Case {
    const char* yaml;
    VersionPolicy::Kind kind;
    int64_t latest;
    std::vector<int64_t> versions;
  };
  const Case kCases[] = {
      {"version_policy: {latest: 3}\n", VersionPolicy::Kind::kLatest, 3, {}},
      {"version_policy: {latest: {num_versions: 2}}\n", VersionPolicy::Kind::kLatest, 2, {}},
      {"version_policy: {all: {}}\n", VersionPolicy::Kind::kAll, 1, {}},
      {"version_policy: {all: true}\n", VersionPolicy::Kind::kAll, 1, {}},
      {"version_policy:\n  all:\n", VersionPolicy::Kind::kAll, 1, {}},
      {"version_policy: {specific: [1, 3]}\n", VersionPolicy::Kind::kSpecific, 1, {1, 3}},
      {"version_policy: {specific: {versions: [7]}}\n", VersionPolicy::Kind::kSpecific, 1, {7}},
  };
  for (const Case& c : kCases) {
    Result<ModelConfig> r = Parse(c.yaml);
    ASSERT_TRUE(r.ok()) << c.yaml << r.status().ToString();
    EXPECT_EQ(r->version_policy.kind, c.kind) << c.yaml;
    EXPECT_EQ(r->version_policy.latest_count, c.latest) << c.yaml;
    EXPECT_EQ(r->version_policy.versions, c.versions) << c.yaml;
  }
}

TEST(ParseModelConfigTest, VersionPolicyErrors) {
  ExpectError("version_policy: {latest: 0}\n", "version_policy.latest must be >= 1, got 0");
  ExpectError("version_policy: {latest: 1, all: {}}\n", "version_policy: expected exactly one of latest, all");
  ExpectError("version_policy: {}\n", "version_policy: expected exactly one of latest, all, specific");
  ExpectError("version_policy: latest\n", "version_policy: expected a mapping");
  ExpectError("version_policy: {newest: 1}\n", "unknown key 'newest' in version_policy (line 1)");
  ExpectError("version_policy: {all: false}\n", "'all: false' is not a policy");
  ExpectError("version_policy: {all: {x: 1}}\n", "unknown key 'x' in version_policy.all (line 1); expected no keys");
  ExpectError("version_policy: {specific: []}\n", "version_policy.specific must list at least one version");
  ExpectError("version_policy: {specific: [1, 1]}\n", "version 1 is listed twice");
  ExpectError("version_policy: {specific: [0]}\n", "version 0 is not >= 1");
  ExpectError("version_policy: {specific: 3}\n", "version_policy.specific: expected a list of integers");
  ExpectError("version_policy: {latest: {count: 1}}\n", "unknown key 'count' in version_policy.latest");
  ExpectError("version_policy: {latest: {}}\n", "version_policy.latest: missing required key 'num_versions'");
  ExpectError("version_policy: {specific: {}}\n", "version_policy.specific: missing required key 'versions'");
}

TEST(ParseModelConfigTest, DynamicBatchingPresenceEnablesIt) {
  EXPECT_FALSE(Parse("max_batch_size: 4\n")->dynamic_batching.enabled);
  for (std::string_view yaml : {"dynamic_batching: {}\n", "dynamic_batching:\n", "dynamic_batching: true\n"}) {
    Result<ModelConfig> r = Parse(std::string("max_batch_size: 4\n") + std::string(yaml));
    ASSERT_TRUE(r.ok()) << yaml << r.status().ToString();
    EXPECT_TRUE(r->dynamic_batching.enabled) << yaml;
    EXPECT_EQ(r->dynamic_batching.max_queue_delay_us, 0);
    EXPECT_TRUE(r->dynamic_batching.preferred_batch_sizes.empty());
  }
  Result<ModelConfig> off = Parse("dynamic_batching: false\n");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_FALSE(off->dynamic_batching.enabled);
}

TEST(ParseModelConfigTest, DynamicBatchingErrors) {
  ExpectError("dynamic_batching: {}\n", "dynamic_batching requires max_batch_size > 0");
  ExpectError("max_batch_size: 4\ndynamic_batching: {preferred_batch_sizes: [8]}\n",
              "preferred_batch_sizes: 8 is outside 1..max_batch_size (4)");
  ExpectError("max_batch_size: 4\ndynamic_batching: {preferred_batch_sizes: [0]}\n", "0 is outside 1..");
  ExpectError("max_batch_size: 4\ndynamic_batching: {preferred_batch_sizes: [2, 2]}\n", "2 is listed twice");
  ExpectError("max_batch_size: 4\ndynamic_batching: {max_queue_delay_us: -1}\n",
              "max_queue_delay_us must be >= 0, got -1");
  ExpectError("max_batch_size: 4\ndynamic_batching: {max_queue_delay: 5}\n",
              "unknown key 'max_queue_delay' in dynamic_batching (line 2)");
  ExpectError("max_batch_size: 4\ndynamic_batching: [1]\n", "dynamic_batching: expected a mapping");
  ExpectError("max_batch_size: 4\ndynamic_batching: maybe\n", "dynamic_batching: expected true or false");
}

TEST(ParseModelConfigTest, Parameters) {
  ExpectError("parameters: {a: [1]}\n", "parameters.a: expected a string");
  ExpectError("parameters: {a: }\n", "parameters.a: expected a string");
  ExpectError("parameters: [a]\n", "parameters: expected a mapping");
  ExpectError("parameters: {'': x}\n", "parameters: a key is empty");
  ExpectError("parameters:\n  a: 1\n  a: 2\n", "duplicate key 'a' in parameters (line 3)");
}

TEST(ParseModelConfigTest, UnknownKeysAreNamed) {
  ExpectError("name: cnn\nmax_batch: 8\n", "unknown key 'max_batch' in the config (line 2); expected one of: name,");
  ExpectError("inputs:\n  - name: x\n    datatype: FP32\n    shape: [1]\n",
              "unknown key 'shape' in inputs[0] (line 4)");
  ExpectError("instance_group: {count: 1, kind: KIND_GPU}\n", "unknown key 'kind' in instance_group");
  ExpectError("outputs: [{name: y, datatype: FP32, dims: [1], format: NCHW}]\n",
              "unknown key 'format' in outputs[0]");
}

TEST(ParseModelConfigTest, DuplicateKeysAreErrors) {
  ExpectError("max_batch_size: 1\nmax_batch_size: 2\n", "duplicate key 'max_batch_size' in the config (line 2)");
}

TEST(ParseModelConfigTest, YamlSyntaxErrorsCarryTheLine) {
  ExpectError("name: cnn\ninputs: [1, 2\n", "invalid YAML at line");
  ExpectError("name: cnn\nbackend: a\n  platform: b\n", "invalid YAML at line 3");
  ExpectError("name: cnn\n- item\n", "invalid YAML at line 2, column 1: end of map not found");
  ExpectError("inputs: {a: 1\n", "invalid YAML at line 2");
  ExpectError("a: *undefined_anchor\n", "invalid YAML at line 1");
  ExpectError("name: cnn\n\tx: 1\n", "invalid YAML at line 2, column 1: illegal tab");
}

TEST(ParseModelConfigTest, HostileInputDoesNotThrow) {
  // Deep nesting: yaml-cpp's depth guard throws; it must come back as a Status.
  std::string deep(100'000, '[');
  Result<ModelConfig> r = Parse(deep);
  EXPECT_FALSE(r.ok());
  // Whatever yaml-cpp makes of a NUL byte, the answer is a Result, not an exception.
  const std::string nul_inside("name: cnn\n\0junk: 1\n", 20);
  EXPECT_NO_THROW({ Result<ModelConfig> ignored = Parse(nul_inside); });
}

TEST(ValidateModelConfigTest, DirectChecks) {
  ModelConfig c;
  c.name = "m";
  EXPECT_TRUE(ValidateModelConfig(c).ok());
  c.backend_options = {{"a", "1"}, {"a", "2"}};
  EXPECT_EQ(ValidateModelConfig(c).message(), "parameters: duplicate key 'a'");
  c.backend_options.clear();
  c.version_policy.kind = static_cast<VersionPolicy::Kind>(42);
  EXPECT_EQ(ValidateModelConfig(c).message(), "version_policy: unknown policy kind");
  c.version_policy = {};
  c.default_timeout_us = -1;
  EXPECT_EQ(ValidateModelConfig(c).code(), StatusCode::kInvalidArgument);
  c.default_timeout_us = 0;
  c.name = std::string(256, 'a');
  EXPECT_FALSE(ValidateModelConfig(c).ok());
  c.name = std::string(255, 'a');
  EXPECT_TRUE(ValidateModelConfig(c).ok());
}

TEST(FullShapeTest, PrependsBatchOnlyForBatchedModels) {
  ModelConfig c;
  TensorSpec spec{"x", DataType::kFp32, {3, 224, 224}};
  EXPECT_EQ(FullShape(c, spec, 4), (Shape{3, 224, 224}));
  EXPECT_EQ(FullShape(c, spec, std::nullopt), (Shape{3, 224, 224}));
  c.max_batch_size = 8;
  EXPECT_EQ(FullShape(c, spec, 4), (Shape{4, 3, 224, 224}));
  EXPECT_EQ(FullShape(c, spec, std::nullopt), (Shape{-1, 3, 224, 224}));
}

// ---- Triton JSON -----------------------------------------------------------------------------------

std::vector<int64_t> Ints(simdjson::dom::array a) {
  std::vector<int64_t> out;
  for (simdjson::dom::element e : a) out.push_back(int64_t(e));
  return out;
}

TEST(ModelConfigToTritonJsonTest, FullConfig) {
  Result<ModelConfig> r = Parse(kFull);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string json = ModelConfigToTritonJson(*r);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::string_view(doc["name"]), "cnn");
  EXPECT_EQ(std::string_view(doc["platform"]), "onnxruntime_onnx");
  EXPECT_EQ(std::string_view(doc["backend"]), "opencv_dnn");
  EXPECT_EQ(int64_t(doc["max_batch_size"]), 8);
  EXPECT_TRUE(doc["max_batch_size"].is_int64());  // a number, as RapidJSON in perf_analyzer expects

  simdjson::dom::array inputs = doc["input"];
  ASSERT_EQ(inputs.size(), 2u);
  EXPECT_EQ(std::string_view(inputs.at(0)["name"]), "input");
  EXPECT_EQ(std::string_view(inputs.at(0)["data_type"]), "TYPE_FP32");
  EXPECT_EQ(Ints(inputs.at(0)["dims"]), (std::vector<int64_t>{3, 224, -1}));
  EXPECT_TRUE(inputs.at(0)["dims"].at(0).is_int64());
  EXPECT_EQ(std::string_view(inputs.at(1)["data_type"]), "TYPE_UINT8");
  EXPECT_TRUE(Ints(inputs.at(1)["dims"]).empty());
  simdjson::dom::array outputs = doc["output"];
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(std::string_view(outputs.at(0)["name"]), "probabilities");
  EXPECT_EQ(std::string_view(outputs.at(0)["data_type"]), "TYPE_FP16");
  EXPECT_EQ(Ints(outputs.at(0)["dims"]), (std::vector<int64_t>{10}));

  EXPECT_EQ(int64_t(doc["version_policy"]["latest"]["num_versions"]), 2);
  EXPECT_EQ(Ints(doc["dynamic_batching"]["preferred_batch_size"]), (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(int64_t(doc["dynamic_batching"]["max_queue_delay_microseconds"]), 500);
  simdjson::dom::array groups = doc["instance_group"];
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(int64_t(groups.at(0)["count"]), 3);
  EXPECT_EQ(std::string_view(groups.at(0)["kind"]), "KIND_CPU");
  EXPECT_EQ(std::string_view(doc["default_model_filename"]), "net.onnx");
  EXPECT_EQ(std::string_view(doc["parameters"]["target"]["string_value"]), "cpu");
  EXPECT_EQ(std::string_view(doc["parameters"]["layers"]["string_value"]), "12");
}

TEST(ModelConfigToTritonJsonTest, MinimalConfigAndPolicies) {
  ModelConfig c;
  c.name = "m";
  c.inputs.push_back({"text", DataType::kBytes, {-1}});
  std::string json = ModelConfigToTritonJson(c);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(int64_t(doc["max_batch_size"]), 0);
  EXPECT_EQ(std::string_view(doc["input"].at(0)["data_type"]), "TYPE_STRING");
  EXPECT_EQ(simdjson::dom::array(doc["output"]).size(), 0u);
  // perf_analyzer chooses its scheduler by the key's presence, so a disabled batcher has none.
  EXPECT_EQ(doc["dynamic_batching"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(doc["parameters"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_NE(json.find(R"("version_policy":{"latest":{"num_versions":1}})"), std::string::npos) << json;

  c.version_policy.kind = VersionPolicy::Kind::kAll;
  json = ModelConfigToTritonJson(c);
  EXPECT_NE(json.find(R"("version_policy":{"all":{}})"), std::string::npos) << json;
  c.version_policy = {VersionPolicy::Kind::kSpecific, 1, {1, 3}};
  json = ModelConfigToTritonJson(c);
  EXPECT_NE(json.find(R"("version_policy":{"specific":{"versions":[1,3]}})"), std::string::npos) << json;

  c.max_batch_size = 4;
  c.dynamic_batching.enabled = true;
  json = ModelConfigToTritonJson(c);
  EXPECT_NE(json.find(R"("dynamic_batching":{"preferred_batch_size":[],"max_queue_delay_microseconds":0})"),
            std::string::npos)
      << json;
}

TEST(ModelConfigToTritonJsonTest, EscapesNames) {
  ModelConfig c;
  c.name = "m";
  c.inputs.push_back({"we\"ird\\name\n", DataType::kFp32, {1}});
  c.backend_options = {{"k\"", "v\x01"}};
  const std::string json = ModelConfigToTritonJson(c);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::string_view(doc["input"].at(0)["name"]), "we\"ird\\name\n");
  EXPECT_EQ(std::string_view(doc["parameters"]["k\""]["string_value"]), "v\x01");
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

TEST(ParseModelConfigTest, HybridBlocks) {
  Result<ModelConfig> r = ParseModelConfig(
      "precomputed: {table: user_recs, max_age_s: 60, any_version: true, write_back: true}\n"
      "response_cache: {enable: true}\n", "cnn");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->precomputed.has_value());
  EXPECT_EQ(r->precomputed->table, "user_recs");
  EXPECT_EQ(r->precomputed->max_age_s, 60);
  EXPECT_TRUE(r->precomputed->any_version);
  EXPECT_TRUE(r->precomputed->write_back);
  EXPECT_TRUE(r->response_cache);
  Result<ModelConfig> plain = ParseModelConfig("response_cache: true\n", "cnn");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->response_cache);
  EXPECT_FALSE(plain->precomputed.has_value());
  EXPECT_FALSE(ParseModelConfig("", "cnn")->response_cache);
}

TEST(ParseModelConfigTest, HybridBlockErrors) {
  ExpectError("precomputed: {max_age_s: 5}\n", "table");
  ExpectError("precomputed: {table: 'a b'}\n", "precomputed.table");
  ExpectError("precomputed: {table: t, max_age_s: -1}\n", "max_age_s must be within");
  ExpectError("precomputed: {table: t, ttl: 5}\n", "ttl");
  ExpectError("response_cache: maybe\n", "response_cache");
  ExpectError("response_cache: {on: true}\n", "on");
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

TEST(ParseModelConfigTest, ScaleToZeroFields) {
  Result<ModelConfig> r = ParseModelConfig("idle_unload_s: 300\ncold_start_timeout_s: 2.5\n", "cnn");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->idle_unload_s, 300.0);
  EXPECT_EQ(r->cold_start_timeout_s, 2.5);
  Result<ModelConfig> never = ParseModelConfig("idle_unload_s: 0\n", "cnn");
  ASSERT_TRUE(never.ok());
  EXPECT_EQ(never->idle_unload_s, 0.0);
  EXPECT_FALSE(never->cold_start_timeout_s.has_value());
  EXPECT_FALSE(ParseModelConfig("", "cnn")->idle_unload_s.has_value());
}

TEST(ParseModelConfigTest, ScaleToZeroErrors) {
  ExpectError("idle_unload_s: -1\n", "idle_unload_s must be 0 (never) or more");
  ExpectError("idle_unload_s: soon\n", "idle_unload_s");
  ExpectError("idle_unload_s: 1e12\n", "up to one year");
  ExpectError("cold_start_timeout_s: 0\n", "cold_start_timeout_s must be more than 0");
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

TEST(ParseModelConfigTest, MaxQueueWait) {
  Result<ModelConfig> r = ParseModelConfig("max_queue_wait_ms: 50\n", "cnn");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->max_queue_wait_us, 50'000);
  EXPECT_EQ(ParseModelConfig("", "cnn")->max_queue_wait_us, 0);
  ExpectError("max_queue_wait_ms: -5\n", "max_queue_wait_ms must be within");
  ExpectError("max_queue_wait_ms: 1.5\n", "max_queue_wait_ms");
}

TEST(ParseModelConfigTest, MaxConcurrentRequests) {
  Result<ModelConfig> r = ParseModelConfig("max_concurrent_requests: 8\n", "cnn");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->max_concurrent_requests, 8);
  EXPECT_EQ(ParseModelConfig("", "cnn")->max_concurrent_requests, 0);
  ExpectError("max_concurrent_requests: -1\n", "max_concurrent_requests must be within");
  ExpectError("max_concurrent_requests: 2000000\n", "max_concurrent_requests must be within");
  ExpectError("max_concurrent_requests: many\n", "max_concurrent_requests");
}

TEST(ParseModelConfigTest, AutoscaledInstanceGroupsStartAtTheirMinimum) {
  Result<ModelConfig> r = Parse("instance_group: {min: 2, max: 4, scale_up_after_s: 0.5, cooldown_s: 2}\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->instance_count, 2);
  EXPECT_EQ(r->instance_min, 2);
  EXPECT_EQ(r->instance_max, 4);
  EXPECT_DOUBLE_EQ(r->scale_up_after_s, 0.5);
  EXPECT_DOUBLE_EQ(r->scale_down_idle_s, 30);
  EXPECT_DOUBLE_EQ(r->scale_cooldown_s, 2);
  Result<ModelConfig> fixed = Parse("instance_group: {count: 2}\n");
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->instance_max, 0);
  Result<ModelConfig> from_one = Parse("instance_group: {max: 3}\n");
  ASSERT_TRUE(from_one.ok());
  EXPECT_EQ(from_one->instance_min, 1);
  EXPECT_EQ(from_one->instance_count, 1);
}

}  // namespace
}  // namespace ferry
