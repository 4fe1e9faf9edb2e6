#include "tools/loadgen/protocol.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "common/config/ascii_text.hpp"
#include "common/websocket/permessage_deflate.hpp"

namespace jetstream::loadgen {
namespace {

using config::iequals_ascii;
using config::trim_ows;

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (iequals_ascii(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

/// Printable ASCII only, at most `limit` bytes: server text goes into a report line.
std::string printable(std::string_view text, std::size_t limit = 200) {
  std::string out;
  for (const char c : text.substr(0, std::min(limit, text.size()))) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : (c == '\n' ? ' ' : '?'));
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '?')) out.pop_back();
  if (text.size() > limit) out += "...";
  return out;
}

bool parse_digits(std::string_view text, std::int64_t& out) {
  if (text.empty()) return false;
  const auto result = std::from_chars(text.data(), text.data() + text.size(), out);
  return result.ec == std::errc() && result.ptr == text.data() + text.size();
}

}  // namespace

std::optional<websocket::WebSocketUrl> parse_ws_url(std::string_view text, std::string* error) {
  auto url = websocket::parse_url(text, error);
  if (url && url->tls) {
    if (error != nullptr) *error = "wss:// is not supported (plain ws:// only)";
    return std::nullopt;
  }
  return url;
}

std::string append_query(std::string_view target, std::string_view query) {
  while (!query.empty() && (query.front() == '?' || query.front() == '&')) query.remove_prefix(1);
  std::string out(target);
  if (query.empty()) return out;
  if (out.find('?') == std::string::npos) {
    out += '?';
  } else if (out.back() != '?' && out.back() != '&') {
    out += '&';
  }
  out += query;
  return out;
}

std::string upgrade_request(std::string_view host_header, std::string_view target,
                            std::string_view key, bool offer_deflate) {
  std::string out;
  out.reserve(200 + target.size());
  out += "GET ";
  out += target;
  out += " HTTP/1.1\r\nHost: ";
  out += host_header;
  out +=
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Key: ";
  out += key;
  if (offer_deflate) {
    out += "\r\nSec-WebSocket-Extensions: ";
    out += websocket::kClientDeflateOffer;
  }
  out += "\r\nUser-Agent: jetstream-loadgen\r\n\r\n";
  return out;
}

