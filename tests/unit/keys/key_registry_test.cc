#include "keys/key_registry.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using ferry::testing::TempRepository;
using std::chrono::milliseconds;

TEST(ApiKeyTest, SecretsAreRandomAndOnlyTheirHashIsKept) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string s = NewKeySecret();
    EXPECT_EQ(s.size(), 3u + 43u);
    EXPECT_EQ(s.substr(0, 3), "fk_");
    EXPECT_TRUE(seen.insert(s).second);
  }
  // The SHA-256 of "abc", as every implementation has it.
  EXPECT_EQ(HashKeySecret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(TokenBucketTest, AllowsTheBurstThenTheRate) {
  FakeClock clock;
  TokenBucket bucket(2.0, 3, clock.Now());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bucket.Take(clock.Now())) << i;
  EXPECT_FALSE(bucket.Take(clock.Now()));
  EXPECT_EQ(bucket.WaitForNext(clock.Now()), milliseconds(500));
  clock.Advance(milliseconds(499));
  EXPECT_FALSE(bucket.Take(clock.Now()));
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(bucket.Take(clock.Now()));
  clock.Advance(std::chrono::seconds(60));  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(bucket.Take(clock.Now()));
  EXPECT_FALSE(bucket.Take(clock.Now()));
}

class KeyRegistryTest : public ::testing::Test {
 protected:
  std::unique_ptr<KeyRegistry> Open() {
    auto r = KeyRegistry::Open(dir_.root() / "keys.db", &clock_, &wall_);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return std::move(r).value();
  }
  TempRepository dir_;
  FakeClock clock_;
  FakeWallClock wall_{1'700'000'000'000};
};

