// The glue between fanout's connection layer and its session actors, as named parts:
//
//   - `subscribe_handler`: what `GET /subscribe` does once the HTTP server has parsed the request
//     — read the subscriber options (400 on bad ones, 503 while stopping), then, once the
//     websocket is upgraded, spawn the client's session and wire the connection's callbacks to it;
//   - `ConnectionSink`: the session's view of its websocket connection (ClientSink);
//   - `notify_broadcaster`: the EventFeed's block callback, which wakes every session.
//
// FanoutService::start (fanout_service.cpp) only creates these and hands them over.
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "services/fanout/client_connection.hpp"
#include "services/fanout/client_session.hpp"
#include "services/fanout/client_sink.hpp"
#include "services/fanout/event_feed.hpp"
#include "services/fanout/http_server.hpp"

namespace jetstream::fanout {

/// The session's view of its websocket connection: frames, close and the queued-bytes figures
/// go straight to the ClientConnection.
class ConnectionSink final : public ClientSink {
 public:
  explicit ConnectionSink(std::shared_ptr<ClientConnection> connection)
      : connection_(std::move(connection)) {}
  void send(std::vector<OutboundFrame> frames) override { connection_->send(std::move(frames)); }
  void close(std::uint16_t code, std::string reason) override {
    connection_->close(code, std::move(reason));
  }
  std::uint64_t queued_bytes() const override { return connection_->queued_bytes(); }
  std::uint64_t written_bytes() const override { return connection_->stats().bytes_written; }

 private:
  std::shared_ptr<ClientConnection> connection_;
};

/// The connection's callbacks for `session`: client text messages and the close go to the
/// session actor; a finished write reports the room left (`SessionHandle::room`).
ConnectionHandlers session_handlers(const SessionHandle& session);

/// The handler HttpServer calls for each `GET /subscribe`. `actors`, `stopping` and everything
/// `context` points to must outlive the HTTP server.
SubscribeHandler subscribe_handler(caf::actor_system& actors, SessionContext context,
                                   const std::atomic<bool>& stopping, bool compression_available);

/// EventFeed's block callback: every new block wakes the sessions (through the broadcaster).
EventFeed::BlockCallback notify_broadcaster(broadcaster_actor broadcaster);

}  // namespace jetstream::fanout
