// A closed-loop HTTP/1.1 load generator for the OIP v2 endpoints (B2, B3, B6 of docs/benchmarks.md).
//
// N connections, each on its own thread with its own keep-alive socket (TCP_NODELAY), send the same
// prebuilt request back to back: the next request leaves when the previous response is fully read.
// The request is built once from flags: GET of a path, or POST /v2/models/<model>[/versions/<v>]/infer
// with one input tensor as OIP JSON ("data": [...]) or with the binary tensor extension
// (Inference-Header-Content-Length). Every response must be HTTP 200 with a Content-Length body;
// anything else counts as an error. Latency is send-start to last-response-byte, per request.
//
// Run either for --duration-s seconds after --warmup-s seconds (only responses completing inside the
// measured window count), or for --requests requests in total (no warm-up unless given).
// With --rate R it is open loop instead: request k leaves at start + k/R on whichever connection is
// free, whatever the answers take, and its latency counts from that slot (so a client that falls behind
// does not hide the server's queueing); answers other than 200 are counted with their own latency.
// Prints one JSON object: throughput_rps, latency_us {p50,p90,p99,min,max,mean}, errors, ...
//
//   bench_load_client --port 8000 --model cnn --input-name image --shape 1,3,224,224 --format binary
//                     --connections 2 --duration-s 10
// Plain POSIX sockets on purpose: no HTTP library shared with the server under test.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8000;
  int connections = 1;
  double duration_s = 10;
  double warmup_s = -1;  // -1: 1 s with a duration, 0 with a request count
  int64_t requests = 0;
  double rate = 0;  // > 0: open loop, this many requests/s over all connections (with a duration)
  std::string method = "POST";
  std::string path;  // GET: required; POST: default /v2/models/<model>[/versions/<v>]/infer
  std::string model = "identity";
  std::string model_version;
  std::string input_name = "INPUT0";
  std::string datatype = "FP32";
  std::string shape = "1,16";
  std::string format = "json";  // json | binary
  bool binary_output = false;
  std::string parameters;            // more request parameters: JSON members, e.g. "key":"u1"
  std::vector<std::string> headers;  // extra request headers, "Name: value"
  bool align_binary = false;
  bool print_response = false;
  double timeout_s = 60;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bench_load_client: %s\n", message.c_str());
  std::exit(2);
}

size_t ElementSize(const std::string& dtype) {
  if (dtype == "FP32" || dtype == "INT32" || dtype == "UINT32") return 4;
  if (dtype == "FP64" || dtype == "INT64" || dtype == "UINT64") return 8;
  if (dtype == "FP16" || dtype == "BF16" || dtype == "INT16" || dtype == "UINT16") return 2;
  if (dtype == "INT8" || dtype == "UINT8" || dtype == "BOOL") return 1;
  Die("unsupported --datatype " + dtype);
}

// The tensor as JSON numbers and as little-endian bytes, from one deterministic sequence.
void MakeTensor(const std::string& dtype, int64_t count, std::string* json_data, std::string* bytes) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> real(-2.0f, 2.0f);
  std::uniform_int_distribution<int> small(0, 100);
  const size_t esize = ElementSize(dtype);
  bytes->resize(static_cast<size_t>(count) * esize);
  json_data->reserve(static_cast<size_t>(count) * 11);
  char buf[64];
  for (int64_t i = 0; i < count; ++i) {
    if (i) *json_data += ',';
    uint8_t* dst = reinterpret_cast<uint8_t*>(bytes->data()) + i * esize;
    if (dtype == "FP32") {
      const float f = real(rng);
      std::memcpy(dst, &f, 4);
      json_data->append(buf, std::to_chars(buf, buf + sizeof(buf), f).ptr);
    } else if (dtype == "FP64") {
      const double d = real(rng);
      std::memcpy(dst, &d, 8);
      json_data->append(buf, std::to_chars(buf, buf + sizeof(buf), d).ptr);
    } else if (dtype == "BOOL") {
      const uint8_t b = small(rng) & 1;
      *dst = b;
      *json_data += b ? "true" : "false";
    } else if (dtype == "INT32" || dtype == "INT64" || dtype == "INT8" || dtype == "INT16" || dtype == "UINT8" ||
               dtype == "UINT16" || dtype == "UINT32" || dtype == "UINT64") {
      const int64_t v = small(rng);
      std::memcpy(dst, &v, esize);  // little-endian: the low bytes
      *json_data += std::to_string(v);
    } else {
      Die("--datatype " + dtype + " is not generated by this client");
    }
  }
}

