#include "services/fanout/subscribe_route.hpp"

#include <optional>
#include <string_view>
#include <utility>

#include "services/fanout/subscriber_options.hpp"

namespace jetstream::fanout {

ConnectionHandlers session_handlers(const SessionHandle& session) {
  ConnectionHandlers handlers;
  handlers.on_text = [session](std::string text) {
    caf::anon_send(session.actor, text_atom::value, std::move(text));
  };
  handlers.on_closed = [session](const CloseInfo&) {
    caf::anon_send(session.actor, closed_atom::value);
  };
  handlers.on_room = [session](std::uint64_t queued) { session.room(queued); };
  return handlers;
}

SubscribeHandler subscribe_handler(caf::actor_system& actors, SessionContext context,
                                   const std::atomic<bool>& stopping, bool compression_available) {
  return [&actors, context = std::move(context), &stopping,
          compression_available](const SubscribeRequest& request) -> SubscribeDecision {
    if (stopping.load()) return HttpError{503, "server shutting down"};
    const std::optional<std::string_view> encoding =
        request.socket_encoding.empty() ? std::nullopt
                                        : std::optional<std::string_view>(request.socket_encoding);
    ParseResult parsed = parse_subscribe_request(request.query, encoding);
    if (!parsed.ok()) return HttpError{400, parsed.error};
    if (parsed.options->compress && !compression_available) {
      return HttpError{400, "compression unavailable: no zstd dictionary configured"};
    }
    if (parsed.options->snapshot) {
      // What decode compacts, from its last state info (sent every heartbeat interval).
      const auto state = context.feed->compacted_state();
      if (!state) return HttpError{503, "snapshot unavailable: decode's state is not known yet"};
      std::string error = apply_snapshot_collections(parsed.options->filters, state->compacted);
      if (!error.empty()) return HttpError{400, std::move(error)};
      // A collection added on decode's last start is built from its log beside ingestion: until
      // that is done its twin lacks records, and a snapshot would hand out a wrong state.
      if (auto building = snapshot_being_built(parsed.options->filters, state->building)) {
        return HttpError{503, std::move(*building)};
      }
      parsed.options->snapshot_collections = state->compacted;
    }
    // permessage-deflate for a client that offered it and did not ask for zstd (API.md
    // "Browsers"): zstd frames are compressed already.
    parsed.options->deflate = request.deflate_offered && !parsed.options->compress;
    const bool deflate = parsed.options->deflate;
    return SubscribeAccept{
        [&actors, context, subscriber = std::move(*parsed.options),
         ip = request.client_ip](const std::shared_ptr<ClientConnection>& connection) {
          const SessionHandle session = spawn_session(
              actors, context, std::make_shared<ConnectionSink>(connection), subscriber, ip);
          return session_handlers(session);
        },
        deflate};
  };
}

EventFeed::BlockCallback notify_broadcaster(broadcaster_actor broadcaster) {
  return [broadcaster = std::move(broadcaster)](const BlockPtr& block) {
    caf::anon_send(broadcaster, block_atom::value, block);
  };
}

}  // namespace jetstream::fanout