TEST_F(KeyRegistryTest, AKeyAuthorizesItsModelsUntilRevokedAcrossRestarts) {
  std::string secret, id;
  {
    auto keys = Open();
    ApiKey fields;
    fields.name = "reporting";
    fields.models = {"cnn"};
    auto made = keys->Create(fields);
    ASSERT_TRUE(made.ok()) << made.status().message();
    secret = made->second;
    id = made->first.id;
    EXPECT_EQ(made->first.hash, HashKeySecret(secret));
    EXPECT_EQ(keys->Create(fields).status().code(), StatusCode::kAlreadyExists);
  }
  auto keys = Open();  // a restart keeps it
  EXPECT_TRUE(keys->Authorize(secret, "cnn", nullptr).ok());
  EXPECT_EQ(keys->Authorize(secret, "other", nullptr).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(keys->Authorize(secret, "", nullptr).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(keys->Authorize("fk_wrong", "cnn", nullptr).status().code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(keys->Revoke(id).ok());
  EXPECT_EQ(keys->Authorize(secret, "cnn", nullptr).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(keys->Revoke("key_nope").code(), StatusCode::kNotFound);
  auto again = Open();
  EXPECT_EQ(again->Authorize(secret, "cnn", nullptr).status().code(), StatusCode::kUnauthenticated);
  ASSERT_EQ(again->List().size(), 1u);
  EXPECT_NE(again->List()[0].revoked_ms, 0);
}

TEST_F(KeyRegistryTest, ARateLimitedKeyIsTurnedAwayWithAWait) {
  auto keys = Open();
  ApiKey fields;
  fields.name = "batchy";
  fields.rate_per_s = 1;
  fields.burst = 2;
  const std::string secret = keys->Create(fields)->second;
  EXPECT_TRUE(keys->Authorize(secret, "", nullptr).ok());  // no models listed: every route
  EXPECT_TRUE(keys->Authorize(secret, "m", nullptr).ok());
  milliseconds wait{0};
  EXPECT_EQ(keys->Authorize(secret, "m", &wait).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(wait, milliseconds(1000));
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_TRUE(keys->Authorize(secret, "m", nullptr).ok());
}

TEST_F(KeyRegistryTest, ATokenRateAdmitsUntilInDebtThenWaitsForTheRateToPayItBack) {
  auto keys = Open();
  ApiKey fields;
  fields.name = "chatty";
  fields.tokens_per_s = 100;  // burst: one second of the rate
  ASSERT_TRUE(keys->Create(fields).ok());
  EXPECT_EQ(keys->List().front().token_burst, 100);
  EXPECT_TRUE(keys->AdmitTokens("chatty").ok());
  keys->ChargeTokens("chatty", 350);  // one long answer: 250 tokens of debt
  milliseconds wait{0};
  Status refused = keys->AdmitTokens("chatty", &wait);
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("100 tokens per second"), std::string::npos) << refused.message();
  EXPECT_EQ(wait, milliseconds(2510));  // back to one whole token
  EXPECT_EQ(refused.retry_after_s(), 3);
  clock_.Advance(milliseconds(2500));
  EXPECT_FALSE(keys->AdmitTokens("chatty").ok());
  clock_.Advance(milliseconds(10));
  EXPECT_TRUE(keys->AdmitTokens("chatty").ok());
  // Names with no token rate (another key, an unkeyed caller) always pass and are never charged.
  keys->ChargeTokens("(none)", 1'000'000);
  EXPECT_TRUE(keys->AdmitTokens("(none)").ok());
}

TEST_F(KeyRegistryTest, TokenRatesSurviveARestartAndARevokedKeyLosesItsBucket) {
  std::string id;
  {
    auto keys = Open();
    ApiKey fields;
    fields.name = "chatty";
    fields.tokens_per_s = 10;
    fields.token_burst = 50;
    id = keys->Create(fields)->first.id;
  }
  auto keys = Open();
  ASSERT_EQ(keys->List().size(), 1u);
  EXPECT_EQ(keys->List().front().tokens_per_s, 10);
  EXPECT_EQ(keys->List().front().token_burst, 50);
  keys->ChargeTokens("chatty", 60);
  EXPECT_FALSE(keys->AdmitTokens("chatty").ok());
  ASSERT_TRUE(keys->Revoke(id).ok());
  EXPECT_TRUE(keys->AdmitTokens("chatty").ok()) << "no longer a key: its name is just a name";
}

TEST_F(KeyRegistryTest, BadFieldsAreRefused) {
  auto keys = Open();
  for (auto [name, rate, burst] : {std::tuple{"", 0.0, 0}, {"a b", 0.0, 0}, {"ok", -1.0, 0}, {"ok", 5.0, -3}}) {
    ApiKey fields;
    fields.name = name;
    fields.rate_per_s = rate;
    fields.burst = burst;
    EXPECT_EQ(keys->Create(fields).status().code(), StatusCode::kInvalidArgument) << name << " " << rate;
  }
  ApiKey fields;
  fields.name = "m";
  fields.models = {"../x"};
  EXPECT_EQ(keys->Create(fields).status().code(), StatusCode::kInvalidArgument);
  for (auto [rate, burst] : {std::pair{-1.0, int64_t{0}}, {2e9, int64_t{0}}, {5.0, int64_t{-1}}, {5.0, int64_t{2'000'000'000}}}) {
    ApiKey tokens;
    tokens.name = "tokens";
    tokens.tokens_per_s = rate;
    tokens.token_burst = burst;
    Status s = keys->Create(tokens).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << rate << " " << burst;
    EXPECT_NE(s.message().find("token"), std::string::npos) << s.message();
  }
  ApiKey huge;  // no burst given: the default is not computed from a rate out of range
  huge.name = "huge";
  huge.rate_per_s = 1e300;
  EXPECT_EQ(keys->Create(huge).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KeyRegistryTest, AKeysFileNamesHashesAndIsCheckedWhole) {
  auto keys = Open();
  const std::string secret = "fk_from_the_operators_vault";
  const auto path = dir_.root() / "keys.yaml";
  std::ofstream(path) << "- {name: ops, sha256: " << HashKeySecret(secret) << ", models: [cnn], rate_per_s: 5}\n";
  ASSERT_TRUE(keys->LoadFile(path).ok());
  EXPECT_TRUE(keys->Authorize(secret, "cnn", nullptr).ok());
  EXPECT_EQ(keys->Revoke("file_ops").code(), StatusCode::kFailedPrecondition);
  std::ofstream(path) << "- {name: a, sha256: " << std::string(64, 'a') << "}\n- {name: b, sha256: nothex}\n";
  auto other = KeyRegistry::Open(dir_.root() / "other.db", &clock_, &wall_).value();
  Status s = other->LoadFile(path);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("entry 2"), std::string::npos) << s.message();
  EXPECT_EQ(other->List().size(), 0u) << "nothing of a bad file is taken";
  std::ofstream(path) << "- {name: a, sha256: " << std::string(64, 'a') << ", colour: red}\n";
  EXPECT_NE(other->LoadFile(path).message().find("colour"), std::string::npos);
  std::ofstream(path) << "- {name: a, sha256: " << std::string(64, 'a') << "}\n- {name: a, sha256: "
                       << std::string(64, 'b') << "}\n";
  EXPECT_NE(other->LoadFile(path).message().find("repeats"), std::string::npos) << "a name twice in one file";
  EXPECT_EQ(other->List().size(), 0u);
  std::ofstream(path) << "- {name: a, sha256: " << std::string(64, 'a') << ", tokens_per_s: 20, token_burst: 400}\n";
  ASSERT_TRUE(other->LoadFile(path).ok());
  EXPECT_EQ(other->List().front().token_burst, 400);
  other->ChargeTokens("a", 400);
  EXPECT_FALSE(other->AdmitTokens("a").ok());
  std::ofstream(path) << "{not: [a list";
  EXPECT_EQ(other->LoadFile(path).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry
