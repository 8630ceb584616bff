#include "jobs/webhook_signature.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(WebhookSignatureTest, MatchesTheStandardWebhooksReferenceVector) {
  // The example of the Standard Webhooks specification's reference libraries.
  auto key = ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(SignWebhook(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(WebhookSignatureTest, ChangingAnyPartChangesTheSignature) {
  const std::string key = *ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const std::string base = SignWebhook(key, "msg_1", 100, "{}");
  EXPECT_NE(SignWebhook(key, "msg_2", 100, "{}"), base);
  EXPECT_NE(SignWebhook(key, "msg_1", 101, "{}"), base);
  EXPECT_NE(SignWebhook(key, "msg_1", 100, "{ }"), base);
  EXPECT_NE(SignWebhook(key + "x", "msg_1", 100, "{}"), base);
}

TEST(WebhookSignatureTest, Base64RoundTripsEveryLength) {
  std::string bytes;
  for (int n = 0; n < 70; ++n) {
    auto decoded = Base64Decode(Base64Encode(bytes));
    ASSERT_TRUE(decoded.ok()) << n;
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(n * 37 + 200));
  }
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(WebhookSignatureTest, RefusesMalformedSecrets) {
  EXPECT_FALSE(ParseWebhookSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").ok());        // no prefix
  EXPECT_FALSE(ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!").ok());  // not base64
  EXPECT_FALSE(ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS").ok());   // bad length
  EXPECT_FALSE(ParseWebhookSecret("whsec_c2hvcnQ=").ok());                           // 5 bytes: too short
  EXPECT_FALSE(ParseWebhookSecret("whsec_").ok());
  EXPECT_FALSE(ParseWebhookSecret("whsec_" + Base64Encode(std::string(65, 'k'))).ok());
  EXPECT_TRUE(ParseWebhookSecret("whsec_" + Base64Encode(std::string(64, 'k'))).ok());
  EXPECT_TRUE(ParseWebhookSecret("whsec_" + Base64Encode(std::string(24, 'k'))).ok());
}

}  // namespace
}  // namespace ferry
