// A small blocking websocket client for black-box tests of fanout: raw socket, the upgrade request,
// and frames written and parsed by the one codec (common/websocket/codec.hpp), so a server frame
// that breaks RFC 6455 fails the test. Where the server accepts permessage-deflate (offer it in
// `extra_headers`), compressed messages are inflated and marked. Not for production.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>

#include "common/websocket/codec.hpp"
#include "common/websocket/permessage_deflate.hpp"
#include "tests/support/child_process.hpp"

namespace jetstream::testing {

struct WsMessage {
  std::uint8_t opcode = 0;  ///< 1 text, 2 binary, 8 close, 9 ping, 10 pong
  std::string payload;      ///< close: the reason
  std::uint16_t code = 0;   ///< close: the code (1005 when the frame had none)
  bool compressed = false;  ///< arrived with RSV1 (permessage-deflate); `payload` is inflated
  std::uint16_t close_code() const { return code; }
};

class WsTestClient {
 public:
  ~WsTestClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Sends the upgrade request; returns the HTTP status (101 on success). The response head and
  /// any body are kept in `response()`.
  int connect(std::uint16_t port, const std::string& target, const std::string& extra_headers = "",
              bool upgrade = true) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (small_receive_buffer_) {
      int size = 4096;
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    if (!connect_to_loopback(fd_, port)) return -1;
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (upgrade) {
      request +=
          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    }
    request += extra_headers + "\r\n";
    if (!send_all(request)) return -1;
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!fill(std::chrono::seconds(30))) return -1;  // a bound, not an expectation
    }
    const auto end = buffer_.find("\r\n\r\n") + 4;
    response_ = buffer_.substr(0, end);
    buffer_.erase(0, end);
    const int status = std::stoi(response_.substr(9, 3));
    if (status == 101 &&
        response_.find("Sec-WebSocket-Extensions: permessage-deflate") != std::string::npos) {
      deflate_ = true;
      parser_ = websocket::FrameParser(websocket::Sender::kServer, std::uint64_t{1} << 30,
                                       websocket::Compression::kPermessageDeflate);
    }
    if (status != 101) {
      // A plain HTTP answer: read its Content-Length body (or until the server closes).
      std::size_t length = std::string::npos;
      for (const char* name : {"Content-Length: ", "content-length: "}) {
        const auto at = response_.find(name);
        if (at != std::string::npos) length = std::stoul(response_.substr(at + std::strlen(name)));
      }
      while ((length == std::string::npos || buffer_.size() < length) &&
             fill(std::chrono::seconds(10))) {
      }
      response_ += buffer_;
      buffer_.clear();
    }
    return status;
  }

  const std::string& response() const { return response_; }
  /// The server accepted permessage-deflate.
  bool deflate() const { return deflate_; }

  /// The next message, or nullopt when none arrives within `timeout` or the socket closed.
  std::optional<WsMessage> read(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto message = parse()) return message;
      // Always look at the socket once, even when the deadline has passed: data already
      // received must be returned.
      const auto left = std::max(std::chrono::milliseconds(0),
                                 std::chrono::duration_cast<std::chrono::milliseconds>(
                                     deadline - std::chrono::steady_clock::now()));
      if (!fill(left)) return std::nullopt;
    }
  }

  bool send_text(const std::string& text) { return send_frame(0x1, text); }
  bool send_close(std::uint16_t code) {
    return send_frame(0x8, websocket::close_payload(code, {}));
  }
  bool send_frame(std::uint8_t opcode, const std::string& payload, bool compressed = false) {
    std::string frame;
    websocket::append_masked_frame(frame, static_cast<websocket::Opcode>(opcode), payload,
                                   {0x12, 0x34, 0x56, 0x78}, compressed);
    return send_all(frame);
  }
  /// A text message compressed alone (as the server asked: client_no_context_takeover).
  bool send_compressed_text(const std::string& text) {
    std::string payload;
    websocket::MessageDeflater().compress(text, payload);
    return send_frame(0x1, payload, true);
  }

  /// For a client that will stop reading: a tiny receive buffer (set before connecting, so the
  /// TCP window stays small) makes the server's writes stall quickly.
  void shrink_receive_buffer() { small_receive_buffer_ = true; }

 private:
  bool send_all(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  bool fill(std::chrono::milliseconds timeout) {
    pollfd item{fd_, POLLIN, 0};
    if (::poll(&item, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char chunk[65536];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  std::optional<WsMessage> parse() {
    std::string_view input(buffer_);
    const auto status = parser_.parse(input, message_);
    std::optional<WsMessage> message;
    if (status == websocket::FrameParser::Status::kMessage) {  // copied before buffer_ changes
      message = WsMessage{static_cast<std::uint8_t>(message_.opcode), std::string(message_.view),
                          message_.close_code, message_.compressed};
      if (message_.compressed) {
        std::string inflated;
        if (inflater_.inflate(message->payload, std::size_t{1} << 30, inflated) !=
            websocket::MessageInflater::Result::kOk) {
          ADD_FAILURE() << "the server sent a compressed message that does not inflate";
        }
        message->payload = std::move(inflated);
      }
    }
    buffer_.erase(0, buffer_.size() - input.size());
    if (status == websocket::FrameParser::Status::kError) {
      ADD_FAILURE() << "the server broke RFC 6455: " << parser_.error().reason;
    }
    return message;
  }

  int fd_ = -1;
  bool small_receive_buffer_ = false;
  std::string buffer_;
  std::string response_;
  websocket::FrameParser parser_{websocket::Sender::kServer, std::uint64_t{1} << 30};
  bool deflate_ = false;
  // Every message inflated alone: the server promised server_no_context_takeover.
  websocket::MessageInflater inflater_;
  websocket::Message message_;
};

}  // namespace jetstream::testing
