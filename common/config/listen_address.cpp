#include "common/config/listen_address.hpp"

#include <charconv>

namespace jetstream::config {
namespace {

constexpr std::size_t kMaxHostLength = 253;

bool is_hostname_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool is_ipv6_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

std::optional<ListenAddress> fail(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
  return std::nullopt;
}

}  // namespace

std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string* error) {
  if (text.empty()) return fail(error, "empty listen address (expected host:port, e.g. :6008)");
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return fail(error, "missing port (expected host:port, e.g. :6008)");
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);

  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return fail(error, "malformed IPv6 address (expected [address]:port, e.g. [::1]:6008)");
    }
    host = host.substr(1, host.size() - 2);
    std::string_view address = host;
    if (const std::size_t percent = host.find('%'); percent != std::string_view::npos) {
      address = host.substr(0, percent);
      const std::string_view zone = host.substr(percent + 1);
      if (zone.empty()) return fail(error, "empty IPv6 zone");
      for (const char c : zone) {
        if (!is_hostname_char(c)) return fail(error, "invalid character in IPv6 zone");
      }
    }
    if (address.find(':') == std::string_view::npos) {
      return fail(error, "an address in brackets must be IPv6");
    }
    for (const char c : address) {
      if (!is_ipv6_char(c)) return fail(error, "invalid character in IPv6 address");
    }
  } else {
    if (host.find(':') != std::string_view::npos) {
      return fail(error, "an IPv6 host must be in brackets, e.g. [::1]:6008");
    }
    if (host.size() > kMaxHostLength) return fail(error, "host name too long");
    for (const char c : host) {
      if (!is_hostname_char(c)) return fail(error, "invalid character in host");
    }
  }

  if (port_text.empty()) return fail(error, "missing port (expected host:port, e.g. :6008)");
  if (port_text.size() > 5) return fail(error, "port out of range (0-65535)");
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size()) {
    return fail(error, "port is not a number");
  }
  if (port > 65535) return fail(error, "port out of range (0-65535)");
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

std::string format_listen_address(const ListenAddress& address) {
  std::string out;
  if (address.host.find(':') != std::string::npos) {
    out = "[" + address.host + "]";
  } else {
    out = address.host;
  }
  out += ':';
  out += std::to_string(address.port);
  return out;
}

}  // namespace jetstream::config
