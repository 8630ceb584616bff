// The whole server in-process on port 0, spoken to over real HTTP.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "server/server.h"
#include "testing/raw_http_client.h"
#include "testing/temp_repository.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::RawHttpClient;

constexpr char kIdentityConfig[] = R"(
backend: identity
max_batch_size: 8
inputs:
  - {name: INPUT0, datatype: FP32, dims: [4]}
outputs:
  - {name: OUTPUT0, datatype: FP32, dims: [4]}
dynamic_batching: {max_queue_delay_us: 100}
)";

constexpr char kBytesConfig[] = R"(
backend: identity
inputs:
  - {name: TEXT, datatype: BYTES, dims: [-1]}
outputs:
  - {name: ECHO, datatype: BYTES, dims: [-1]}
)";

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_.WriteConfig("ident", kIdentityConfig);
    repo_.AddVersion("ident", 1);
    repo_.WriteConfig("text", kBytesConfig);
    repo_.AddVersion("text", 1);
    repo_.WriteConfig("broken", "max_batch_size: [oops\n");
    repo_.AddVersion("broken", 1);
    StartServer(ModelControlMode::kPoll, "");
  }
  void TearDown() override {
    if (server_) server_->Drain();
  }
  void StartServer(ModelControlMode mode, std::string admin_key) {
    ServerOptions options;
    options.model_repository = repo_.root();
    options.data_dir = data_.root();
    options.http.address = "127.0.0.1";
    options.http.port = 0;
    options.control_mode = mode;
    options.poll_interval = 50ms;
    options.exit_timeout = 5s;
    options.router.max_infer_body_bytes = 1 << 20;
    options.admin.admin_key = admin_key;
    auto server = Server::Create(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_TRUE(server_->Start().ok());
  }
  RawHttpClient Client() { return RawHttpClient(server_->port()); }

  testing::TempRepository repo_;
  testing::TempRepository data_;  // the job store's folder
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, HealthAndServerMetadata) {
  RawHttpClient c = Client();
  EXPECT_EQ(c.Request("GET", "/v2/health/live")->status, 200);
  EXPECT_EQ(c.Request("GET", "/v2/health/ready")->status, 200);  // same keep-alive connection
  auto meta = c.Request("GET", "/v2");
  ASSERT_TRUE(meta);
  EXPECT_NE(meta->body.find("\"binary_tensor_data\""), std::string::npos);
  EXPECT_NE(meta->body.find("model_repository"), std::string::npos);  // the index is readable by all
}

TEST_F(ServerTest, ModelMetadataReadinessAndConfig) {
  RawHttpClient c = Client();
  auto meta = c.Request("GET", "/v2/models/ident");
  ASSERT_EQ(meta->status, 200);
  EXPECT_NE(meta->body.find("\"shape\":[-1,4]"), std::string::npos) << meta->body;
  EXPECT_EQ(c.Request("GET", "/v2/models/ident/versions/1/ready")->status, 200);
  EXPECT_EQ(c.Request("GET", "/v2/models/ident/versions/2/ready")->status, 404);
  auto config = c.Request("GET", "/v2/models/ident/config");
  ASSERT_EQ(config->status, 200);
  EXPECT_NE(config->body.find("\"max_batch_size\":8"), std::string::npos) << config->body;
  EXPECT_NE(config->body.find("TYPE_FP32"), std::string::npos);
  EXPECT_EQ(c.Request("GET", "/v2/models/broken")->status, 404);
}

TEST_F(ServerTest, InferWithJsonData) {
  RawHttpClient c = Client();
  auto r = c.Request("POST", "/v2/models/ident/infer",
                     R"({"id":"42","inputs":[{"name":"INPUT0","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8.5]]}]})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("\"id\":\"42\""), std::string::npos);
  EXPECT_NE(r->body.find("\"model_name\":\"ident\""), std::string::npos);
  EXPECT_NE(r->body.find("[1,2,3,4,5,6,7,8.5]"), std::string::npos) << r->body;
}

TEST_F(ServerTest, InferWithBinaryInputAndOutput) {
  const std::string json =
      R"({"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],)"
      R"("outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]})";
  const float values[4] = {1.5f, -2, 3, 4};
  std::string body = json + std::string(reinterpret_cast<const char*>(values), sizeof(values));
  RawHttpClient c = Client();
  auto r = c.Request("POST", "/v2/models/ident/infer", body,
                     "Inference-Header-Content-Length: " + std::to_string(json.size()) + "\r\n");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(r->headers.count("inference-header-content-length"));
  const size_t json_size = std::stoul(r->headers["inference-header-content-length"]);
  ASSERT_EQ(r->body.size(), json_size + 16);
  EXPECT_NE(r->body.substr(0, json_size).find("\"binary_data_size\":16"), std::string::npos);
  EXPECT_EQ(std::memcmp(r->body.data() + json_size, values, 16), 0);
}

TEST_F(ServerTest, BytesTensorsRoundTrip) {
  RawHttpClient c = Client();
  auto r = c.Request("POST", "/v2/models/text/infer",
                     R"({"inputs":[{"name":"TEXT","shape":[2],"datatype":"BYTES","data":["hello","wörld"]}]})");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("\"hello\""), std::string::npos) << r->body;
}