UpgradeCheck check_upgrade_response(std::string_view data, std::string_view expected_accept,
                                    bool peer_closed, bool offered_deflate) {
  UpgradeCheck check;
  const auto head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (data.size() > kMaxResponseHeadBytes) {
      check.status = UpgradeCheck::Status::kRejected;
      check.error = "response head longer than " + std::to_string(kMaxResponseHeadBytes) + " bytes";
    } else if (peer_closed) {
      check.status = UpgradeCheck::Status::kRejected;
      check.error = data.empty() ? "connection closed before any response"
                                 : "connection closed inside the response head: " + printable(data);
    }
    return check;
  }
  const std::string_view head = data.substr(0, head_end);
  const auto line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 101 Switching Protocols"
  const auto first_space = status_line.find(' ');
  std::int64_t status = 0;
  if (status_line.substr(0, 5) != "HTTP/" || first_space == std::string_view::npos ||
      !parse_digits(status_line.substr(first_space + 1, 3), status)) {
    check.status = UpgradeCheck::Status::kRejected;
    check.error = "not an HTTP response: " + printable(status_line);
    return check;
  }
  check.http_status = static_cast<int>(status);

  std::string_view upgrade;
  std::string_view connection;
  std::string_view accept;
  std::string_view extensions;
  std::optional<std::int64_t> content_length;
  std::string_view headers =
      line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
  while (!headers.empty()) {
    const auto end = headers.find("\r\n");
    const std::string_view line = headers.substr(0, end);
    headers = end == std::string_view::npos ? std::string_view{} : headers.substr(end + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = trim_ows(line.substr(0, colon));
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (iequals_ascii(name, "upgrade")) upgrade = value;
    if (iequals_ascii(name, "connection")) connection = value;
    if (iequals_ascii(name, "sec-websocket-accept")) accept = value;
    if (iequals_ascii(name, "sec-websocket-extensions")) extensions = value;
    if (iequals_ascii(name, "content-length")) {
      std::int64_t length = 0;
      if (parse_digits(value, length)) content_length = length;
    }
  }

  if (status != 101) {
    const std::string_view body = data.substr(head_end + 4);
    const bool body_complete =
        peer_closed || !content_length ||
        body.size() >= static_cast<std::size_t>(std::max<std::int64_t>(*content_length, 0)) ||
        data.size() > kMaxResponseHeadBytes;
    if (!body_complete) return check;  // wait for the refusal's text
    check.status = UpgradeCheck::Status::kRejected;
    check.error = "HTTP " + printable(status_line.substr(first_space + 1));
    const std::string_view shown =
        content_length
            ? body.substr(0, static_cast<std::size_t>(std::max<std::int64_t>(
                                 0, std::min<std::int64_t>(
                                        *content_length, static_cast<std::int64_t>(body.size())))))
            : body;
    if (!shown.empty()) check.error += ": " + printable(shown);
    return check;
  }
  check.status = UpgradeCheck::Status::kRejected;
  if (!icontains(upgrade, "websocket")) {
    check.error = "101 without Upgrade: websocket";
  } else if (!icontains(connection, "upgrade")) {
    check.error = "101 without Connection: Upgrade";
  } else if (accept != expected_accept) {
    check.error = "Sec-WebSocket-Accept mismatch: got '" + printable(accept, 64) + "', expected '" +
                  std::string(expected_accept) + "'";
  } else if (!extensions.empty() && !offered_deflate) {
    check.error = "server chose an extension that was not offered: " + printable(extensions);
  } else {
    const auto deflate = websocket::read_permessage_deflate_response(extensions);
    if (!deflate) {
      check.error =
          "server answered the permessage-deflate offer wrongly: " + printable(extensions);
    } else if (deflate->accepted && !deflate->server_no_context_takeover) {
      check.error =
          "server keeps its deflate context between messages (this client inflates each "
          "alone): " +
          printable(extensions);
    } else {
      check.status = UpgradeCheck::Status::kUpgraded;
      check.header_bytes = head_end + 4;
      check.deflate = deflate->accepted;
    }
  }
  return check;
}

std::optional<std::int64_t> extract_time_us(std::string_view json) {
  constexpr std::string_view kDidPrefix = R"({"did":")";
  constexpr std::string_view kTimeKey = R"("time_us":)";
  std::size_t digits_at = std::string_view::npos;
  if (json.substr(0, kDidPrefix.size()) == kDidPrefix) {
    // A DID never holds a quote or a backslash: the first quote ends it.
    const auto quote = json.find('"', kDidPrefix.size());
    if (quote != std::string_view::npos &&
        json.substr(kDidPrefix.size(), quote - kDidPrefix.size()).find('\\') ==
            std::string_view::npos &&
        json.substr(quote + 1, 1 + kTimeKey.size()) == R"(,"time_us":)") {
      digits_at = quote + 2 + kTimeKey.size();
    }
  }
  if (digits_at == std::string_view::npos) {
    const auto key = json.find(kTimeKey);
    if (key == std::string_view::npos) return std::nullopt;
    digits_at = key + kTimeKey.size();
  }
  std::size_t end = digits_at;
  while (end < json.size() && json[end] >= '0' && json[end] <= '9') ++end;
  // The digits must be followed by something: a prefix cut inside the number is not a value.
  if (end == digits_at || end == json.size() || end - digits_at > 19) return std::nullopt;
  std::int64_t value = 0;
  if (!parse_digits(json.substr(digits_at, end - digits_at), value)) return std::nullopt;
  return value;
}

}  // namespace jetstream::loadgen
