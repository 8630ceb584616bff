// Fuzzes the HTTP path of a request: raw bytes through Beast's request parser with the server's limits,
// then Ferry's router, the OIP decoder, validation against real model configs and the dynamic batcher,
// down to the identity backend. Every answer must be a well-formed HTTP status with a JSON error body
// for 4xx/5xx, and 5xx other than 503 (which a full queue may legitimately give) is a bug.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>

#include "fuzz_check.h"
#include "server/server.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace ferry;

struct Stack {
  std::filesystem::path root;
  std::unique_ptr<BackendRegistry> backends;
  std::unique_ptr<ModelRepository> repository;
  std::unique_ptr<ServingMetrics> metrics;
  std::unique_ptr<BackendServableFactory> factory;
  std::unique_ptr<ModelManager> manager;
  std::unique_ptr<RepositoryWatcher> watcher;
  std::unique_ptr<InferenceService> inference;
  std::unique_ptr<AdminService> admin;
  std::unique_ptr<ServingRouter> router;

  Stack() {
    root = std::filesystem::temp_directory_path() / ("ferry-fuzz-" + std::to_string(::getpid()));
    auto model = [&](const std::string& name, const std::string& config) {
      std::filesystem::create_directories(root / name / "1");
      std::ofstream(root / name / "config.yaml") << config;
    };
    model("ident", "backend: identity\nmax_batch_size: 8\ninputs: [{name: INPUT0, datatype: FP32, dims: [4]}]\n"
                   "outputs: [{name: OUTPUT0, datatype: FP32, dims: [4]}]\ndynamic_batching: {max_queue_delay_us: 0}\n");
    model("text", "backend: identity\ninputs: [{name: T, datatype: BYTES, dims: [-1]}]\n"
                  "outputs: [{name: U, datatype: BYTES, dims: [-1]}]\n");
    backends = MakeDefaultBackends();
    repository = std::make_unique<ModelRepository>(root);
    metrics = std::make_unique<ServingMetrics>();
    factory = std::make_unique<BackendServableFactory>(backends.get());
    manager = std::make_unique<ModelManager>(ModelManagerOptions{}, factory.get());
    watcher = std::make_unique<RepositoryWatcher>(repository.get(), manager.get());
    inference = std::make_unique<InferenceService>(manager.get(), metrics.get());
    admin = std::make_unique<AdminService>(AdminOptions{"key"}, manager.get(), watcher.get(), repository.get());
    RouterOptions router_options;
    router_options.max_infer_body_bytes = 1 << 20;
    router_options.max_other_body_bytes = 64 << 10;
    router = std::make_unique<ServingRouter>(router_options, inference.get(), admin.get(), metrics.get());
    (void)watcher->PollOnce();
    manager->WaitUntilIdle(std::chrono::seconds(30));
    admin->SetReady(true);
  }
};

Stack& GetStack() {
  static Stack* stack = new Stack();  // lives for the whole fuzzing process
  return *stack;
}

using fuzz::Check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Stack& stack = GetStack();
  http::request_parser<http::string_body> parser;
  parser.eager(true);
  parser.header_limit(24 * 1024);
  parser.body_limit(1 << 20);
  beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec == http::error::need_more && !parser.is_header_done()) return 0;
  if (ec && ec != http::error::need_more) return 0;  // the server answers these with 400/413/431 itself
  if (!parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;

  auto& req = parser.get();
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    request.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  request.body = std::make_shared<const std::string>(std::move(req.body()));

  std::promise<HttpResponse> answered;
  auto future = answered.get_future();
  stack.router->Handle(std::move(request), CancelToken::Create(),
                       [&answered](HttpResponse&& r) { answered.set_value(std::move(r)); });
  Check(future.wait_for(std::chrono::seconds(5)) == std::future_status::ready, "request not answered in 5 s");
  HttpResponse response = future.get();
  Check(response.status >= 200 && response.status < 600, "status out of range");
  Check(response.status < 500 || response.status == 503, "a 5xx other than 503");
  if (response.status >= 400) {
    Check(response.content_type == "application/json", "error without a JSON content type");
    Check(response.body.rfind("{\"error\":", 0) == 0, "error body without an error field");
  }
  return 0;
}
