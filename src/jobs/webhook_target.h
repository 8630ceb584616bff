#pragma once
// Webhook URLs, checked against server-side request forgery before any job carries one.
//
// Only http and https, no user info, no fragment. A host that is an IP address in any spelling inet_aton
// or inet_pton accepts ("127.1", "2130706433", "0x7f000001", "017700000001", "[::ffff:127.0.0.1]")
// is parsed to its address and refused when it is loopback, unspecified, private, shared (CGNAT),
// link-local (the cloud metadata address 169.254.169.254 among them), multicast, broadcast or
// reserved, or an IPv6 form of one of those (IPv4-mapped, IPv4-compatible, NAT64), unless an allow-list
// entry covers it. "localhost" and names under ".localhost" are refused like loopback. Other names are
// resolved once at delivery and the address is checked the same way and pinned (so a name cannot be
// re-pointed between the check and the connection); that is the caller's part. Thread-compatible.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ferry {

// An IPv4 or IPv6 address; IPv4 is stored as its IPv4-mapped IPv6 form (::ffff:a.b.c.d).
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4() const;
  std::string ToString() const;
};

// Parses an address in any spelling the C library accepts (for IPv4, inet_aton's: decimal, octal and
// hex parts, and the 1- to 3-part forms).
std::optional<IpAddress> ParseIpAddress(std::string_view text);

// An address range, "10.0.0.0/8", "127.0.0.1" (a single address), "fd00::/8".
struct IpNetwork {
  IpAddress base;
  int prefix_bits = 128;  // over the 16-byte form: an IPv4 /8 is /104
  bool Contains(const IpAddress& a) const;
};
Result<IpNetwork> ParseIpNetwork(std::string_view text);

// Why an address may not be a webhook target ("loopback", "private", ...), or nullopt when it may.
std::optional<std::string> ForbiddenAddressReason(const IpAddress& address);

// A host name as names compare: lower case, without a trailing dot ("Hooks.Example." -> "hooks.example").
std::string NormalizeHostName(std::string host);

// Why an address may not be a webhook target given the allow-list, or nullopt when it may.
std::optional<std::string> ForbiddenUnlessAllowed(const IpAddress& address, const std::vector<IpNetwork>& allowed);

struct WebhookTarget {
  std::string scheme;              // "http" or "https"
  std::string host;                // as written, without brackets
  uint16_t port = 0;
  std::string path_and_query;      // "/" at least
  std::optional<IpAddress> address;  // when the host is an IP literal
};

// Parses and checks a webhook URL. kInvalidArgument says what is wrong (a forbidden address names the
// kind of address); `allowed` lists ranges that are accepted even though they are forbidden.
Result<WebhookTarget> CheckWebhookUrl(std::string_view url, const std::vector<IpNetwork>& allowed);

}  // namespace ferry