std::string BuildRequest(const Options& o, size_t* body_bytes) {
  std::string path = o.path;
  if (o.method == "GET") {
    if (path.empty()) Die("--path is required for GET");
    *body_bytes = 0;
    return fmt::format("GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: ferry-bench\r\n\r\n", path, o.host, o.port);
  }
  if (o.method != "POST") Die("--method must be GET or POST");
  if (path.empty()) {
    path = "/v2/models/" + o.model + (o.model_version.empty() ? "" : "/versions/" + o.model_version) + "/infer";
  }
  std::vector<int64_t> dims;
  int64_t count = 1;
  {
    size_t pos = 0;
    while (pos <= o.shape.size()) {
      size_t comma = o.shape.find(',', pos);
      if (comma == std::string::npos) comma = o.shape.size();
      const std::string part = o.shape.substr(pos, comma - pos);
      if (part.empty()) Die("bad --shape " + o.shape);
      dims.push_back(std::stoll(part));
      count *= dims.back();
      pos = comma + 1;
    }
  }
  std::string shape_json = "[";
  for (size_t i = 0; i < dims.size(); ++i) shape_json += (i ? "," : "") + std::to_string(dims[i]);
  shape_json += "]";
  std::string json_data, bytes;
  MakeTensor(o.datatype, count, &json_data, &bytes);
  std::string members = o.parameters;
  if (o.binary_output) members += std::string(members.empty() ? "" : ",") + R"("binary_data_output":true)";
  const std::string out_params = members.empty() ? "" : R"(,"parameters":{)" + members + "}";

  std::string body, extra_headers;
  if (o.format == "json") {
    body = fmt::format(R"({{"id":"bench","inputs":[{{"name":"{}","shape":{},"datatype":"{}","data":[{}]}}]{}}})",
                       o.input_name, shape_json, o.datatype, json_data, out_params);
    extra_headers = "Content-Type: application/json\r\n";
  } else if (o.format == "binary") {
    std::string header =
        fmt::format(R"({{"id":"bench","inputs":[{{"name":"{}","shape":{},"datatype":"{}","parameters":{{"binary_data_size":{}}}}}]{}}})",
                    o.input_name, shape_json, o.datatype, bytes.size(), out_params);
    // Optional: pad the JSON (with spaces, valid JSON) so the tensor bytes start at a multiple of 16 in
    // the body. Clients such as tritonclient do not pad.
    if (o.align_binary) header.append((16 - header.size() % 16) % 16, ' ');
    extra_headers = fmt::format("Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {}\r\n",
                                header.size());
    body = header + bytes;
  } else {
    Die("--format must be json or binary");
  }
  for (const std::string& h : o.headers) extra_headers += h + "\r\n";
  *body_bytes = body.size();
  return fmt::format("POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: ferry-bench\r\n{}Content-Length: {}\r\n\r\n", path,
                     o.host, o.port, extra_headers, body.size()) +
         body;
}

