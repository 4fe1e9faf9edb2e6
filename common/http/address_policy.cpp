#include "common/http/address_policy.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace jetstream::http {

std::string_view to_string(AddressClass address_class) {
  switch (address_class) {
    case AddressClass::public_unicast: return "public_unicast";
    case AddressClass::loopback: return "loopback";
    case AddressClass::private_use: return "private";
    case AddressClass::link_local: return "link_local";
    case AddressClass::cgnat: return "cgnat";
    case AddressClass::multicast: return "multicast";
    case AddressClass::unspecified: return "unspecified";
    case AddressClass::reserved: return "reserved";
  }
  return "unknown";
}

AddressClass classify_ipv4(const std::array<std::uint8_t, 4>& a) {
  if (a[0] == 0) return AddressClass::unspecified;
  if (a[0] == 127) return AddressClass::loopback;
  if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168)) {
    return AddressClass::private_use;
  }
  if (a[0] == 169 && a[1] == 254) return AddressClass::link_local;
  if (a[0] == 100 && (a[1] & 0xc0) == 64) return AddressClass::cgnat;
  if ((a[0] & 0xf0) == 224) return AddressClass::multicast;
  if ((a[0] & 0xf0) == 240) return AddressClass::reserved;       // includes 255.255.255.255
  if ((a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) ||  // IETF assignments, TEST-NET-1
      (a[0] == 198 && (a[1] & 0xfe) == 18) ||                    // benchmarking 198.18/15
      (a[0] == 198 && a[1] == 51 && a[2] == 100) ||              // TEST-NET-2
      (a[0] == 203 && a[1] == 0 && a[2] == 113) ||               // TEST-NET-3
      (a[0] == 192 && a[1] == 88 && a[2] == 99)) {               // 6to4 relay anycast
    return AddressClass::reserved;
  }
  return AddressClass::public_unicast;
}

AddressClass classify_ipv6(const std::array<std::uint8_t, 16>& a) {
  const auto embedded_v4 = [&a](std::size_t offset) {
    return classify_ipv4({a[offset], a[offset + 1], a[offset + 2], a[offset + 3]});
  };
  const bool first_ten_zero = std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; });
  if (first_ten_zero && a[10] == 0xff && a[11] == 0xff) return embedded_v4(12);  // ::ffff:v4
  if (first_ten_zero && a[10] == 0 && a[11] == 0) {
    const bool rest_zero =
        std::all_of(a.begin() + 12, a.begin() + 15, [](auto b) { return b == 0; });
    if (rest_zero && a[15] == 0) return AddressClass::unspecified;
    if (rest_zero && a[15] == 1) return AddressClass::loopback;
    return AddressClass::reserved;  // deprecated IPv4-compatible ::v4
  }
  // 64:ff9b::/96 (NAT64) carries an IPv4 address in its last 4 bytes.
  if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b &&
      std::all_of(a.begin() + 4, a.begin() + 12, [](auto b) { return b == 0; })) {
    return embedded_v4(12);
  }
  if (a[0] == 0xff) return AddressClass::multicast;
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return AddressClass::link_local;
  if ((a[0] & 0xfe) == 0xfc) return AddressClass::private_use;
  if ((a[0] & 0xe0) != 0x20) return AddressClass::reserved;  // outside global unicast 2000::/3
  if (a[0] == 0x20 && a[1] == 0x02) return embedded_v4(2);   // 6to4 2002:v4::/48
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) {
    return AddressClass::reserved;  // documentation 2001:db8::/32
  }
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00) {
    return AddressClass::reserved;  // Teredo 2001::/32 tunnels to arbitrary IPv4
  }
  return AddressClass::public_unicast;
}

std::optional<AddressClass> classify_address(std::string_view literal) {
  const std::string text(literal);
  std::array<std::uint8_t, 4> v4{};
  if (inet_pton(AF_INET, text.c_str(), v4.data()) == 1) return classify_ipv4(v4);
  std::array<std::uint8_t, 16> v6{};
  if (inet_pton(AF_INET6, text.c_str(), v6.data()) == 1) return classify_ipv6(v6);
  return std::nullopt;
}

namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

void AddressPolicy::allow_host(std::string_view host) { named_hosts_.insert(lowercase(host)); }

bool AddressPolicy::is_operator_named(std::string_view host) const {
  return named_hosts_.count(lowercase(host)) != 0;
}

}  // namespace jetstream::http
