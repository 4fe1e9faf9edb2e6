// Which address a client's per-IP limit is keyed on. Behind a proxy every connection comes from
// the proxy, and the client's address is in `X-Forwarded-For` / `X-Real-IP`; but those headers
// are whatever the sender wrote, so they are believed only from peers the operator trusts
// (`--trusted-proxies`). Pure code: no sockets, no Asio.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jetstream::fanout {

/// A set of addresses and CIDR blocks (IPv4 and IPv6), or "everyone".
class TrustedProxies {
 public:
  /// Every peer is trusted: v1's behaviour (its RealIP reads the headers from anyone).
  TrustedProxies() = default;

  /// `*` = everyone; empty = no one (the headers are ignored); otherwise comma-separated
  /// addresses or blocks, e.g. `10.0.0.0/8,fc00::/7,127.0.0.1`. nullopt with the reason in
  /// `error` for anything else.
  static std::optional<TrustedProxies> parse(std::string_view spec, std::string* error = nullptr);

  bool trusts_everyone() const noexcept { return everyone_; }
  /// Whether `address` (an IPv4 or IPv6 literal, brackets allowed; an IPv4-mapped IPv6 address
  /// counts as IPv4) is trusted. Anything unparsable is not, unless everyone is.
  bool trusts(std::string_view address) const;

 private:
  struct Block {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};
    unsigned prefix_bits = 0;
  };
  bool everyone_ = true;
  std::vector<Block> blocks_;
};

/// The client address for a request that came from `peer`:
/// - a peer that is not trusted is the client (its headers are ignored);
/// - otherwise `X-Forwarded-For` is read from the right (each proxy appends the address it saw):
///   the first entry that is not a trusted proxy is the client; when every entry is trusted, the
///   leftmost one (with everyone trusted this is v1's "first entry" rule);
/// - without `X-Forwarded-For`, `X-Real-IP`; without either, the peer.
/// Brackets are removed and the result is cut to 64 bytes (it becomes a map key and log field).
std::string select_client_ip(std::string_view peer, std::string_view forwarded_for,
                             std::string_view real_ip, const TrustedProxies& trusted);

}  // namespace jetstream::fanout
