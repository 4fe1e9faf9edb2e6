// The io side of ingest: the upstream websocket and the frames PUB socket, on one thread.
//
// Threads: `UpstreamLink` owns one thread running a private io_context. That thread owns the
// WebSocketClient of the current connection and the PUB socket (frames and status): each frame
// goes from the websocket read straight to the PUB socket, with no actor hop and no copy (the
// message buffer is handed to ZeroMQ). The public methods may be called from any thread (the
// connection state machine calls them); they post to the io thread and never block, except stop().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/websocket/client.hpp"
#include "common/websocket/url.hpp"

namespace zmq {
class context_t;
}

namespace jetstream::ingest {

class IngestProbe;

struct LinkOptions {
  websocket::WebSocketUrl url;
  websocket::ClientOptions client;
  /// Where the frames PUB binds (a ZeroMQ endpoint such as `tcp://*:6010`).
  std::string frames_endpoint;
  int send_high_water_mark = 100'000;
  std::chrono::milliseconds status_interval{1000};
};

/// What the link reports to the connection state machine (called on the io thread; must not block).
struct LinkEvents {
  /// The connection of `generation` is open.
  std::function<void(std::uint64_t generation)> opened;
  /// The connection of `generation` failed or ended. `reason` is a websocket::ErrorCategory name
  /// or `error_frame`; `last_stream_seq` is the last nonzero upstream seq published since the
  /// current resume was accepted (0 = none); `delivered` says whether this connection delivered
  /// at least one frame that was not an error frame.
  std::function<void(std::uint64_t generation, std::string reason, std::string message,
                     std::int64_t last_stream_seq, bool delivered)>
      failed;
};

class UpstreamLink {
 public:
  /// Creates and binds the PUB socket (throws zmq::error_t when it cannot bind).
  UpstreamLink(zmq::context_t& context, std::uint64_t epoch, LinkOptions options,
               IngestProbe& probe, LinkEvents events);
  /// Calls stop().
  ~UpstreamLink();
  UpstreamLink(const UpstreamLink&) = delete;
  UpstreamLink& operator=(const UpstreamLink&) = delete;

  /// Starts the io thread (status is published from then on).
  void start();
  /// The endpoint the PUB socket is bound to (the real port when bound to port 0).
  std::string frames_endpoint() const;

  /// A resume was accepted: drop any connection, take `resume_id` for the frames that follow,
  /// publish a status, connect with `cursor` (-1: live) and flag the next frame `stream_start`.
  void begin_stream(std::uint64_t generation, std::uint64_t resume_id, std::int64_t cursor);
  /// Reconnect within the current stream (same resume_id, no `stream_start`).
  void reconnect(std::uint64_t generation, std::int64_t cursor);
  /// Publish a status now (acknowledges a retried resume).
  void publish_status();

  /// Closes the connection, stops and joins the io thread, closes the PUB socket. Idempotent.
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

/// A ZeroMQ endpoint from a listen flag: `tcp://…` (anything with `://`) is taken as is;
/// `host:port` / `:port` becomes `tcp://host:port` / `tcp://*:port` (port 0 → `*`, any free
/// port). Empty on a malformed address, with the reason in `error`.
std::string zmq_bind_endpoint(const std::string& flag_value, std::string* error = nullptr);

/// Sets ZMQ_IPV6 on sockets whose endpoint needs it (wildcard or bracketed IPv6 host).
bool endpoint_wants_ipv6(const std::string& endpoint);

}  // namespace jetstream::ingest
