// RFC 6455 framing of fanout's websocket: server frame bytes, the client frame parser fed in
// arbitrary chunks (every protocol error and the size limit), the handshake accept key.
#include "services/fanout/ws_frame.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jetstream::fanout {
namespace {

using Kind = ClientEvent::Kind;
using Status = ClientFrameParser::Status;

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

/// A client frame: first byte `b0` (FIN, RSV, opcode), masked with `mask` unless `masked` is
/// false; the length encoded minimally unless `length_bytes` forces 2 or 8 extra bytes.
std::string client_frame(std::uint8_t b0, std::string_view payload, bool masked = true,
                         int length_bytes = -1,
                         std::array<std::uint8_t, 4> mask = {0x37, 0xfa, 0x21, 0x3d}) {
  std::string out;
  out += static_cast<char>(b0);
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  const std::size_t n = payload.size();
  if (length_bytes < 0) length_bytes = n < 126 ? 0 : n <= 0xFFFF ? 2 : 8;
  if (length_bytes == 0) {
    out += static_cast<char>(mask_bit | n);
  } else if (length_bytes == 2) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int i = 7; i >= 0; --i)
      out += static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xFF);
  }
  if (masked) {
    for (auto m : mask) out += static_cast<char>(m);
    for (std::size_t i = 0; i < n; ++i) {
      out += static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ mask[i % 4]);
    }
  } else {
    out.append(payload);
  }
  return out;
}

std::string text(std::string_view payload) { return client_frame(0x81, payload); }

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xFF);
  out.append(reason);
  return out;
}

struct Parsed {
  std::vector<ClientEvent> events;
  bool error = false;
  ProtocolError protocol_error;
};

/// Feeds `stream` cut into the given chunk sizes (the rest in one final chunk).
Parsed parse_chunks(const std::string& stream, const std::vector<std::size_t>& cuts,
                    std::size_t limit = kDefaultMaxMessageBytes) {
  ClientFrameParser parser(limit);
  Parsed result;
  std::size_t at = 0;
  auto feed = [&](std::string_view chunk) {
    while (!chunk.empty() && !result.error) {
      ClientEvent event;
      switch (parser.parse(chunk, event)) {
        case Status::kNeedMore: EXPECT_TRUE(chunk.empty()); break;
        case Status::kEvent: result.events.push_back(std::move(event)); break;
        case Status::kError:
          result.error = true;
          result.protocol_error = parser.error();
          break;
      }
    }
  };
  for (std::size_t cut : cuts) {
    feed(std::string_view(stream).substr(at, cut));
    at += cut;
  }
  feed(std::string_view(stream).substr(at));
  return result;
}

Parsed parse_all(const std::string& stream, std::size_t limit = kDefaultMaxMessageBytes) {
  return parse_chunks(stream, {}, limit);
}

ProtocolError expect_error(const std::string& stream, std::size_t limit = kDefaultMaxMessageBytes) {
  const Parsed parsed = parse_all(stream, limit);
  EXPECT_TRUE(parsed.error);
  return parsed.protocol_error;
}

// --- Server frames -------------------------------------------------------------------------

TEST(WsFrame, ServerFrameHeaderUsesTheShortestLengthForEverySize) {
  struct Case {
    std::size_t size;
    std::string header;
  };
  const std::vector<Case> cases = {
      {0, bytes({0x81, 0x00})},
      {125, bytes({0x81, 0x7D})},
      {126, bytes({0x81, 0x7E, 0x00, 0x7E})},
      {65535, bytes({0x81, 0x7E, 0xFF, 0xFF})},
      {65536, bytes({0x81, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00})},
  };
  for (const auto& c : cases) {
    const std::string payload(c.size, 'x');
    const std::string frame = make_frame(Opcode::kText, payload);
    ASSERT_EQ(frame.size(), c.header.size() + c.size) << c.size;
    EXPECT_EQ(frame.substr(0, c.header.size()), c.header) << c.size;
    EXPECT_EQ(frame.substr(c.header.size()), payload) << c.size;
    EXPECT_EQ(frame_header_size(c.size), c.header.size()) << c.size;
  }
}

TEST(WsFrame, EveryOpcodeIsFinalAndUnmasked) {
  EXPECT_EQ(make_frame(Opcode::kText, "hi"), bytes({0x81, 0x02, 'h', 'i'}));
  EXPECT_EQ(make_frame(Opcode::kBinary, "hi"), bytes({0x82, 0x02, 'h', 'i'}));
  EXPECT_EQ(make_frame(Opcode::kPing, ""), bytes({0x89, 0x00}));
  EXPECT_EQ(make_frame(Opcode::kPong, "p"), bytes({0x8A, 0x01, 'p'}));
  EXPECT_EQ(make_frame(Opcode::kClose, ""), bytes({0x88, 0x00}));
}

