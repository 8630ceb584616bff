// The in-process limit for B2, B3 and B6 (docs/benchmarks.md): the same runtime Ferry serves with, called
// directly, no HTTP, no queue. Loads a model folder exactly as the server does (ParseModelConfig on
// <dir>/config.yaml, then the backend's CreateInstance on the version folder, which also sets OpenCV's
// thread count from the config) and measures:
//
//   latency_b1      Execute() at batch 1, one instance, one caller: p50/p90/p99/min/max over --iters calls
//   raw_forward_b1  (opencv_dnn only) cv::dnn::Net setInput + forward on a net loaded by hand, no Ferry
//                   code at all, timed alternately with Execute call by call: shows what Execute's
//                   wrapper (input view, output copy, thread-count lock) costs
//   throughput[]    for each "KxB" in --configs: K instances, each driven by its own thread in a closed
//                   loop at batch B, for --duration-s; rows/s and per-call p50/p99
//
// Random FP32 inputs (fixed seed) in 4-byte-aligned buffers, so Execute takes its zero-copy input path,
// as it does for a JSON request and for a binary one whose data starts at a 4-byte multiple.
// Prints one JSON object on stdout. Timings are steady_clock wall time.
//
//   bench_inprocess_limit --model-dir examples/models/cnn --iters 200 --duration-s 3 --configs 1x1,2x1,1x2,1x8
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "backend/backend.h"
#include "backend/identity_backend.h"
#include "repository/model_config.h"

#ifdef FERRY_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>

#include "backend/opencv_dnn/opencv_dnn_backend.h"
#endif
#ifdef FERRY_WITH_OPENVINO
#include "backend/openvino/openvino_backend.h"
#endif
#ifdef FERRY_WITH_XGBOOST
#include "backend/xgboost/xgboost_backend.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Stats {
  size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0, mean = 0;
};

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

Stats Summarise(std::vector<double> us) {
  Stats s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  s.n = us.size();
  s.p50 = Percentile(us, 0.50);
  s.p90 = Percentile(us, 0.90);
  s.p99 = Percentile(us, 0.99);
  s.min = us.front();
  s.max = us.back();
  double sum = 0;
  for (double v : us) sum += v;
  s.mean = sum / static_cast<double>(us.size());
  return s;
}

std::string StatsJson(const Stats& s) {
  return fmt::format(R"({{"n":{},"p50_us":{:.1f},"p90_us":{:.1f},"p99_us":{:.1f},"min_us":{:.1f},"max_us":{:.1f},"mean_us":{:.1f}}})",
                     s.n, s.p50, s.p90, s.p99, s.min, s.max, s.mean);
}

double MicrosSince(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bench_inprocess_limit: %s\n", message.c_str());
  std::exit(2);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The highest numeric sub-folder, as the server's default version policy (latest: 1) picks it.
int64_t LatestVersion(const fs::path& model_dir) {
  int64_t best = -1;
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit) || name[0] == '0') continue;
    best = std::max<int64_t>(best, std::stoll(name));
  }
  if (best < 0) Die("no version folder in " + model_dir.string());
  return best;
}

// Inputs for one call at batch `batch` (ignored for unbatched models); deterministic values in [-2, 2).
std::vector<ferry::Tensor> MakeInputs(const ferry::ModelConfig& config, int64_t batch, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<ferry::Tensor> inputs;
  for (const ferry::TensorSpec& spec : config.inputs) {
    if (spec.dtype != ferry::DataType::kFp32) Die("input '" + spec.name + "' is not FP32; this bench makes FP32 only");
    ferry::Tensor t;
    t.name = spec.name;
    t.dtype = spec.dtype;
    if (config.max_batch_size > 0) t.shape.push_back(batch);
    for (int64_t d : spec.dims) t.shape.push_back(d < 0 ? 1 : d);
    int64_t count = 1;
    for (int64_t d : t.shape) count *= d;
    std::vector<uint8_t> bytes(static_cast<size_t>(count) * sizeof(float));  // operator new: 16-byte aligned
    for (int64_t i = 0; i < count; ++i) {
      const float f = dist(rng);
      std::memcpy(bytes.data() + i * sizeof(float), &f, sizeof(float));
    }
    t.data = ferry::Buffer::Own(std::move(bytes));
    inputs.push_back(std::move(t));
  }
  return inputs;
}

struct Loaded {
  ferry::ModelConfig config;
  fs::path version_dir;
  std::unique_ptr<ferry::Backend> backend;
};

std::unique_ptr<ferry::ModelInstance> NewInstance(Loaded& m) {
  auto instance = m.backend->CreateInstance(m.config, m.version_dir);
  if (!instance.ok()) Die(instance.status().message());
  return std::move(instance).value();
}

void ExecuteOrDie(ferry::ModelInstance& instance, const std::vector<ferry::Tensor>& inputs) {
  auto out = instance.Execute(inputs);
  if (!out.ok()) Die("Execute failed: " + out.status().message());
}