TEST_F(ServerTest, BadRequestsGetJsonErrorsAndTheServerStaysUp) {
  struct Case {
    std::string target, body;
    int status;
  };
  const std::vector<Case> cases = {
      {"/v2/models/nope/infer", R"({"inputs":[]})", 404},
      {"/v2/models/ident/infer", "{not json", 400},
      {"/v2/models/ident/infer", R"({"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}]})", 400},
      {"/v2/models/ident/infer", R"({"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]})", 400},
      {"/v2/models/ident/infer", R"({"inputs":[{"name":"INPUT0","shape":[9,4],"datatype":"FP32","data":[]}]})", 400},
      {"/v2/models/ident/infer", R"({"inputs":[{"name":"WRONG","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})", 400},
      {"/v2/models/ident/versions/0/infer", R"({"inputs":[]})", 400},
      {"/v2/models/ident/versions/7/infer", R"({"inputs":[]})", 404},
  };
  RawHttpClient c = Client();
  for (const Case& k : cases) {
    auto r = c.Request("POST", k.target, k.body);
    ASSERT_TRUE(r) << k.target << " " << k.body;
    EXPECT_EQ(r->status, k.status) << k.body << " -> " << r->body;
    EXPECT_EQ(r->headers["content-type"], "application/json");
    EXPECT_NE(r->body.find("\"error\""), std::string::npos);
  }
  EXPECT_EQ(Client().Request("GET", "/v2/health/live")->status, 200);
}

TEST_F(ServerTest, OversizedBodyIsRefusedBeforeItIsSent) {
  RawHttpClient c = Client();
  // Only the header goes out; a 413 must come back without the server waiting for 2 MB.
  ASSERT_TRUE(c.Send("POST /v2/models/ident/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"));
  auto r = c.Read(2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(c.WaitClosed(2s));
}

TEST_F(ServerTest, HugeHeadersAndUrisAreRefused) {
  RawHttpClient a = Client();
  auto r = a.Request("GET", "/v2/health/live", "", "X-Big: " + std::string(20000, 'a') + "\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  RawHttpClient b = Client();
  r = b.Request("GET", "/v2/models/" + std::string(9000, 'a'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
}

TEST_F(ServerTest, ManagementIsOffByDefaultButTheIndexIsReadable) {
  RawHttpClient c = Client();
  EXPECT_EQ(c.Request("POST", "/v2/repository/index")->status, 200);
  EXPECT_EQ(c.Request("POST", "/v2/repository/models/ident/unload")->status, 403);
}

TEST_F(ServerTest, MetricsCountRequests) {
  RawHttpClient c = Client();
  ASSERT_EQ(c.Request("POST", "/v2/models/ident/infer",
                      R"({"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})")->status, 200);
  auto m = c.Request("GET", "/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("ferry_inference_request_success_total{model=\"ident\",version=\"1\"} 1"), std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("ferry_inference_queue_duration_us_bucket"), std::string::npos);
  EXPECT_NE(m->body.find("ferry_model_load_duration_seconds"), std::string::npos);
}

TEST_F(ServerTest, PollingPicksUpANewVersion) {
  repo_.AddVersion("ident", 2);
  RawHttpClient c = Client();
  for (int i = 0; i < 200; ++i) {
    if (c.Request("GET", "/v2/models/ident/versions/2/ready")->status == 200) break;
    std::this_thread::sleep_for(20ms);
  }
  auto r = c.Request("POST", "/v2/models/ident/infer",
                     R"({"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})");
  EXPECT_NE(r->body.find("\"model_version\":\"2\""), std::string::npos) << r->body;
}

TEST_F(ServerTest, DrainTurnsReadinessOff) {
  server_->admin().SetReady(false);
  EXPECT_EQ(Client().Request("GET", "/v2/health/ready")->status, 503);
  EXPECT_EQ(Client().Request("GET", "/v2/health/live")->status, 200);
}

class ManagedServerTest : public ServerTest {
 protected:
  void SetUp() override {
    repo_.WriteConfig("ident", kIdentityConfig);
    repo_.AddVersion("ident", 1);
    StartServer(ModelControlMode::kExplicit, "s3cret");
  }
};

TEST_F(ManagedServerTest, LoadAndUnloadNeedTheAdminKey) {
  RawHttpClient c = Client();
  EXPECT_EQ(c.Request("POST", "/v2/repository/index")->status, 200);  // listing is anyone's without keys
  EXPECT_EQ(c.Request("POST", "/v2/repository/models/ident/unload")->status, 401);
  EXPECT_EQ(c.Request("POST", "/v2/repository/models/ident/unload", "", "Authorization: Bearer wrong\r\n")->status, 401);
  const std::string auth = "Authorization: Bearer s3cret\r\n";
  auto index = c.Request("POST", "/v2/repository/index", "", auth);
  ASSERT_EQ(index->status, 200);
  EXPECT_NE(index->body.find("\"state\":\"READY\""), std::string::npos) << index->body;
  EXPECT_EQ(c.Request("POST", "/v2/repository/models/ident/unload", "", auth)->status, 200);
  for (int i = 0; i < 100 && c.Request("GET", "/v2/models/ident/ready")->status == 200; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_NE(c.Request("GET", "/v2/models/ident/ready")->status, 200);
  EXPECT_EQ(c.Request("POST", "/v2/repository/models/ident/load", "", auth)->status, 200);
  EXPECT_EQ(c.Request("GET", "/v2/models/ident/ready")->status, 200);
  EXPECT_EQ(c.Request("POST", "/v2/repository/models/..%2f/load", "", auth)->status, 400);
  EXPECT_EQ(c.Request("POST", "/v2/repository/models/absent/load", "", auth)->status, 404);
}

}  // namespace
}  // namespace ferry
