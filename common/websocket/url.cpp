#include "common/websocket/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/config/ascii_text.hpp"

namespace jetstream::websocket {
namespace {

using config::iequals_ascii;

bool fail(std::string* error, std::string_view why) {
  if (error != nullptr) *error = std::string(why);
  return false;
}

bool valid_host_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::string WebSocketUrl::host_header() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) out += ":" + std::to_string(port);
  return out;
}

std::string WebSocketUrl::to_string() const {
  const char* scheme = http ? (tls ? "https://" : "http://") : (tls ? "wss://" : "ws://");
  return std::string(scheme) + host_header() + target;
}

namespace {

std::optional<WebSocketUrl> parse_url_with_schemes(std::string_view text, bool http,
                                                   std::string* error) {
  const std::string_view plain = http ? "http" : "ws";
  const std::string_view secure = http ? "https" : "wss";
  const std::string wanted =
      "(want " + std::string(plain) + ":// or " + std::string(secure) + "://)";
  WebSocketUrl url;
  url.http = http;
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    fail(error, "missing scheme " + wanted);
    return std::nullopt;
  }
  const std::string_view scheme = text.substr(0, scheme_end);
  if (iequals_ascii(scheme, secure)) {
    url.tls = true;
  } else if (!iequals_ascii(scheme, plain)) {
    fail(error, "unsupported scheme " + wanted);
    return std::nullopt;
  }
  std::string_view rest = text.substr(scheme_end + 3);
  if (rest.find('#') != std::string_view::npos) {
    fail(error, "fragments are not allowed");
    return std::nullopt;
  }
  const auto authority_end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, authority_end);
  const std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    fail(error, "userinfo is not allowed");
    return std::nullopt;
  }

  std::string_view host;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      fail(error, "unterminated IPv6 address");
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        fail(error, "garbage after IPv6 address");
        return std::nullopt;
      }
      port_text = after.substr(1);
      if (port_text.empty()) {
        fail(error, "empty port");
        return std::nullopt;
      }
    }
    if (host.empty() ||
        host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      fail(error, "invalid IPv6 address");
      return std::nullopt;
    }
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) {
        fail(error, "empty port");
        return std::nullopt;
      }
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), valid_host_char)) {
      fail(error, "invalid host");
      return std::nullopt;
    }
  }
  url.host = std::string(host);
  url.port = url.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      fail(error, "invalid port");
      return std::nullopt;
    }
    url.port = static_cast<std::uint16_t>(value);
  }
  if (target.empty()) {
    url.target = "/";
  } else if (target.front() == '?') {
    url.target = "/" + std::string(target);
  } else {
    url.target = std::string(target);
  }
  for (const char c : url.target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      fail(error, "path or query holds a space, control or non-ASCII byte (percent-encode it)");
      return std::nullopt;
    }
  }
  return url;
}

}  // namespace

std::optional<WebSocketUrl> parse_url(std::string_view text, std::string* error) {
  return parse_url_with_schemes(text, false, error);
}

std::optional<WebSocketUrl> parse_http_url(std::string_view text, std::string* error) {
  return parse_url_with_schemes(text, true, error);
}

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  const auto question = target.find('?');
  if (question == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return std::string(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return std::nullopt;
}

std::string with_cursor(std::string_view target, std::optional<std::int64_t> cursor) {
  const auto question = target.find('?');
  std::string out(target.substr(0, question));
  std::string query;
  if (question != std::string_view::npos) {
    std::string_view rest = target.substr(question + 1);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      if (!pair.empty() && pair.substr(0, pair.find('=')) != "cursor") {
        if (!query.empty()) query += '&';
        query += pair;
      }
      if (amp == std::string_view::npos) break;
      rest = rest.substr(amp + 1);
    }
  }
  if (cursor) {
    if (!query.empty()) query += '&';
    query += "cursor=" + std::to_string(*cursor);
  }
  if (!query.empty()) out += "?" + query;
  return out;
}

}  // namespace jetstream::websocket