int Connect(const Options& o, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res); rc != 0) {
    *error = std::string("getaddrinfo: ") + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    *error = std::string("connect: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(o.timeout_s);
  tv.tv_usec = static_cast<suseconds_t>((o.timeout_s - std::floor(o.timeout_s)) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

// Reads one response from `fd` (bytes left over from the previous read are in `buf`). Returns the status
// code, or -1 on a transport or framing error (with `error` set). `close` tells the server closes after.
struct Response {
  int status = -1;
  bool close = false;
  size_t body_bytes = 0;
  std::string head_and_body;  // only when asked for (printing)
};

bool ReadResponse(int fd, std::string& buf, Response* r, bool keep_text, std::string* error) {
  char chunk[64 * 1024];
  size_t header_end;
  while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n == 0 ? "connection closed by the server" : std::string("recv: ") + std::strerror(errno);
      return false;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
  const std::string_view head(buf.data(), header_end);
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/") {
    *error = "not an HTTP response";
    return false;
  }
  r->status = std::atoi(std::string(head.substr(9, 3)).c_str());
  std::optional<size_t> content_length;
  r->close = head.substr(0, 8) == "HTTP/1.0";
  size_t line = head.find("\r\n");
  while (line != std::string_view::npos && line < head.size()) {
    const size_t start = line + 2;
    size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) end = head.size();
    const std::string_view field = head.substr(start, end - start);
    const size_t colon = field.find(':');
    if (colon != std::string_view::npos) {
      const std::string_view name = field.substr(0, colon);
      std::string_view value = field.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (IEquals(name, "content-length")) {
        size_t v = 0;
        std::from_chars(value.data(), value.data() + value.size(), v);
        content_length = v;
      } else if (IEquals(name, "connection")) {
        if (IEquals(value, "close")) r->close = true;
        if (IEquals(value, "keep-alive")) r->close = false;
      } else if (IEquals(name, "transfer-encoding")) {
        *error = "chunked responses are not supported by this client";
        return false;
      }
    }
    line = end;
  }
  if (!content_length) {
    *error = "response without Content-Length";
    return false;
  }
  const size_t total = header_end + 4 + *content_length;
  while (buf.size() < total) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n == 0 ? "connection closed mid-body" : std::string("recv: ") + std::strerror(errno);
      return false;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
  r->body_bytes = *content_length;
  if (keep_text) r->head_and_body.assign(buf.data(), total);
  buf.erase(0, total);
  return true;
}

struct ThreadResult {
  std::vector<float> latency_us;
  std::vector<float> rejected_latency_us;  // non-200 answers in the window
  int64_t late_starts = 0;                 // open loop: sent > 1 ms after their slot (no free connection)
  int64_t ok = 0;  // in the window
  int64_t non_200 = 0;
  int64_t transport_errors = 0;
  int64_t reconnects = 0;
  size_t last_body_bytes = 0;
  std::string first_error;
  std::string sample_response;
};

double Percentile(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Closed-loop HTTP/1.1 load generator for OIP v2 endpoints (docs/benchmarks.md)"};
  app.add_option("--host", o.host)->capture_default_str();
  app.add_option("--port", o.port)->capture_default_str();
  app.add_option("-c,--connections", o.connections, "Connections, one thread each")->capture_default_str();
  app.add_option("-d,--duration-s", o.duration_s, "Measured seconds (after the warm-up)")->capture_default_str();
  app.add_option("--warmup-s", o.warmup_s, "Unmeasured seconds first (default 1 with a duration, 0 with --requests)");
  app.add_option("-n,--requests", o.requests, "Total requests instead of a duration (0: use the duration)");
  app.add_option("--rate", o.rate,
                 "Open loop: requests per second at a constant arrival rate, whatever the answers take; "
                 "latency counts from each request's slot (use enough connections)");
  app.add_option("--method", o.method, "GET or POST")->capture_default_str();
  app.add_option("--path", o.path, "Request target (GET; POST defaults to the model's infer path)");
  app.add_option("-m,--model", o.model)->capture_default_str();
  app.add_option("--model-version", o.model_version, "Adds /versions/<v> to the infer path");
  app.add_option("--input-name", o.input_name)->capture_default_str();
  app.add_option("--datatype", o.datatype)->capture_default_str();
  app.add_option("--shape", o.shape, "Input shape with the batch dim, comma-separated")->capture_default_str();
  app.add_option("--format", o.format, "json or binary (the binary tensor extension)")->capture_default_str();
  app.add_flag("--binary-output", o.binary_output, "Ask for binary outputs (binary_data_output)");
  app.add_option("--parameters", o.parameters, "More request parameters as JSON members, e.g. '\"key\":\"u1\"'");
  app.add_option("--header", o.headers, "An extra request header, 'Name: value' (repeatable)");
  app.add_flag("--align-binary", o.align_binary, "Pad the JSON header so the tensor bytes are 16-byte aligned");
  app.add_flag("--print-response", o.print_response, "Print the first response to stderr");
  app.add_option("--timeout-s", o.timeout_s, "Socket send/receive timeout")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.connections < 1) Die("--connections must be >= 1");

  size_t body_bytes = 0;
  const std::string request = BuildRequest(o, &body_bytes);

  const bool by_count = o.requests > 0;
  const double warmup = o.warmup_s >= 0 ? o.warmup_s : (by_count ? 0.0 : 1.0);
  std::atomic<int64_t> remaining{o.requests};
  std::vector<ThreadResult> results(o.connections);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  const auto measure_start = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const auto measure_end = by_count ? Clock::time_point::max()
                                    : measure_start + std::chrono::duration_cast<Clock::duration>(
                                                          std::chrono::duration<double>(o.duration_s));
  std::atomic<int64_t> last_done_ns{0};
  std::atomic<int64_t> next_slot{0};
  if (o.rate > 0 && by_count) Die("--rate takes a duration, not --requests");

  for (int i = 0; i < o.connections; ++i) {
    threads.emplace_back([&, i] {
      ThreadResult& r = results[i];
      r.latency_us.reserve(by_count ? static_cast<size_t>(o.requests / o.connections + 1) : 1 << 16);
      std::string buf;
      std::string error;
      int fd = -1;
      bool printed = false;
      while (true) {
        Clock::time_point slot_time{};
        if (o.rate > 0) {
          const int64_t slot = next_slot.fetch_add(1);
          slot_time = start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(slot) / o.rate));
          if (slot_time >= measure_end) break;
          std::this_thread::sleep_until(slot_time);
          if (Clock::now() - slot_time > std::chrono::milliseconds(1) && slot_time >= measure_start) ++r.late_starts;
        } else if (by_count) {
          if (remaining.fetch_sub(1) <= 0) break;
        } else if (Clock::now() >= measure_end) {
          break;
        }
        if (fd < 0) {
          fd = Connect(o, &error);
          if (fd < 0) {
            if (r.first_error.empty()) r.first_error = error;
            ++r.transport_errors;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
          }
          buf.clear();
        }
        const auto t0 = o.rate > 0 ? slot_time : Clock::now();
        Response resp;
        const bool ok = SendAll(fd, request) && ReadResponse(fd, buf, &resp, o.print_response && !printed && i == 0, &error);
        const auto t1 = Clock::now();
        if (!ok) {
          if (error.empty()) error = std::string("send: ") + std::strerror(errno);
          if (r.first_error.empty()) r.first_error = error;
          ++r.transport_errors;
          ++r.reconnects;
          ::close(fd);
          fd = -1;
          error.clear();
          continue;
        }
        if (o.print_response && !printed && i == 0) {
          r.sample_response = resp.head_and_body.substr(0, 2000);
          printed = true;
        }
        const bool in_window = t1 >= measure_start && t1 <= measure_end;
        if (resp.status != 200) {
          if (in_window) {
            ++r.non_200;
            r.rejected_latency_us.push_back(std::chrono::duration<float, std::micro>(t1 - t0).count());
          }
          if (r.first_error.empty()) r.first_error = fmt::format("HTTP {}", resp.status);
        } else if (in_window) {
          ++r.ok;
          r.latency_us.push_back(std::chrono::duration<float, std::micro>(t1 - t0).count());
          r.last_body_bytes = resp.body_bytes;
        }
        if (by_count) {
          int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - start).count();
          int64_t prev = last_done_ns.load();
          while (ns > prev && !last_done_ns.compare_exchange_weak(prev, ns)) {
          }
        }
        if (resp.close) {
          ::close(fd);
          fd = -1;
          ++r.reconnects;
        }
      }
      if (fd >= 0) ::close(fd);
    });
  }
  for (auto& t : threads) t.join();

  double window_s;
  if (by_count) {
    window_s = static_cast<double>(last_done_ns.load()) / 1e9 - warmup;
  } else {
    window_s = o.duration_s;
  }
  std::vector<float> all;
  std::vector<float> rejected;
  int64_t late_starts = 0;
  int64_t ok = 0, non_200 = 0, transport = 0, reconnects = 0;
  size_t response_bytes = 0;
  std::string first_error, sample;
  for (auto& r : results) {
    all.insert(all.end(), r.latency_us.begin(), r.latency_us.end());
    rejected.insert(rejected.end(), r.rejected_latency_us.begin(), r.rejected_latency_us.end());
    late_starts += r.late_starts;
    ok += r.ok;
    non_200 += r.non_200;
    transport += r.transport_errors;
    reconnects += r.reconnects;
    if (r.last_body_bytes) response_bytes = r.last_body_bytes;
    if (first_error.empty()) first_error = r.first_error;
    if (sample.empty()) sample = r.sample_response;
  }
  if (!sample.empty()) std::fprintf(stderr, "%s\n", sample.c_str());
  std::sort(all.begin(), all.end());
  std::sort(rejected.begin(), rejected.end());
  double sum = 0;
  for (float v : all) sum += v;
  const double mean = all.empty() ? 0 : sum / static_cast<double>(all.size());
  std::printf(
      "{\"connections\":%d,\"threads\":%d,\"format\":\"%s\",\"method\":\"%s\",\"request_bytes\":%zu,\"body_bytes\":%zu,"
      "\"response_body_bytes\":%zu,\"warmup_s\":%.3f,\"window_s\":%.3f,\"ok\":%lld,\"non_200\":%lld,"
      "\"transport_errors\":%lld,\"reconnects\":%lld,\"errors\":%lld,\"throughput_rps\":%.2f,"
      "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"min\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
      "\"rejected_latency_us\":{\"p50\":%.1f,\"p99\":%.1f},\"rate\":%.2f,\"late_starts\":%lld,"
      "\"first_error\":\"%s\"}\n",
      o.connections, o.connections, o.format.c_str(), o.method.c_str(), request.size(), body_bytes, response_bytes,
      warmup, window_s, static_cast<long long>(ok), static_cast<long long>(non_200),
      static_cast<long long>(transport), static_cast<long long>(reconnects),
      static_cast<long long>(non_200 + transport), window_s > 0 ? static_cast<double>(ok) / window_s : 0.0,
      Percentile(all, 0.5), Percentile(all, 0.9), Percentile(all, 0.99), all.empty() ? 0.0 : all.front(),
      all.empty() ? 0.0 : all.back(), mean, Percentile(rejected, 0.5), Percentile(rejected, 0.99), o.rate,
      static_cast<long long>(late_starts), JsonEscape(first_error).c_str());
  return (non_200 + transport) > 0 && ok == 0 ? 1 : 0;
}
