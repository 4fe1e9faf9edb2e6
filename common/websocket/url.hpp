// `ws://` and `wss://` URLs as the upstream flag (`--ws-url`) takes them, the cursor query
// parameter ingest rewrites on every (re)connection, and `http://` / `https://` URLs (the HTTP
// client: DID documents, PDS and relay endpoints) parsed by the same rules. No Beast here: cheap
// to include anywhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jetstream::websocket {

/// A parsed websocket URL. `target` is what goes on the HTTP request line: the path (at least
/// "/") followed by `?query` when there is one. Userinfo and fragments are not accepted.
struct WebSocketUrl {
  bool tls = false;   ///< `wss://` (or `https://`)
  bool http = false;  ///< an `http(s)://` URL (parse_http_url), not a websocket one
  std::string host;   ///< hostname, IPv4 address, or IPv6 address without brackets
  std::uint16_t port = 0;
  std::string target = "/";

  /// `host:port` as the HTTP Host header wants it (brackets around IPv6, port omitted when it is
  /// the scheme's default).
  std::string host_header() const;
  /// The URL written back out (`wss://host[:port]/path?query`, or `https://…`).
  std::string to_string() const;

  friend bool operator==(const WebSocketUrl&, const WebSocketUrl&) = default;
};

/// Parses `ws://host[:port][/path][?query]` or `wss://…` (scheme case-insensitive; default ports
/// 80 and 443; IPv6 hosts in brackets). nullopt on anything else, with the reason in `error`.
std::optional<WebSocketUrl> parse_url(std::string_view text, std::string* error = nullptr);

/// Parses `http://host[:port][/path][?query]` or `https://…` by the same rules (default ports 80
/// and 443); the result has `http` set.
std::optional<WebSocketUrl> parse_http_url(std::string_view text, std::string* error = nullptr);

/// `target` with its `cursor` query parameter replaced by `cursor=<value>` (every other parameter
/// kept, in order), or removed when `cursor` is nullopt. The new parameter goes last.
std::string with_cursor(std::string_view target, std::optional<std::int64_t> cursor);

/// The value of the first `name=` parameter of `target`'s query, undecoded; nullopt when absent.
std::optional<std::string> query_param(std::string_view target, std::string_view name);

/// The path of `target` (everything before `?`).
std::string_view target_path(std::string_view target);

}  // namespace jetstream::websocket
