#include "jobs/webhook_target.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "common/ascii.h"

namespace ferry {
namespace {

constexpr size_t kMaxUrlBytes = 2048;

IpAddress FromV4(const uint8_t v4[4]) {
  IpAddress a;
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  std::memcpy(&a.bytes[12], v4, 4);
  return a;
}

struct NamedRange {
  const char* cidr;
  const char* reason;
};

// IPv4 ranges are written as IPv4 and matched through the mapped form.
constexpr NamedRange kForbidden[] = {
    {"0.0.0.0/8", "unspecified"},
    {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "shared (carrier-grade NAT)"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local (cloud metadata)"},
    {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "reserved"},
    {"192.0.2.0/24", "documentation"},
    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "benchmarking"},
    {"198.51.100.0/24", "documentation"},
    {"203.0.113.0/24", "documentation"},
    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved or broadcast"},
    {"::/128", "unspecified"},
    {"::1/128", "loopback"},
    {"100::/64", "discard"},
    {"2001:db8::/32", "documentation"},
    {"fc00::/7", "private (unique local)"},
    {"fe80::/10", "link-local"},
    {"fec0::/10", "site-local"},
    {"ff00::/8", "multicast"},
};

// The IPv4 address an IPv6 address carries: IPv4-compatible (::a.b.c.d) or NAT64 (64:ff9b::a.b.c.d).
// (IPv4-mapped addresses are IPv4 already.)
std::optional<IpAddress> EmbeddedV4(const IpAddress& a) {
  static const uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  static const uint8_t kZero[12] = {};
  const bool compatible = std::memcmp(a.bytes.data(), kZero, 12) == 0 &&
                          !(a.bytes[12] == 0 && a.bytes[13] == 0 && a.bytes[14] == 0 && a.bytes[15] <= 1);
  if (compatible || std::memcmp(a.bytes.data(), kNat64, 12) == 0) return FromV4(&a.bytes[12]);
  return std::nullopt;
}

bool IsLocalhostName(const std::string& name) {
  const std::string host = NormalizeHostName(name);
  return host == "localhost" || (host.size() > 10 && host.substr(host.size() - 10) == ".localhost");
}

bool IsHostNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::string NormalizeHostName(std::string host) {
  host = AsciiLower(host);
  while (!host.empty() && host.back() == '.') host.pop_back();
  return host;
}

bool IpAddress::is_v4() const {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes.data(), kMapped, 12) == 0;
}

std::string IpAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, &bytes[12], text, sizeof(text));
  } else {
    inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
  }
  return text;
}

std::optional<IpAddress> ParseIpAddress(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string s(text);
  if (s.find(':') != std::string::npos) {
    IpAddress a;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    return a;
  }
  // inet_aton stops at whitespace and accepts what came before; only address characters count here.
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'x' && c != 'X') return std::nullopt;
  }
  in_addr v4{};
  if (inet_aton(s.c_str(), &v4) == 0) return std::nullopt;
  return FromV4(reinterpret_cast<const uint8_t*>(&v4.s_addr));
}

bool IpNetwork::Contains(const IpAddress& a) const {
  const int full = prefix_bits / 8;
  if (std::memcmp(base.bytes.data(), a.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  const int rest = prefix_bits % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (base.bytes[full] & mask) == (a.bytes[full] & mask);
}

Result<IpNetwork> ParseIpNetwork(std::string_view text) {
  const size_t slash = text.find('/');
  std::optional<IpAddress> base = ParseIpAddress(text.substr(0, slash));
  if (!base) return InvalidArgument(fmt::format("'{}' is not an IP address or network", text.substr(0, 64)));
  const int width = base->is_v4() ? 32 : 128;
  int prefix = width;
  if (slash != std::string_view::npos) {
    const std::string_view bits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (ec != std::errc() || end != bits.data() + bits.size() || prefix < 0 || prefix > width) {
      return InvalidArgument(fmt::format("'{}' has an invalid prefix length", text.substr(0, 64)));
    }
  }
  return IpNetwork{*base, prefix + (128 - width)};
}

std::optional<std::string> ForbiddenAddressReason(const IpAddress& address) {
  static const std::vector<std::pair<IpNetwork, std::string>> ranges = [] {
    std::vector<std::pair<IpNetwork, std::string>> out;
    for (const NamedRange& r : kForbidden) out.emplace_back(ParseIpNetwork(r.cidr).value(), r.reason);
    return out;
  }();
  for (const auto& [network, reason] : ranges) {
    if (network.Contains(address)) return reason;
  }
  if (std::optional<IpAddress> inner = EmbeddedV4(address)) {
    if (auto reason = ForbiddenAddressReason(*inner)) return *reason + " (embedded in an IPv6 address)";
  }
  return std::nullopt;
}

std::optional<std::string> ForbiddenUnlessAllowed(const IpAddress& address, const std::vector<IpNetwork>& allowed) {
  std::optional<std::string> reason = ForbiddenAddressReason(address);
  if (reason && std::any_of(allowed.begin(), allowed.end(), [&](const IpNetwork& n) { return n.Contains(address); })) {
    return std::nullopt;
  }
  return reason;
}

Result<WebhookTarget> CheckWebhookUrl(std::string_view url, const std::vector<IpNetwork>& allowed) {
  const auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("webhook_url is not allowed: {}", why));
  };
  if (url.size() > kMaxUrlBytes) return bad("longer than 2048 bytes");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\') return bad("it holds spaces, control characters or '\\'");
  }
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return bad("expected http://host[:port]/path or https://...");
  WebhookTarget t;
  t.scheme = AsciiLower(url.substr(0, scheme_end));
  if (t.scheme != "http" && t.scheme != "https") return bad(fmt::format("scheme '{}' (only http and https)", t.scheme.substr(0, 16)));
  std::string_view rest = url.substr(scheme_end + 3);
  if (rest.find('#') != std::string_view::npos) return bad("it has a fragment");
  const size_t path_at = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_at);
  t.path_and_query = path_at == std::string_view::npos ? "/" : std::string(rest.substr(path_at));
  if (!t.path_and_query.empty() && t.path_and_query[0] == '?') t.path_and_query = "/" + t.path_and_query;
  if (authority.find('@') != std::string_view::npos) return bad("user info in the URL");
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    t.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return bad("junk after the IPv6 address");
    if (!after.empty()) port_text = after.substr(1);
    t.address = ParseIpAddress(t.host);
    if (!t.address || t.address->is_v4()) return bad("the bracketed host is not an IPv6 address");
  } else {
    const size_t colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    if (t.host.empty()) return bad("no host");
    for (char c : t.host) {
      if (!IsHostNameChar(c)) return bad("the host has characters a host name cannot have");
    }
    std::string host = t.host;
    while (!host.empty() && host.back() == '.') host.pop_back();
    t.address = ParseIpAddress(host);
  }
  t.port = t.scheme == "https" ? 443 : 80;
  if (!port_text.empty() || (authority.size() > 0 && authority.back() == ':')) {
    int port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
      return bad("invalid port");
    }
    t.port = static_cast<uint16_t>(port);
  }
  std::optional<std::string> reason;
  if (t.address) {
    reason = ForbiddenUnlessAllowed(*t.address, allowed);
  } else if (IsLocalhostName(t.host)) {
    reason = "loopback";
  }
  if (reason) {
    return bad(fmt::format("{} is a {} address (allow-list it in the server's configuration to use it)",
                           t.address ? t.address->ToString() : t.host, *reason));
  }
  return t;
}

}  // namespace ferry
