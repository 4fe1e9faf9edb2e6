// A websocket server that plays a list of firehose frames to every client, as a relay's
// `com.atproto.sync.subscribeRepos` would: `jetstream-frames serve` and the tests use it as a
// stand-in upstream. Beast behind a pimpl.
//
// Threads: the server owns one thread running its own io_context; every accessor is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace jetstream::websocket {

inline constexpr const char* kSubscribeReposPath = "/xrpc/com.atproto.sync.subscribeRepos";

struct FrameServerOptions {
  /// Address to listen on (IPv4 or IPv6 literal). Port 0 picks a free port (see `port()`).
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  /// The only path that upgrades; anything else gets 404.
  std::string path = kSubscribeReposPath;
  /// Frames per second for each connection; 0 sends as fast as the socket takes them.
  double rate = 0;
  /// After the last frame, keep the connection open (answering pings) instead of closing it
  /// with a normal close frame (1000).
  bool keep_open = false;
  /// When nonzero, every connection is dropped (TCP closed, no close frame) right after its
  /// `drop_after`-th frame: a fault injector for reconnect tests.
  std::size_t drop_after = 0;
  /// When false the server never reads from a client after the upgrade, so pings go unanswered
  /// (a peer that stalls without closing); its close frames go unnoticed too.
  bool answer_pings = true;
  /// When both are set (PEM text), the server speaks TLS (`wss://`).
  std::string tls_certificate_pem;
  std::string tls_private_key_pem;
};

/// Serves `frames` (each one binary websocket message) to every client that upgrades on
/// `options.path`. A `?cursor=N` query starts the stream at the first frame whose upstream `seq`
/// (`firehose::peek_frame_seq`) is greater than N, as a relay replays the events after the
/// cursor; every frame after that one is sent, with or without a seq. Without a cursor (or with
/// one that is not an integer) the stream starts at the first frame.
class FrameServer {
 public:
  /// Binds and starts serving. Throws std::system_error when it cannot listen, and
  /// std::invalid_argument for bad TLS material.
  FrameServer(std::vector<std::vector<std::uint8_t>> frames, FrameServerOptions options);
  /// Calls stop().
  ~FrameServer();
  FrameServer(const FrameServer&) = delete;
  FrameServer& operator=(const FrameServer&) = delete;

  /// The port actually bound.
  std::uint16_t port() const;
  /// `ws://host:port/path` (or `wss://localhost:port/path` with TLS, matching the test
  /// certificate's name).
  std::string url() const;

  /// Websocket sessions accepted so far (upgrades, not TCP connections).
  std::size_t connections() const;
  /// Websocket sessions currently open.
  std::size_t open_connections() const;
  /// The request target (path and query) of every accepted upgrade, in order.
  std::vector<std::string> request_targets() const;
  /// Frames written to all clients so far.
  std::uint64_t frames_sent() const;

  /// Closes the listener and every connection (abruptly) and joins the thread. Idempotent.
  void stop();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace jetstream::websocket