TEST(WsFrame, AppendFrameLaysABatchOutBackToBack) {
  std::string batch;
  append_frame(batch, Opcode::kText, "a");
  append_frame(batch, Opcode::kBinary, "bc");
  EXPECT_EQ(batch, bytes({0x81, 0x01, 'a', 0x82, 0x02, 'b', 'c'}));
}

TEST(WsFrame, ControlPayloadOver125BytesAndContinuationAreRefused) {
  EXPECT_NO_THROW(make_frame(Opcode::kPing, std::string(125, 'x')));
  EXPECT_THROW(make_frame(Opcode::kPing, std::string(126, 'x')), std::invalid_argument);
  EXPECT_THROW(make_frame(Opcode::kPong, std::string(126, 'x')), std::invalid_argument);
  EXPECT_THROW(make_frame(Opcode::kContinuation, "x"), std::invalid_argument);
}

TEST(WsFrame, CloseFrameCarriesTheCodeBigEndianThenTheReason) {
  EXPECT_EQ(make_close_frame(1000, "bye"), bytes({0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'}));
  EXPECT_EQ(make_close_frame(1001, "server shutting down"),
            bytes({0x88, 0x16, 0x03, 0xE9}) + "server shutting down");
  EXPECT_EQ(make_close_frame(close_code::kNoStatus, "ignored"), bytes({0x88, 0x00}));
}

TEST(WsFrame, CloseReasonIsCutTo123BytesOnACharacterBoundary) {
  const std::string long_ascii(200, 'a');
  const std::string frame = make_close_frame(1008, long_ascii);
  ASSERT_EQ(frame.size(), 2u + 125u);
  EXPECT_EQ(frame.substr(4), std::string(123, 'a'));

  // 122 ASCII bytes then a 3-byte character: the character does not fit and is left out whole.
  const std::string reason = std::string(122, 'b') + "\xE2\x82\xAC";
  EXPECT_EQ(fit_close_reason(reason), std::string(122, 'b'));
  EXPECT_TRUE(is_valid_utf8(fit_close_reason(reason)));
  EXPECT_EQ(fit_close_reason("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(WsFrame, CloseReasonInvalidUtf8BytesBecomeQuestionMarks) {
  EXPECT_EQ(fit_close_reason("a\xFF"
                             "b\xC3"),
            "a?b?");
  EXPECT_EQ(fit_close_reason("\xED\xA0\x80"), "???");  // a surrogate
}

TEST(WsFrame, Utf8ValidationRejectsOverlongsSurrogatesAndPastU10FFFF) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // U+D800
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\x80"));              // lone continuation
}

TEST(WsFrame, CloseCodesAClientMaySend) {
  for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 4999}) {
    EXPECT_TRUE(is_valid_close_code(static_cast<std::uint16_t>(code))) << code;
  }
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
    EXPECT_FALSE(is_valid_close_code(static_cast<std::uint16_t>(code))) << code;
  }
}

// --- Handshake ----------------------------------------------------------------------------

TEST(WsHandshake, AcceptKeyMatchesTheRfc6455Example) {
  // RFC 6455 §1.3: SHA-1 b3 7a 4f 2c c0 62 4f 16 90 f6 46 06 cf 38 59 45 b2 be c4 ea.
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsHandshake, KeyMustBeBase64OfSixteenBytes) {
  EXPECT_TRUE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(is_valid_websocket_key(""));
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ"));      // no padding
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=!"));    // bad padding
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25j*Q=="));    // bad character
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==AA"));  // too long
  EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZQ=="));            // 10 bytes
}

// --- Client frame parser --------------------------------------------------------------------

TEST(ClientFrameParser, Rfc6455MaskedHelloExample) {
  // RFC 6455 §5.7: a single-frame masked text message "Hello".
  const std::string frame =
      bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  const Parsed parsed = parse_all(frame);
  ASSERT_FALSE(parsed.error);
  ASSERT_EQ(parsed.events.size(), 1u);
  EXPECT_EQ(parsed.events[0].kind, Kind::kText);
  EXPECT_EQ(parsed.events[0].payload, "Hello");
}

TEST(ClientFrameParser, SameEventsWhateverTheChunkBoundaries) {
  std::string big(70'000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  const std::string stream =
      text("one") + client_frame(0x89, "ping!") + client_frame(0x82, std::string(300, 'b')) +
      client_frame(0x82, big) + client_frame(0x8A, "") + text("") +
      client_frame(0x81, "long-form", true, 8) + client_frame(0x88, close_payload(1000, "done"));
  auto check = [&](const Parsed& parsed, const std::string& where) {
    ASSERT_FALSE(parsed.error) << where;
    ASSERT_EQ(parsed.events.size(), 8u) << where;
    EXPECT_EQ(parsed.events[0].kind, Kind::kText);
    EXPECT_EQ(parsed.events[0].payload, "one");
    EXPECT_EQ(parsed.events[1].kind, Kind::kPing);
    EXPECT_EQ(parsed.events[1].payload, "ping!");
    EXPECT_EQ(parsed.events[2].kind, Kind::kBinary);
    EXPECT_EQ(parsed.events[2].payload, std::string(300, 'b'));
    EXPECT_EQ(parsed.events[3].payload, big) << where;
    EXPECT_EQ(parsed.events[4].kind, Kind::kPong);
    EXPECT_EQ(parsed.events[5].kind, Kind::kText);
    EXPECT_EQ(parsed.events[5].payload, "");
    EXPECT_EQ(parsed.events[6].payload, "long-form");
    EXPECT_EQ(parsed.events[7].kind, Kind::kClose);
    EXPECT_EQ(parsed.events[7].close_code, 1000);
    EXPECT_EQ(parsed.events[7].payload, "done");
  };
  check(parse_all(stream), "whole");
  // Every split point of the stream into two chunks (the big frame's payload in steps).
  for (std::size_t cut = 0; cut <= stream.size();
       cut += (cut < 400 || cut > stream.size() - 400) ? std::size_t{1} : std::size_t{997}) {
    check(parse_chunks(stream, {cut}), "cut at " + std::to_string(cut));
    if (HasFailure()) return;
  }
  // One byte at a time.
  check(parse_chunks(stream, std::vector<std::size_t>(stream.size(), 1)), "byte by byte");
}

TEST(ClientFrameParser, FragmentedMessageWithInterleavedPingIsReassembled) {
  const std::string stream = client_frame(0x01, "Hel") + client_frame(0x89, "p1") +
                             client_frame(0x00, "lo, ") + client_frame(0x8A, "") +
                             client_frame(0x00, "") + client_frame(0x80, "world");
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    const Parsed parsed = parse_chunks(stream, {cut});
    ASSERT_FALSE(parsed.error);
    ASSERT_EQ(parsed.events.size(), 3u);
    EXPECT_EQ(parsed.events[0].kind, Kind::kPing);
    EXPECT_EQ(parsed.events[0].payload, "p1");
    EXPECT_EQ(parsed.events[1].kind, Kind::kPong);
    EXPECT_EQ(parsed.events[2].kind, Kind::kText);
    EXPECT_EQ(parsed.events[2].payload, "Hello, world");
  }
  // A fragmented binary message.
  const Parsed binary = parse_all(client_frame(0x02, "ab") + client_frame(0x80, "c"));
  ASSERT_EQ(binary.events.size(), 1u);
  EXPECT_EQ(binary.events[0].kind, Kind::kBinary);
  EXPECT_EQ(binary.events[0].payload, "abc");
}

TEST(ClientFrameParser, CloseWithoutPayloadReportsNoStatusAndEndsTheStream) {
  ClientFrameParser parser;
  std::string input = client_frame(0x88, "") + text("after close");
  std::string_view view(input);
  ClientEvent event;
  ASSERT_EQ(parser.parse(view, event), Status::kEvent);
  EXPECT_EQ(event.kind, Kind::kClose);
  EXPECT_EQ(event.close_code, close_code::kNoStatus);
  EXPECT_TRUE(parser.closed());
  // The rest is consumed and ignored.
  EXPECT_EQ(parser.parse(view, event), Status::kNeedMore);
  EXPECT_TRUE(view.empty());
}

TEST(ClientFrameParser, UnmaskedFrameIsAProtocolError) {
  const auto error = expect_error(client_frame(0x81, "hi", false));
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "unmasked client frame");
}

TEST(ClientFrameParser, ReservedBitsAndOpcodesAreProtocolErrors) {
  for (std::uint8_t b0 :
       {std::uint8_t{0xC1}, std::uint8_t{0xA1}, std::uint8_t{0x91}}) {  // RSV1, RSV2, RSV3
    const auto error = expect_error(client_frame(b0, "x"));
    EXPECT_EQ(error.close_code, close_code::kProtocolError);
    EXPECT_EQ(error.reason, "reserved bits set");
  }
  for (int opcode : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    const auto error = expect_error(client_frame(static_cast<std::uint8_t>(0x80 | opcode), "x"));
    EXPECT_EQ(error.close_code, close_code::kProtocolError) << opcode;
    EXPECT_EQ(error.reason, "reserved opcode");
  }
}

TEST(ClientFrameParser, ControlFramesMustBeShortAndFinal) {
  auto error = expect_error(client_frame(0x89, std::string(126, 'p')));
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "control frame too long");
  error = expect_error(client_frame(0x09, "p"));
  EXPECT_EQ(error.reason, "fragmented control frame");
  error = expect_error(client_frame(0x08, close_payload(1000, "")));
  EXPECT_EQ(error.reason, "fragmented control frame");
  // 125 bytes is fine.
  const Parsed ok = parse_all(client_frame(0x89, std::string(125, 'p')));
  ASSERT_FALSE(ok.error);
  EXPECT_EQ(ok.events[0].payload.size(), 125u);
}

