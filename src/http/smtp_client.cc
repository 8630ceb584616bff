#include "http/smtp_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace ferry {
namespace {

struct Reader {
  std::string_view data;
  size_t offset = 0;
};

size_t ReadBody(char* buffer, size_t size, size_t count, void* user) {
  auto* r = static_cast<Reader*>(user);
  const size_t n = std::min(size * count, r->data.size() - r->offset);
  std::memcpy(buffer, r->data.data() + r->offset, n);
  r->offset += n;
  return n;
}

std::string HttpDate(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[64];
  std::strftime(out, sizeof(out), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return out;
}

}  // namespace

std::string RenderMail(const AlertMail& mail, int64_t unix_ms) {
  std::string to;
  for (const std::string& a : mail.to) to += (to.empty() ? "" : ", ") + a;
  const std::string domain = mail.from.substr(mail.from.find('@') + 1);
  // A body line that starts with "." is escaped by libcurl (SMTP dot-stuffing), so the text goes as it is.
  return fmt::format(
      "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}@{}>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
      mail.from, to, mail.subject, HttpDate(unix_ms), mail.id, domain, mail.body);
}

Status SendSmtpMail(const AlertMail& mail, const EmailAlertTarget& relay, std::chrono::milliseconds timeout) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (mail.to.empty()) return InvalidArgument("an alert e-mail needs a recipient");
  const std::string message =
      RenderMail(mail, std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count());
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Unavailable("libcurl could not start a transfer");
  curl_slist* recipients = nullptr;
  for (const std::string& a : mail.to) recipients = curl_slist_append(recipients, ("<" + a + ">").c_str());
  Reader reader{message, 0};
  const std::string from = "<" + mail.from + ">";
  curl_easy_setopt(curl, CURLOPT_URL, relay.smtp_url.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, recipients);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
  curl_easy_setopt(curl, CURLOPT_READDATA, &reader);
  curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  if (relay.starttls) curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  std::string password;
  if (!relay.username.empty()) {
    const char* value = std::getenv(relay.password_env.c_str());
    password = value != nullptr ? value : "";
    curl_easy_setopt(curl, CURLOPT_USERNAME, relay.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, password.c_str());
  }
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(curl);
  long response = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response);
  curl_slist_free_all(recipients);
  curl_easy_cleanup(curl);
  if (rc == CURLE_OK) return Status::Ok();
  const std::string why = error[0] != '\0' ? error : curl_easy_strerror(rc);
  // 5xx from the relay (a refused recipient or sender) will not change by trying again.
  if (response >= 500 && response < 600) {
    return InvalidArgument(fmt::format("the SMTP relay refused the message ({}): {}", response, why));
  }
  return Unavailable(fmt::format("sending through {} failed: {}", relay.smtp_url, why));
}

}  // namespace ferry
