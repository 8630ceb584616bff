#include "http/smtp_client.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(SmtpClientTest, TheMessageHasItsHeadersThenTheBody) {
  AlertMail mail;
  mail.id = "alert_b_2026-12-03_50";
  mail.from = "ferry@example.com";
  mail.to = {"a@example.com", "b@example.com"};
  mail.subject = "Ferry budget 'b': 50% spent";
  mail.body = "Spent: 1\r\n";
  const std::string m = RenderMail(mail, 1'796'292'000'000);
  EXPECT_EQ(m.rfind("From: ferry@example.com\r\nTo: a@example.com, b@example.com\r\n", 0), 0u) << m;
  EXPECT_NE(m.find("Subject: Ferry budget 'b': 50% spent\r\n"), std::string::npos);
  EXPECT_NE(m.find("Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"), std::string::npos) << m;
  EXPECT_NE(m.find("Message-ID: <alert_b_2026-12-03_50@example.com>\r\n"), std::string::npos);
  EXPECT_NE(m.find("\r\n\r\nSpent: 1\r\n"), std::string::npos);
}

TEST(SmtpClientTest, ARelayThatIsNotThereIsUnavailable) {
  AlertMail mail;
  mail.id = "x";
  mail.from = "f@example.com";
  mail.to = {"t@example.com"};
  EmailAlertTarget relay;
  relay.smtp_url = "smtp://127.0.0.1:1";  // nothing listens on port 1
  Status s = SendSmtpMail(mail, relay, std::chrono::milliseconds(2000));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
}

}  // namespace
}  // namespace ferry
