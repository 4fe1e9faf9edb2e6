// Which network addresses the HTTP client may connect to. URLs reach it from data strangers write
// (DID documents, did:web hosts, relay host lists), so a name is resolved first and every address
// it resolves to is checked here: only public unicast addresses, unless the host is one the
// operator named (--plc-url, --pds, --relay, --allow-hosts). No Beast here: cheap to test.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace jetstream::http {

/// Why an address is not public unicast. Each is a metric reason.
enum class AddressClass : std::uint8_t {
  public_unicast,
  loopback,     ///< 127.0.0.0/8, ::1
  private_use,  ///< 10/8, 172.16/12, 192.168/16, fc00::/7
  link_local,   ///< 169.254/16 (cloud metadata services live here), fe80::/10
  cgnat,        ///< 100.64/10
  multicast,    ///< 224/4, ff00::/8
  unspecified,  ///< 0.0.0.0/8, ::
  reserved,     ///< documentation, benchmarking, 240/4, broadcast, and IPv6 outside 2000::/3
};
inline constexpr std::size_t kAddressClassCount = 8;
std::string_view to_string(AddressClass address_class);

/// The class of an IPv4 address given as 4 bytes in network order.
AddressClass classify_ipv4(const std::array<std::uint8_t, 4>& address);
/// The class of an IPv6 address (16 bytes); IPv4-mapped, NAT64 and 6to4 addresses are judged by
/// the IPv4 address inside them.
AddressClass classify_ipv6(const std::array<std::uint8_t, 16>& address);
/// The class of an address literal ("10.0.0.1", "::1"); nullopt when it is not one.
std::optional<AddressClass> classify_address(std::string_view literal);

class AddressPolicy {
 public:
  /// Hosts whose addresses are not checked and that may be reached over plain http: the ones the
  /// operator named. Compared case-insensitively, without port.
  void allow_host(std::string_view host);
  bool is_operator_named(std::string_view host) const;

  /// Whether `host`, resolved to an address of class `address_class`, may be connected to.
  bool permits(std::string_view host, AddressClass address_class) const {
    return address_class == AddressClass::public_unicast || is_operator_named(host);
  }
  /// Whether a request to `host` may use plain http (only operator-named hosts).
  bool permits_plain_http(std::string_view host) const { return is_operator_named(host); }

 private:
  std::unordered_set<std::string> named_hosts_;
};

}  // namespace jetstream::http