struct ThroughputResult {
  int instances = 0;
  int64_t batch = 0;
  double seconds = 0;
  size_t calls = 0;
  double rows_per_s = 0;
  Stats call;
};

// K instances, one caller thread each, closed loop at batch B for `seconds` (after one untimed call each).
ThroughputResult MeasureThroughput(Loaded& m, int instances, int64_t batch, double seconds) {
  std::vector<std::unique_ptr<ferry::ModelInstance>> pool;
  std::vector<std::vector<ferry::Tensor>> inputs;
  for (int i = 0; i < instances; ++i) {
    pool.push_back(NewInstance(m));
    inputs.push_back(MakeInputs(m.config, batch, 1000 + i));
    ExecuteOrDie(*pool.back(), inputs.back());  // first call at this batch size: allocations, not timed
  }
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::vector<double>> lat(instances);
  std::vector<std::thread> threads;
  Clock::time_point start, end;
  for (int i = 0; i < instances; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      lat[i].reserve(4096);
      while (Clock::now() < end) {
        const auto t0 = Clock::now();
        ExecuteOrDie(*pool[i], inputs[i]);
        lat[i].push_back(MicrosSince(t0));
      }
    });
  }
  while (ready.load() < instances) std::this_thread::yield();
  start = Clock::now();
  end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  // Calls in flight at the deadline finish after it: divide by when the last one finished.
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  ThroughputResult r;
  r.instances = instances;
  r.batch = batch;
  r.seconds = elapsed;
  r.calls = all.size();
  r.rows_per_s = static_cast<double>(all.size()) * static_cast<double>(batch) / elapsed;
  r.call = Summarise(std::move(all));
  return r;
}

// Execute at batch 1, and (when `raw` is given) the bare forward, alternating call by call so that
// both see the same machine state.
std::pair<Stats, Stats> MeasureLatency(ferry::ModelInstance& instance, const std::vector<ferry::Tensor>& inputs,
                                       const std::function<void()>& raw, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) {
    ExecuteOrDie(instance, inputs);
    if (raw) raw();
  }
  std::vector<double> us, raw_us;
  us.reserve(iters);
  raw_us.reserve(iters);
  for (int i = 0; i < iters; ++i) {
    auto t0 = Clock::now();
    ExecuteOrDie(instance, inputs);
    us.push_back(MicrosSince(t0));
    if (raw) {
      t0 = Clock::now();
      raw();
      raw_us.push_back(MicrosSince(t0));
    }
  }
  return {Summarise(std::move(us)), Summarise(std::move(raw_us))};
}

#ifdef FERRY_WITH_OPENCV
// The runtime with no Ferry code: readNetFromONNX, setInput, forward of the declared outputs.
class RawNet {
 public:
  RawNet(const Loaded& m, const std::vector<ferry::Tensor>& inputs) : m_(m) {
    net_ = cv::dnn::readNetFromONNX((m.version_dir / m.config.model_filename).string());
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    for (const ferry::Tensor& t : inputs) {
      std::vector<int> sizes(t.shape.begin(), t.shape.end());
      blobs_.emplace_back(static_cast<int>(sizes.size()), sizes.data(), CV_32F, const_cast<uint8_t*>(t.data.data()));
    }
    for (const auto& o : m.config.outputs) names_.push_back(o.name);
  }
  void Forward() {
    for (size_t i = 0; i < blobs_.size(); ++i) net_.setInput(blobs_[i], m_.config.inputs[i].name);
    net_.forward(outs_, names_);
  }

