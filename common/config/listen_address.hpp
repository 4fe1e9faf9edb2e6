// Listen addresses as services take them on the command line (`--listen-addr :6008`), in Go's
// `host:port` syntax.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jetstream::config {

/// Where a server listens. An empty `host` means every interface (IPv6 and IPv4); port 0 lets
/// the kernel pick a free port.
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;

  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

/// Parses `:6008` (every interface), `127.0.0.1:6008`, `[::1]:6008`, `localhost:0`. The host is
/// a hostname or IPv4 address, or an IPv6 address in brackets; the port is decimal, 0-65535.
/// Anything else (no port, unbracketed IPv6, spaces, ...) is nullopt, with the reason in `error`
/// when given.
std::optional<ListenAddress> parse_listen_address(std::string_view text,
                                                  std::string* error = nullptr);

/// The inverse of `parse_listen_address`: `:6008`, `127.0.0.1:6008`, `[::1]:6008`.
std::string format_listen_address(const ListenAddress& address);

}  // namespace jetstream::config
