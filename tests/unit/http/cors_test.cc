#include "http/cors.h"

#include <gtest/gtest.h>

#include <optional>

namespace ferry {
namespace {

HttpRequest PreflightRequest(std::optional<std::string> origin, std::string method,
                             std::optional<std::string> headers = std::nullopt) {
  HttpRequest r;
  r.method = "OPTIONS";
  r.target = "/v2/models/m/infer";
  if (origin) r.headers.emplace_back("origin", *origin);
  r.headers.emplace_back("access-control-request-method", std::move(method));
  if (headers) r.headers.emplace_back("access-control-request-headers", *headers);
  return r;
}

std::optional<std::string> HeaderOf(const CorsPolicy::Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return std::nullopt;
}

TEST(CorsTest, OffByDefault) {
  const CorsPolicy off;
  EXPECT_FALSE(off.enabled());
  HttpResponse r;
  const std::string origin = "https://evil.example";
  off.Decorate(&origin, &r);
  EXPECT_TRUE(r.headers.empty());
  Result<CorsPolicy::Headers> pre = off.Preflight(PreflightRequest(origin, "POST"), "POST");
  ASSERT_FALSE(pre.ok());
  EXPECT_EQ(pre.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(pre.status().message().find("--cors-allow-origin"), std::string::npos);
}

TEST(CorsTest, ParsesOriginsAndRefusesWhatIsNotOne) {
  Result<CorsPolicy> ok = CorsPolicy::Parse({"https://App.Example.com:8443/", "http://localhost:3000", "http://[::1]:80"});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ok->Allows("https://app.example.com:8443"));
  EXPECT_TRUE(ok->Allows("HTTP://LOCALHOST:3000"));
  EXPECT_TRUE(ok->Allows("http://[::1]:80"));
  EXPECT_TRUE(ok->Allows("http://[::1]"));  // as a browser writes it: no default port
  EXPECT_FALSE(ok->Allows("https://app.example.com"));  // another port is another origin
  EXPECT_FALSE(ok->Allows("http://app.example.com:8443"));
  EXPECT_FALSE(ok->Allows("null"));
  for (const std::string bad : {"app.example.com", "ftp://x", "https://", "https://a/b", "https://a:99999",
                                "https://a:x", "https://a b", "*.example.com", "https://[zz]", "https://[]"}) {
    SCOPED_TRACE(bad);
    Result<CorsPolicy> parsed = CorsPolicy::Parse({bad});
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(bad), std::string::npos);
  }
}

TEST(CorsTest, DefaultPortsAreTheSameOrigin) {
  const CorsPolicy p = CorsPolicy::Parse({"https://app.example.com:443"}).value();
  EXPECT_TRUE(p.Allows("https://app.example.com"));
  EXPECT_FALSE(p.Allows("http://app.example.com"));
  EXPECT_TRUE(CorsPolicy::Parse({"http://a:80"}).value().Allows("http://a"));
  EXPECT_FALSE(CorsPolicy::Parse({"http://a:443"}).value().Allows("http://a"));
}

TEST(CorsTest, AnAllowedOriginsPreflightAndAnswer) {
  const CorsPolicy p = CorsPolicy::Parse({"https://app.example.com"}).value();
  Result<CorsPolicy::Headers> pre =
      p.Preflight(PreflightRequest("https://app.example.com", "POST", "authorization, content-type"), "POST");
  ASSERT_TRUE(pre.ok()) << pre.status().ToString();
  EXPECT_EQ(HeaderOf(*pre, "Access-Control-Allow-Origin"), "https://app.example.com");
  EXPECT_EQ(HeaderOf(*pre, "Access-Control-Allow-Methods"), "POST");
  EXPECT_EQ(HeaderOf(*pre, "Access-Control-Allow-Headers"), "authorization, content-type");
  EXPECT_EQ(HeaderOf(*pre, "Vary"), "Origin");
  EXPECT_TRUE(HeaderOf(*pre, "Access-Control-Max-Age").has_value());

  HttpResponse r;
  const std::string origin = "https://app.example.com";
  p.Decorate(&origin, &r);
  EXPECT_EQ(HeaderOf(r.headers, "Access-Control-Allow-Origin"), origin);
  EXPECT_NE(HeaderOf(r.headers, "Access-Control-Expose-Headers")->find("Inference-Header-Content-Length"),
            std::string::npos);
  const size_t before = r.headers.size();
  p.Decorate(&origin, &r);  // once only
  EXPECT_EQ(r.headers.size(), before);
}

TEST(CorsTest, PreflightsThatAreRefused) {
  const CorsPolicy p = CorsPolicy::Parse({"https://app.example.com"}).value();
  const auto code = [&](HttpRequest r, std::string_view methods) {
    Result<CorsPolicy::Headers> pre = p.Preflight(r, methods);
    return pre.ok() ? StatusCode::kOk : pre.status().code();
  };
  EXPECT_EQ(code(PreflightRequest("https://other.example", "POST"), "POST"), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(PreflightRequest(std::nullopt, "POST"), "POST"), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(PreflightRequest("https://app.example.com", "DELETE"), "GET, POST"), StatusCode::kPermissionDenied);
  EXPECT_EQ(code(PreflightRequest("https://app.example.com", "POST"), ""), StatusCode::kNotFound);
  EXPECT_EQ(code(PreflightRequest("https://app.example.com", "POST", "x-a, b c"), "POST"),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(PreflightRequest("https://app.example.com", "POST", "x-a;b"), "POST"), StatusCode::kInvalidArgument);
  HttpRequest no_method = PreflightRequest("https://app.example.com", "POST");
  no_method.headers.pop_back();
  EXPECT_EQ(code(no_method, "POST"), StatusCode::kInvalidArgument);
  HttpResponse r;
  const std::string other = "https://other.example";
  p.Decorate(&other, &r);
  EXPECT_TRUE(r.headers.empty());
}

TEST(CorsTest, AnyOriginOnlyWhenAskedFor) {
  const CorsPolicy any = CorsPolicy::Parse({"*"}).value();
  Result<CorsPolicy::Headers> pre = any.Preflight(PreflightRequest("https://whoever.example", "GET"), "GET, POST");
  ASSERT_TRUE(pre.ok());
  EXPECT_EQ(HeaderOf(*pre, "Access-Control-Allow-Origin"), "*");
  EXPECT_FALSE(HeaderOf(*pre, "Vary").has_value());
}

TEST(CorsTest, HeaderNameLists) {
  EXPECT_TRUE(IsHeaderNameList(""));
  EXPECT_TRUE(IsHeaderNameList("content-type"));
  EXPECT_TRUE(IsHeaderNameList("authorization,content-type , inference-header-content-length"));
  EXPECT_FALSE(IsHeaderNameList("a b"));
  EXPECT_FALSE(IsHeaderNameList("a:b"));
  EXPECT_FALSE(IsHeaderNameList("a\r\nb"));
}

}  // namespace
}  // namespace ferry
