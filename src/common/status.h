#pragma once
// The one error model of Ferry: every library call returns Status or Result<T>. Thread-compatible value types.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace ferry {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller sent something malformed (HTTP 400)
  kNotFound,            // no such model / version / route (404)
  kAlreadyExists,       // (409)
  kFailedPrecondition,  // valid request, wrong state (409/400)
  kUnauthenticated,     // (401)
  kPermissionDenied,    // (403)
  kPayloadTooLarge,     // body over a limit (413)
  kResourceExhausted,   // per-key quota (429 + Retry-After)
  kUnavailable,         // saturated, not ready, draining (503 + Retry-After)
  kDeadlineExceeded,    // request timeout passed before it ran (504)
  kCancelled,           // the caller went away or cancelled (499)
  kUnimplemented,       // (501)
  kInternal,            // a bug or a backend failure (500)
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Prefixes context to the message, keeping the code: "loading resnet v2: <message>".
  Status WithContext(std::string_view context) const;

  // When the caller may try again (a spent budget: at the end of its period), for Retry-After; 0: the
  // code's own default.
  int64_t retry_after_s() const { return retry_after_s_; }
  Status WithRetryAfter(int64_t seconds) const {
    Status s = *this;
    s.retry_after_s_ = seconds;
    return s;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  int64_t retry_after_s_ = 0;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status PayloadTooLarge(std::string m) { return {StatusCode::kPayloadTooLarge, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

}  // namespace ferry

#define FERRY_RETURN_IF_ERROR(expr)             \
  do {                                          \
    ::ferry::Status _ferry_status = (expr);     \
    if (!_ferry_status.ok()) return _ferry_status; \
  } while (0)
