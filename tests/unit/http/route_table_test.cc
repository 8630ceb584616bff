#include "http/route_table.h"

#include <gtest/gtest.h>

#include <set>

namespace ferry {
namespace {

// The guard against an unguarded route: every row has a decision, a known method and a well-formed
// pattern, and no two rows claim the same method and path.
TEST(RouteTableTest, EveryRouteHasAnAccessDecision) {
  std::set<std::pair<std::string, std::string>> seen;
  for (const Route& r : Routes()) {
    SCOPED_TRACE(std::string(r.method) + " " + std::string(r.pattern));
    EXPECT_NE(r.access, Access::kUndecided);
    EXPECT_NE(AccessName(r.access), "undecided");
    EXPECT_TRUE(r.method == "GET" || r.method == "POST" || r.method == "PUT" || r.method == "DELETE");
    ASSERT_TRUE(r.pattern.starts_with("/"));
    EXPECT_FALSE(r.pattern.ends_with("/"));
    EXPECT_EQ(r.pattern.find("//"), std::string_view::npos);
    EXPECT_TRUE(seen.emplace(r.method, r.pattern).second) << "listed twice";
    if (r.websocket) EXPECT_EQ(r.method, "GET");
  }
}

TEST(RouteTableTest, AdminRoutesAreTheOperatorsAndHealthIsPublic) {
  const auto access = [](std::string_view method, std::string_view path) {
    const RouteMatch m = MatchRoute(method, path);
    return m.route == nullptr ? Access::kUndecided : m.route->access;
  };
  EXPECT_EQ(access("GET", "/v2/health/live"), Access::kPublic);
  EXPECT_EQ(access("GET", "/v2/health/ready"), Access::kPublic);
  EXPECT_EQ(access("GET", "/metrics"), Access::kPublic);
  EXPECT_EQ(access("POST", "/v2/models/cnn/infer"), Access::kInference);
  EXPECT_EQ(access("POST", "/v2/repository/index"), Access::kInference);
  EXPECT_EQ(MatchRoute("POST", "/v2/repository/index").route->scope, ModelScope::kListing);
  EXPECT_EQ(access("POST", "/v2/repository/models/cnn/load"), Access::kAdmin);
  EXPECT_EQ(access("POST", "/v2/repository/models/cnn/unload"), Access::kAdmin);
  EXPECT_EQ(access("GET", "/v1/keys"), Access::kAdmin);
  EXPECT_EQ(access("DELETE", "/v1/keys/k1"), Access::kAdmin);
  EXPECT_EQ(access("PUT", "/v1/usage/config"), Access::kAdmin);
  EXPECT_EQ(access("GET", "/v1/usage"), Access::kInference);
  EXPECT_EQ(access("POST", "/v1/schedules"), Access::kAdmin);
  EXPECT_EQ(access("GET", "/v1/schedules"), Access::kInference);
  EXPECT_EQ(access("PUT", "/v1/tables/t"), Access::kAdmin);
  EXPECT_EQ(access("GET", "/v1/tables/t/entries/k"), Access::kInference);
}

TEST(RouteTableTest, UnknownPathsAre404AndWrongMethods405WithWhatIsAllowed) {
  EXPECT_EQ(MatchRoute("GET", "/v2/nothing").route, nullptr);
  EXPECT_TRUE(MatchRoute("GET", "/v2/nothing").allowed.empty());
  EXPECT_TRUE(MatchRoute("GET", "/").allowed.empty());
  EXPECT_TRUE(MatchRoute("GET", "/v2/models/m/infer/extra").allowed.empty());
  const RouteMatch infer = MatchRoute("GET", "/v2/models/m/infer");
  EXPECT_EQ(infer.route, nullptr);
  EXPECT_EQ(infer.allowed, "POST");
  EXPECT_EQ(MatchRoute("PATCH", "/v1/jobs").allowed, "POST, GET");
  EXPECT_EQ(MatchRoute("POST", "/v1/tables/t").allowed, "GET, PUT, DELETE");
  EXPECT_EQ(MatchRoute("OPTIONS", "/v2/health/live").allowed, "GET");
}

TEST(RouteTableTest, PatternsMatchOneSegmentPerPlaceholder) {
  EXPECT_TRUE(PatternMatches("/v2/models/{model}/infer", "/v2/models/cnn/infer"));
  EXPECT_TRUE(PatternMatches("/v2/models/{model}/infer", "/v2//models/cnn/infer/"));  // as the router splits
  EXPECT_FALSE(PatternMatches("/v2/models/{model}/infer", "/v2/models/infer"));
  EXPECT_FALSE(PatternMatches("/v2/models/{model}/infer", "/v2/models/a/b/infer"));
  EXPECT_FALSE(PatternMatches("/v2", "/v2/health"));
  EXPECT_FALSE(PatternMatches("/v2/health/live", "/v2/health"));
  EXPECT_TRUE(PatternMatches("/v2/models/{model}/versions/{version}", "/v2/models/m/versions/3"));
  EXPECT_EQ(MatchRoute("GET", "/v2/models/m/versions/3/ready").route->pattern,
            "/v2/models/{model}/versions/{version}/ready");
  EXPECT_EQ(SplitPath("//v1/jobs//abc/"), (std::vector<std::string_view>{"v1", "jobs", "abc"}));
}

TEST(RouteTableTest, TrustedHostRefusesRebindingAndForeignOrigins) {
  const std::vector<std::string> none;
  const std::string localhost = "localhost:8002";
  const std::string ip = "127.0.0.1:8002";
  const std::string v6 = "[::1]:8002";
  const std::string evil = "evil.example:8002";
  EXPECT_EQ(CheckTrustedHost(&localhost, nullptr, none), "");
  EXPECT_EQ(CheckTrustedHost(&ip, nullptr, none), "");
  EXPECT_EQ(CheckTrustedHost(&v6, nullptr, none), "");
  EXPECT_NE(CheckTrustedHost(&evil, nullptr, none), "");
  EXPECT_NE(CheckTrustedHost(nullptr, nullptr, none), "");
  const std::string localhost_evil = "localhost.evil.example";
  EXPECT_NE(CheckTrustedHost(&localhost_evil, nullptr, none), "");
  const std::string bad_v6 = "[::1]x";
  EXPECT_NE(CheckTrustedHost(&bad_v6, nullptr, none), "");
  EXPECT_EQ(CheckTrustedHost(&evil, nullptr, {"EVIL.example"}), "");  // named by the operator

  const std::string same = "http://localhost:8002";
  const std::string foreign = "https://evil.example";
  const std::string null_origin = "null";
  const std::string file_origin = "file://";
  EXPECT_EQ(CheckTrustedHost(&localhost, &same, none), "");
  EXPECT_NE(CheckTrustedHost(&localhost, &foreign, none), "");
  EXPECT_NE(CheckTrustedHost(&localhost, &null_origin, none), "");
  EXPECT_NE(CheckTrustedHost(&localhost, &file_origin, none), "");
}

TEST(RouteTableTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackAddress("::"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1"));
}

}  // namespace
}  // namespace ferry