TEST(ClientFrameParser, ContinuationOutsideAMessageAndDataInsideOneAreProtocolErrors) {
  auto error = expect_error(client_frame(0x80, "orphan"));
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "unexpected continuation frame");
  error = expect_error(client_frame(0x01, "start") + text("interloper"));
  EXPECT_EQ(error.reason, "expected continuation frame");
  error = expect_error(client_frame(0x01, "start") + client_frame(0x82, "interloper"));
  EXPECT_EQ(error.reason, "expected continuation frame");
}

TEST(ClientFrameParser, SixtyFourBitLengthWithTheTopBitSetIsAProtocolError) {
  std::string frame = bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 1, 2, 3, 4});
  const auto error = expect_error(frame);
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "invalid frame length");
}

TEST(ClientFrameParser, InvalidClosePayloadsAreRefused) {
  auto error = expect_error(client_frame(0x88, "x"));  // one byte
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "invalid close frame");
  for (int code : {999, 1004, 1005, 1006, 1015, 2000, 5000}) {
    error = expect_error(client_frame(0x88, close_payload(static_cast<std::uint16_t>(code), "")));
    EXPECT_EQ(error.close_code, close_code::kProtocolError) << code;
    EXPECT_EQ(error.reason, "invalid close code");
  }
  error = expect_error(client_frame(0x88, close_payload(1000, "bad \xFF utf-8")));
  EXPECT_EQ(error.close_code, close_code::kInvalidPayload);
  EXPECT_EQ(error.reason, "invalid close reason");
}

TEST(ClientFrameParser, ErrorIsSticky) {
  ClientFrameParser parser;
  std::string input = client_frame(0x81, "x", false);
  std::string_view view(input);
  ClientEvent event;
  EXPECT_EQ(parser.parse(view, event), Status::kError);
  std::string more = text("valid");
  std::string_view view2(more);
  EXPECT_EQ(parser.parse(view2, event), Status::kError);
  EXPECT_EQ(parser.error().close_code, close_code::kProtocolError);
}

TEST(ClientFrameParser, MessageAtTheLimitPassesOneByteMoreIsTooBig) {
  constexpr std::size_t kLimit = 1000;
  const Parsed at_limit = parse_all(text(std::string(kLimit, 'a')), kLimit);
  ASSERT_FALSE(at_limit.error);
  EXPECT_EQ(at_limit.events[0].payload.size(), kLimit);

  const auto error = expect_error(text(std::string(kLimit + 1, 'a')), kLimit);
  EXPECT_EQ(error.close_code, close_code::kMessageTooBig);
  EXPECT_EQ(error.reason, "message too big");
}

TEST(ClientFrameParser, FragmentsAddUpTowardsTheLimit) {
  constexpr std::size_t kLimit = 1000;
  const std::string stream = client_frame(0x01, std::string(600, 'a')) +
                             client_frame(0x89, "control frames do not count") +
                             client_frame(0x00, std::string(400, 'b')) +
                             client_frame(0x80, std::string(1, 'c'));
  const Parsed parsed = parse_all(stream, kLimit);
  ASSERT_TRUE(parsed.error);
  EXPECT_EQ(parsed.protocol_error.close_code, close_code::kMessageTooBig);
  ASSERT_EQ(parsed.events.size(), 1u);  // the ping before the fragment that overflowed
  EXPECT_EQ(parsed.events[0].kind, Kind::kPing);
}

TEST(ClientFrameParser, HugeAnnouncedLengthIsRefusedFromTheHeaderAlone) {
  // A header announcing 2^40 bytes, and no payload: refused before anything is buffered.
  ClientFrameParser parser(kDefaultMaxMessageBytes);
  std::string header = bytes({0x82, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4});
  std::string_view view(header);
  ClientEvent event;
  EXPECT_EQ(parser.parse(view, event), Status::kError);
  EXPECT_EQ(parser.error().close_code, close_code::kMessageTooBig);
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(ClientFrameParser, V1LimitIsTenMillionBytes) {
  EXPECT_EQ(kDefaultMaxMessageBytes, 10'000'000u);
  const auto error =
      expect_error(bytes({0x81, 0xFF, 0, 0, 0, 0, 0, 0x98, 0x96, 0x81, 1, 2, 3, 4}));  // 10,000,001
  EXPECT_EQ(error.close_code, close_code::kMessageTooBig);
}

}  // namespace
}  // namespace jetstream::fanout
