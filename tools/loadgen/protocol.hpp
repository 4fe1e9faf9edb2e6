// The client side of the handshake as jetstream-loadgen speaks it, without sockets: ws:// URLs, the
// upgrade request and the check of its response, and the cheap read of `time_us` from the start
// of an event. Frames are common/websocket/codec.hpp's. Pure code, tested in
// tests/integration/loadgen_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/websocket/url.hpp"

namespace jetstream::loadgen {

/// A `ws://` URL as common/websocket parses it; nullopt with the reason in `error` for anything
/// else, including `wss://`, which this tool does not speak (it is for loopback and a LAN).
std::optional<websocket::WebSocketUrl> parse_ws_url(std::string_view text,
                                                    std::string* error = nullptr);

/// `target` with `query` appended after `?` (or `&` when it already has a query). An empty query
/// leaves it unchanged; a leading `?` or `&` on `query` is dropped.
std::string append_query(std::string_view target, std::string_view query);

/// The HTTP/1.1 upgrade request for `target` on `host_header` with `key`; `offer_deflate` adds
/// the permessage-deflate offer browsers send.
std::string upgrade_request(std::string_view host_header, std::string_view target,
                            std::string_view key, bool offer_deflate = false);

/// What `check_upgrade_response` found in the bytes received so far.
struct UpgradeCheck {
  enum class Status : std::uint8_t {
    kIncomplete,  ///< read more (headers, or the body of a refusal, not complete yet)
    kUpgraded,    ///< 101 with matching Upgrade, Connection and Sec-WebSocket-Accept
    kRejected     ///< anything else; `error` says what (status line and body of a refusal)
  };
  Status status = Status::kIncomplete;
  int http_status = 0;
  /// When upgraded: bytes of `data` taken by the response; the rest are websocket frames.
  std::size_t header_bytes = 0;
  /// When upgraded: the server accepted permessage-deflate (each message compressed alone).
  bool deflate = false;
  std::string error;
};

/// Largest upgrade response head accepted; a refusal's body is read up to this size too.
inline constexpr std::size_t kMaxResponseHeadBytes = 16 * 1024;

/// Checks an upgrade response. `data` is everything received so far; `peer_closed` says the
/// server closed the connection (a refusal without Content-Length ends there). `offered_deflate`:
/// the request offered permessage-deflate, so an answer that accepts it (with
/// server_no_context_takeover, which this client needs: it inflates each message alone) is fine.
UpgradeCheck check_upgrade_response(std::string_view data, std::string_view expected_accept,
                                    bool peer_closed = false, bool offered_deflate = false);

/// How many leading bytes of a text event are enough to find `time_us` (the DID comes first).
inline constexpr std::size_t kTimeUsPrefixBytes = 512;

/// The `time_us` of a v1 event from the start of its JSON: the fast path reads
/// `{"did":"...","time_us":NNN` exactly as the v1 key order puts it; otherwise the first
/// `"time_us":` key is searched. nullopt when absent, not a non-negative integer, out of range, or
/// cut off by the end of `json` (a prefix must reach the byte after the digits).
std::optional<std::int64_t> extract_time_us(std::string_view json);

}  // namespace jetstream::loadgen