 private:
  const Loaded& m_;
  cv::dnn::Net net_;
  std::vector<cv::Mat> blobs_;
  std::vector<std::string> names_;
  std::vector<cv::Mat> outs_;
};
#endif

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"In-process limit: the serving runtime called directly (B2/B3/B6 of docs/benchmarks.md)"};
  std::string model_dir;
  int64_t version = 0;
  int cv_threads = 0;
  int iters = 200;
  int warmup = 10;
  double duration_s = 3;
  std::string configs = "1x1,2x1,1x8";
  bool raw = true;
  app.add_option("--model-dir", model_dir, "Model folder: config.yaml and <version>/")->required();
  app.add_option("--version", version, "Version folder (default: the highest)");
  app.add_option("--cv-threads", cv_threads,
                 "cv::setNumThreads after loading (default 0: keep what CreateInstance set from the config)");
  app.add_option("--iters", iters, "Timed Execute calls for latency_b1")->capture_default_str();
  app.add_option("--warmup", warmup, "Untimed calls before latency_b1")->capture_default_str();
  app.add_option("--duration-s", duration_s, "Seconds per throughput configuration")->capture_default_str();
  app.add_option("--configs", configs, "Throughput configurations INSTANCESxBATCH, comma-separated ('' for none)")
      ->capture_default_str();
  std::string backend_override;
  app.add_option("--backend", backend_override, "Use this backend instead of the one config.yaml names");
  app.add_option("--raw", raw, "Also time a bare cv::dnn::Net forward (opencv_dnn models)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  Loaded m;
  const fs::path dir(model_dir);
  const std::string name = fs::absolute(dir).lexically_normal().filename().string();
  auto config = ferry::ParseModelConfig(ReadFile(dir / "config.yaml"), name);
  if (!config.ok()) Die(config.status().message());
  // A model that pre-processes images in the server is timed on the tensor its backend takes: the limit
  // is the runtime alone, and pre-processing counts against the server.
  m.config = ferry::ModelSideConfig(std::move(config).value());
  m.version_dir = dir / std::to_string(version > 0 ? version : LatestVersion(dir));
  if (!backend_override.empty()) m.config.backend = backend_override;
  if (m.config.backend.empty()) m.config.backend = ferry::kDefaultOnnxBackend;  // the server's default
  if (m.config.backend == "identity") {
    m.backend = ferry::MakeIdentityBackend();
#ifdef FERRY_WITH_OPENCV
  } else if (m.config.backend == "opencv_dnn") {
    m.backend = ferry::MakeOpenCvDnnBackend();
#endif
#ifdef FERRY_WITH_OPENVINO
  } else if (m.config.backend == "openvino") {
    m.backend = ferry::MakeOpenVinoBackend();
#endif
#ifdef FERRY_WITH_XGBOOST
  } else if (m.config.backend == "xgboost") {
    m.backend = ferry::MakeXgboostBackend();
#endif
  } else {
    Die("backend '" + m.config.backend + "' is not built into this bench");
  }

  auto instance = NewInstance(m);  // sets OpenCV's thread count from the config, as the server does
#ifdef FERRY_WITH_OPENCV
  if (cv_threads > 0) cv::setNumThreads(cv_threads);
  const int threads_now = cv::getNumThreads();
  std::string framework;  // the "Parallel framework:" line of OpenCV's build information
  {
    const std::string info = cv::getBuildInformation();
    const size_t at = info.find("Parallel framework:");
    if (at != std::string::npos) {
      const size_t from = info.find_first_not_of(' ', at + 19);
      framework = info.substr(from, info.find('\n', from) - from);
    }
  }
#else
  const int threads_now = 0;
  const std::string framework;
#endif

  const auto inputs_b1 = MakeInputs(m.config, 1, 7);
  size_t input_bytes = 0;
  for (const auto& t : inputs_b1) input_bytes += t.data.size();
  std::function<void()> raw_forward;
#ifdef FERRY_WITH_OPENCV
  std::unique_ptr<RawNet> raw_net;
  if (raw && m.config.backend == "opencv_dnn") {
    raw_net = std::make_unique<RawNet>(m, inputs_b1);
    raw_forward = [&] { raw_net->Forward(); };
  }
#endif
  const auto [latency, raw_latency] = MeasureLatency(*instance, inputs_b1, raw_forward, warmup, iters);
  const std::string raw_json = raw_forward ? StatsJson(raw_latency) : "null";
#ifdef FERRY_WITH_OPENCV
  raw_net.reset();
#endif
  instance.reset();

  std::vector<ThroughputResult> results;
  std::stringstream list(configs);
  std::string item;
  while (std::getline(list, item, ',')) {
    if (item.empty()) continue;
    const size_t x = item.find('x');
    if (x == std::string::npos) Die("bad --configs entry '" + item + "' (want KxB)");
    const int k = std::stoi(item.substr(0, x));
    int64_t b = std::stoll(item.substr(x + 1));
    if (m.config.max_batch_size == 0) b = 1;
    if (k < 1 || b < 1 || (m.config.max_batch_size > 0 && b > m.config.max_batch_size)) {
      Die("bad --configs entry '" + item + "'");
    }
    results.push_back(MeasureThroughput(m, k, b, duration_s));
  }

  std::string out = "{";
  out += fmt::format(R"("model":{},"backend":{},"version_dir":{},"cv_threads":{},"parallel_framework":{},)",
                     JsonString(m.config.name), JsonString(m.config.backend), JsonString(m.version_dir.string()),
                     threads_now, JsonString(framework));
  out += fmt::format(R"("hardware_concurrency":{},"input_bytes_b1":{},)", std::thread::hardware_concurrency(), input_bytes);
  out += fmt::format(R"("latency_b1":{},"raw_forward_b1":{},"throughput":[)", StatsJson(latency), raw_json);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    out += fmt::format(R"({}{{"instances":{},"batch":{},"seconds":{:.3f},"calls":{},"rows_per_s":{:.2f},"call":{}}})",
                       i ? "," : "", r.instances, r.batch, r.seconds, r.calls, r.rows_per_s, StatsJson(r.call));
  }
  out += "]}";
  std::printf("%s\n", out.c_str());
  return 0;
}
