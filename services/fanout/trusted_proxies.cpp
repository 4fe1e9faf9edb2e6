#include "services/fanout/trusted_proxies.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "common/config/ascii_text.hpp"

namespace jetstream::fanout {
namespace {

constexpr std::size_t kMaxClientIpBytes = 64;

using config::trim_ows;

std::string_view strip_brackets(std::string_view ip) {
  ip = trim_ows(ip);
  if (!ip.empty() && ip.front() == '[') ip.remove_prefix(1);
  if (!ip.empty() && ip.back() == ']') ip.remove_suffix(1);
  return ip;
}

struct Address {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
};

/// An IPv4 or IPv6 literal; IPv4-mapped IPv6 becomes IPv4.
std::optional<Address> parse_address(std::string_view text) {
  text = strip_brackets(text);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  Address address;
  if (::inet_pton(AF_INET, buffer, address.bytes.data()) == 1) return address;
  if (::inet_pton(AF_INET6, buffer, address.bytes.data()) != 1) return std::nullopt;
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(address.bytes.data(), kMapped, sizeof kMapped) == 0) {
    std::memmove(address.bytes.data(), address.bytes.data() + 12, 4);
    std::memset(address.bytes.data() + 4, 0, 12);
    return address;
  }
  address.v6 = true;
  return address;
}

std::string clean(std::string_view ip) {
  ip = strip_brackets(ip);
  return std::string(ip.substr(0, kMaxClientIpBytes));
}

}  // namespace

std::optional<TrustedProxies> TrustedProxies::parse(std::string_view spec, std::string* error) {
  auto failed = [&](std::string why) -> std::optional<TrustedProxies> {
    if (error != nullptr) *error = std::move(why);
    return std::nullopt;
  };
  TrustedProxies trusted;
  spec = trim_ows(spec);
  if (spec == "*") return trusted;
  trusted.everyone_ = false;
  while (!spec.empty()) {
    const std::size_t comma = spec.find(',');
    const std::string_view item = trim_ows(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    if (item.empty()) continue;
    const std::size_t slash = item.find('/');
    const auto address = parse_address(item.substr(0, slash));
    if (!address) return failed("not an IP address or CIDR block: " + std::string(item));
    Block block;
    block.v6 = address->v6;
    block.bytes = address->bytes;
    const unsigned max_bits = address->v6 ? 128 : 32;
    block.prefix_bits = max_bits;
    if (slash != std::string_view::npos) {
      const std::string_view bits = item.substr(slash + 1);
      unsigned value = 0;
      const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
      if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() ||
          value > max_bits) {
        return failed("bad prefix length in " + std::string(item));
      }
      block.prefix_bits = value;
    }
    trusted.blocks_.push_back(block);
  }
  return trusted;
}

bool TrustedProxies::trusts(std::string_view text) const {
  if (everyone_) return true;
  const auto address = parse_address(text);
  if (!address) return false;
  for (const Block& block : blocks_) {
    if (block.v6 != address->v6) continue;
    unsigned bits = block.prefix_bits;
    std::size_t i = 0;
    for (; bits >= 8; bits -= 8, ++i) {
      if (block.bytes[i] != address->bytes[i]) break;
    }
    if (bits >= 8) continue;  // a whole byte differed
    const auto mask = static_cast<std::uint8_t>(0xff00u >> bits);
    if (bits == 0 || (block.bytes[i] & mask) == (address->bytes[i] & mask)) return true;
  }
  return false;
}

std::string select_client_ip(std::string_view peer, std::string_view forwarded_for,
                             std::string_view real_ip, const TrustedProxies& trusted) {
  if (!trusted.trusts(peer)) return clean(peer);
  forwarded_for = trim_ows(forwarded_for);
  if (!forwarded_for.empty()) {
    std::string_view rest = forwarded_for;
    std::string_view leftmost;
    while (!rest.empty()) {
      const std::size_t comma = rest.rfind(',');
      const std::string_view entry =
          trim_ows(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
      if (entry.empty()) continue;
      if (!trusted.trusts(entry)) return clean(entry);
      leftmost = entry;
    }
    if (!leftmost.empty()) return clean(leftmost);  // every hop trusted: the leftmost
  }
  if (!trim_ows(real_ip).empty()) return clean(real_ip);
  return clean(peer);
}

}  // namespace jetstream::fanout
