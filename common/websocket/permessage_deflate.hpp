// permessage-deflate (RFC 7692): the negotiation and the per-message compression, with zlib.
//
// fanout compresses each event once, for every client that negotiated the extension, so it only
// ever agrees to what makes one compressed message right for all of them: no context takeover on
// its side (every message is compressed alone) and its full 15-bit window. It also asks clients
// for no context takeover, so each of their messages inflates alone with one thread's inflater
// and no per-connection zlib state. Frames carry RSV1 (codec.hpp: `write_frame_header(...,
// compressed)`, `Message::compressed`).
//
// Pure code, no I/O; a `MessageDeflater` or `MessageInflater` belongs to one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace jetstream::websocket {

/// The extension's name in `Sec-WebSocket-Extensions`.
inline constexpr std::string_view kPermessageDeflateName = "permessage-deflate";

/// What a server that compresses every message once for all its clients answers to a client's
/// `Sec-WebSocket-Extensions` (every header line of it, joined with ","): the value of its own
/// `Sec-WebSocket-Extensions` for the first permessage-deflate offer it can accept, or nullopt
/// (the connection goes on without the extension). An offer is declined when it is malformed
/// (a parameter repeated, unknown or with a bad value) or asks for `server_max_window_bits`
/// below 15: the shared compressed bytes are made with a 15-bit window. The answer always holds
/// `server_no_context_takeover` and `client_no_context_takeover` (RFC 7692 §7.1.1: a server may
/// add both unasked), and echoes `server_max_window_bits=15` when the offer named it.
std::optional<std::string> accept_permessage_deflate(std::string_view offers);

/// The offer a client of this project sends (jetstream-loadgen, the tests): the extension with
/// `client_max_window_bits` (as browsers offer it).
inline constexpr std::string_view kClientDeflateOffer =
    "permessage-deflate; client_max_window_bits";

/// A server's answer read back by a client that sent `kClientDeflateOffer`.
struct DeflateResponse {
  bool accepted = false;  ///< the server agreed to permessage-deflate
  /// The server compresses each message alone (`server_no_context_takeover`): a client may
  /// reset its inflater between messages.
  bool server_no_context_takeover = false;
  /// The client must compress each message alone (`client_no_context_takeover`).
  bool client_no_context_takeover = false;
};

/// Reads a server's `Sec-WebSocket-Extensions` (empty: none). nullopt when the answer is not one
/// a client may accept (another extension, a parameter it did not offer, a bad value): RFC 6455
/// §9.1 then requires the client to fail the connection.
std::optional<DeflateResponse> read_permessage_deflate_response(std::string_view response);

/// Compresses whole messages, each alone (no context takeover), with a 15-bit window, as RFC 7692
/// §7.2.1 says: raw DEFLATE, flushed, without the final 4 bytes `00 00 ff ff`.
class MessageDeflater {
 public:
  /// `level`: zlib's 1 (fastest) to 9 (smallest); 6 is zlib's default.
  explicit MessageDeflater(int level = 6);
  ~MessageDeflater();
  MessageDeflater(const MessageDeflater&) = delete;
  MessageDeflater& operator=(const MessageDeflater&) = delete;

  /// Appends the compressed payload of `message` to `out`; returns its size.
  std::size_t compress(std::string_view message, std::string& out);

 private:
  struct Stream;
  std::unique_ptr<Stream> stream_;
};

/// Inflates compressed messages, bounded: never more than `max_bytes` of output, however small
/// the input (a deflate bomb stops at the bound).
class MessageInflater {
 public:
  enum class Result : std::uint8_t {
    kOk,
    kTooBig,   ///< the message inflates to more than `max_bytes`
    kCorrupt,  ///< not valid DEFLATE data
  };
  /// `reset_each_message`: the peer compresses each message alone (it agreed to no context
  /// takeover), so the inflater forgets the previous message's window before each one; otherwise
  /// messages continue one DEFLATE stream.
  explicit MessageInflater(bool reset_each_message = true);
  ~MessageInflater();
  MessageInflater(const MessageInflater&) = delete;
  MessageInflater& operator=(const MessageInflater&) = delete;

  /// Replaces `out` with the inflated `payload` (a message's compressed bytes, as received).
  /// On kTooBig `out` holds the first `max_bytes` bytes; after kTooBig or kCorrupt the stream
  /// starts again with the next message.
  Result inflate(std::string_view payload, std::size_t max_bytes, std::string& out);

 private:
  struct Stream;
  std::unique_ptr<Stream> stream_;
  bool reset_each_message_;
};

}  // namespace jetstream::websocket
