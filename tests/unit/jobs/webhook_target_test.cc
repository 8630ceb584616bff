#include "jobs/webhook_target.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry {
namespace {

TEST(WebhookTargetTest, RefusesForbiddenAddressesInEverySpelling) {
  const std::vector<std::string> forbidden = {
      "http://127.0.0.1/hook", "http://127.1/hook", "http://2130706433/hook", "http://0x7f000001/hook",
      "http://017700000001/hook", "http://0x7f.1/hook", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook",
      "http://[::ffff:7f00:1]/hook", "http://[64:ff9b::7f00:1]/hook", "http://[::127.0.0.1]/hook",
      "http://0.0.0.0/hook", "http://0/hook", "http://[::]/hook",
      "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest", "http://10.0.0.1/",
      "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/", "http://[fe80::1]/", "http://224.0.0.1/",
      "http://255.255.255.255/", "http://localhost:8080/hook", "http://LocalHost./", "http://api.localhost/",
      "https://127.0.0.1.:443/", "http://127.0.0.1:9000",
  };
  for (const std::string& url : forbidden) {
    Result<WebhookTarget> r = CheckWebhookUrl(url, {});
    EXPECT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(r.status().message().find("address"), std::string::npos) << url << ": " << r.status().message();
  }
}

TEST(WebhookTargetTest, RefusesOtherSchemesUserInfoAndMalformedUrls) {
  for (const std::string url : {"file:///etc/passwd", "gopher://example.com/", "ftp://example.com/x",
                                "http://user:pw@example.com/", "http://example.com@127.0.0.1/", "example.com/hook",
                                "http://", "http://exa mple.com/", "http://example.com:0/", "http://example.com:99999/",
                                "http://example.com:/", "http://[::1/", "http://[127.0.0.1]/", "http://ex%61mple.com/",
                                "http://example.com/#frag", "http://example.com\\@127.0.0.1/"}) {
    EXPECT_EQ(CheckWebhookUrl(url, {}).status().code(), StatusCode::kInvalidArgument) << url;
  }
}

TEST(WebhookTargetTest, AcceptsPublicTargetsAndParsesThem) {
  Result<WebhookTarget> r = CheckWebhookUrl("https://hooks.example.com:8443/v1/done?tenant=7", {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->scheme, "https");
  EXPECT_EQ(r->host, "hooks.example.com");
  EXPECT_EQ(r->port, 8443);
  EXPECT_EQ(r->path_and_query, "/v1/done?tenant=7");
  EXPECT_FALSE(r->address.has_value());  // a name: resolved, checked and pinned at delivery

  Result<WebhookTarget> ip = CheckWebhookUrl("HTTP://8.8.8.8?x=1", {});
  ASSERT_TRUE(ip.ok()) << ip.status().ToString();
  EXPECT_EQ(ip->port, 80);
  EXPECT_EQ(ip->path_and_query, "/?x=1");
  ASSERT_TRUE(ip->address.has_value());
  EXPECT_EQ(ip->address->ToString(), "8.8.8.8");
  EXPECT_TRUE(CheckWebhookUrl("http://[2606:4700::1111]/", {}).ok());
}

TEST(WebhookTargetTest, AnAllowListAdmitsExactlyWhatItCovers) {
  const std::vector<IpNetwork> allowed = {ParseIpNetwork("127.0.0.1").value(), ParseIpNetwork("10.1.0.0/16").value()};
  EXPECT_TRUE(CheckWebhookUrl("http://127.0.0.1:9000/hook", allowed).ok());
  EXPECT_TRUE(CheckWebhookUrl("http://2130706433:9000/hook", allowed).ok());  // the same address
  EXPECT_FALSE(CheckWebhookUrl("http://127.0.0.2:9000/hook", allowed).ok());
  EXPECT_TRUE(CheckWebhookUrl("http://10.1.200.3/", allowed).ok());
  EXPECT_FALSE(CheckWebhookUrl("http://10.2.0.1/", allowed).ok());
  EXPECT_FALSE(CheckWebhookUrl("http://localhost/", allowed).ok());  // names are checked at delivery
}

TEST(WebhookTargetTest, NetworksParseAndMatch) {
  EXPECT_FALSE(ParseIpNetwork("10.0.0.0/33").ok());
  EXPECT_FALSE(ParseIpNetwork("fd00::/129").ok());
  EXPECT_FALSE(ParseIpNetwork("example.com/8").ok());
  IpNetwork n = ParseIpNetwork("172.16.0.0/12").value();
  EXPECT_TRUE(n.Contains(*ParseIpAddress("172.31.255.255")));
  EXPECT_FALSE(n.Contains(*ParseIpAddress("172.32.0.0")));
  EXPECT_FALSE(ParseIpAddress("1.2.3.4 ").has_value());
  EXPECT_FALSE(ParseIpAddress("1.2.3.4.5").has_value());
  EXPECT_EQ(ForbiddenAddressReason(*ParseIpAddress("8.8.4.4")), std::nullopt);
  EXPECT_EQ(*ForbiddenAddressReason(*ParseIpAddress("169.254.169.254")), "link-local (cloud metadata)");
}

}  // namespace
}  // namespace ferry
