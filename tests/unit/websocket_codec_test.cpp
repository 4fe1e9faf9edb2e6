// The one RFC 6455 codec (common/websocket/codec.hpp): frames as each side writes them, the close
// reason policy, the handshake, and the frame parser for both senders fed in arbitrary chunks
// (every protocol error, the size limit, kept prefixes).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/text/utf8.hpp"
#include "common/websocket/codec.hpp"

namespace jetstream::websocket {
namespace {

using Status = FrameParser::Status;
using text::is_valid_utf8;

/// v1's limit on a client message, in decimal bytes.
constexpr std::size_t kV1Limit = 10'000'000;
constexpr Mask kMask = {0x37, 0xfa, 0x21, 0x3d};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

/// A client frame: first byte `b0` (FIN, RSV, opcode) as given, masked unless `masked` is false.
std::string client_frame(std::uint8_t b0, std::string_view payload, bool masked = true) {
  std::string out;
  append_raw_frame(out, b0, payload, masked ? &kMask : nullptr);
  return out;
}

/// A server frame: first byte `b0` as given, unmasked.
std::string server_frame(std::uint8_t b0, std::string_view payload) {
  std::string out;
  append_raw_frame(out, b0, payload);
  return out;
}

std::string text(std::string_view payload) { return client_frame(0x81, payload); }

/// A close payload as given (code and reason unchecked, unlike `close_payload`).
std::string raw_close_payload(std::uint16_t code, std::string_view reason) {
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xFF);
  out.append(reason);
  return out;
}

struct Parsed {
  std::vector<Message> messages;
  bool error = false;
  ProtocolError protocol_error;
};

/// Feeds `stream` cut into the given chunk sizes (the rest in one final chunk).
Parsed parse_chunks(const std::string& stream, const std::vector<std::size_t>& cuts,
                    std::size_t limit = kV1Limit, Sender sender = Sender::kClient,
                    KeepBytes keep = {}) {
  FrameParser parser(sender, limit);
  Parsed result;
  std::size_t at = 0;
  Message message;
  auto feed = [&](std::string_view chunk) {
    while (!chunk.empty() && !result.error) {
      switch (parser.parse(chunk, message, keep)) {
        case Status::kNeedMore: EXPECT_TRUE(chunk.empty()); break;
        case Status::kMessage: {
          Message copy = message;  // `view` may point into the chunk or into `message`
          copy.payload = std::string(message.view);
          copy.view = {};  // the tests read `payload`
          result.messages.push_back(std::move(copy));
          break;
        }
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

Parsed parse_all(const std::string& stream, std::size_t limit = kV1Limit) {
  return parse_chunks(stream, {}, limit);
}

ProtocolError expect_error(const std::string& stream, std::size_t limit = kV1Limit,
                           Sender sender = Sender::kClient) {
  const Parsed parsed = parse_chunks(stream, {}, limit, sender);
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

TEST(WsFrame, CloseFrameReasonIsFittedByTheOnePolicy) {
  const std::string frame = make_close_frame(1008, std::string(200, 'a'));
  ASSERT_EQ(frame.size(), 2u + 125u);
  EXPECT_EQ(frame.substr(4), std::string(120, 'a') + "...");
  EXPECT_EQ(close_payload(1000, std::string(200, 'r')).size(), 125u);
  EXPECT_EQ(close_payload(close_code::kNoStatus, "ignored"), "");
}

// --- The close-reason policy --------------------------------------------------------------

TEST(CloseReason, ShortValidTextIsUnchanged) {
  EXPECT_EQ(fit_close_reason(""), "");
  EXPECT_EQ(fit_close_reason("server shutting down"), "server shutting down");
  const std::string exactly(123, 'x');
  EXPECT_EQ(fit_close_reason(exactly), exactly);
}

TEST(CloseReason, LongTextIsCutTo120BytesPlusEllipsis) {
  const std::string long_text(124, 'x');
  EXPECT_EQ(fit_close_reason(long_text), std::string(120, 'x') + "...");
  EXPECT_EQ(fit_close_reason(std::string(10'000'000, 'y')), std::string(120, 'y') + "...");
}

TEST(CloseReason, CutsOnlyBetweenCharacters) {
  // 119 ASCII + a 4-byte character: 123 bytes, fits whole.
  std::string text = std::string(119, 'a') + "\xF0\x9F\x98\x80";
  EXPECT_EQ(fit_close_reason(text), text);
  // One more byte: the character cannot stay (119 + 4 + 3 > 123) and cannot be split.
  text += "b";
  EXPECT_EQ(fit_close_reason(text), std::string(119, 'a') + "...");
}

TEST(CloseReason, ReplacesEachInvalidByteWithUFFFDLikeGo) {
  EXPECT_EQ(fit_close_reason("a\xFF"
                             "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(fit_close_reason("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD") << "overlong";
  EXPECT_EQ(fit_close_reason("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD")
      << "surrogate";
  EXPECT_EQ(fit_close_reason("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD") << "truncated";
  const std::string many(200, '\xFF');
  const std::string fitted = fit_close_reason(many);
  EXPECT_LE(fitted.size(), kMaxCloseReasonBytes);
  EXPECT_TRUE(is_valid_utf8(fitted));
  EXPECT_EQ(fitted.substr(fitted.size() - 3), "...");
}

TEST(CloseReason, FittingTwiceChangesNothing) {
  for (const std::string& reason : {std::string(300, 'x'), std::string("caf\xC3\xA9 \xFF"),
                                    std::string(119, 'a') + "\xF0\x9F\x98\x80" + "b"}) {
    const std::string once = fit_close_reason(reason);
    EXPECT_EQ(fit_close_reason(once), once);
  }
}

TEST(CloseReason, ClosePayloadsReadBack) {
  const std::string payload = close_payload(1001, "server shutting down");
  const auto close = parse_close_payload(payload);  // views into `payload`
  ASSERT_TRUE(close);
  EXPECT_EQ(close->code, 1001);
  EXPECT_EQ(close->reason, "server shutting down");
  EXPECT_EQ(parse_close_payload("")->code, close_code::kNoStatus);
  EXPECT_FALSE(parse_close_payload("x")) << "one byte";
  EXPECT_FALSE(parse_close_payload(raw_close_payload(1005, ""))) << "a code that is never sent";
  EXPECT_FALSE(parse_close_payload(raw_close_payload(1000, "\xFF"))) << "not UTF-8";
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

TEST(FrameParserOfClientFrames, Rfc6455MaskedHelloExample) {
  // RFC 6455 §5.7: a single-frame masked text message "Hello".
  const std::string frame =
      bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  const Parsed parsed = parse_all(frame);
  ASSERT_FALSE(parsed.error);
  ASSERT_EQ(parsed.messages.size(), 1u);
  EXPECT_EQ(parsed.messages[0].opcode, Opcode::kText);
  EXPECT_EQ(parsed.messages[0].payload, "Hello");
}

TEST(FrameParserOfClientFrames, SameEventsWhateverTheChunkBoundaries) {
  std::string big(70'000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  const std::string stream = text("one") + client_frame(0x89, "ping!") +
                             client_frame(0x82, std::string(300, 'b')) + client_frame(0x82, big) +
                             client_frame(0x8A, "") + text("") +
                             // A non-minimal 64-bit length, mask 0: valid.
                             bytes({0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0}) + "long-form" +
                             client_frame(0x88, raw_close_payload(1000, "done"));
  auto check = [&](const Parsed& parsed, const std::string& where) {
    ASSERT_FALSE(parsed.error) << where;
    ASSERT_EQ(parsed.messages.size(), 8u) << where;
    EXPECT_EQ(parsed.messages[0].opcode, Opcode::kText);
    EXPECT_EQ(parsed.messages[0].payload, "one");
    EXPECT_EQ(parsed.messages[1].opcode, Opcode::kPing);
    EXPECT_EQ(parsed.messages[1].payload, "ping!");
    EXPECT_EQ(parsed.messages[2].opcode, Opcode::kBinary);
    EXPECT_EQ(parsed.messages[2].payload, std::string(300, 'b'));
    EXPECT_EQ(parsed.messages[3].payload, big) << where;
    EXPECT_EQ(parsed.messages[4].opcode, Opcode::kPong);
    EXPECT_EQ(parsed.messages[5].opcode, Opcode::kText);
    EXPECT_EQ(parsed.messages[5].payload, "");
    EXPECT_EQ(parsed.messages[6].payload, "long-form");
    EXPECT_EQ(parsed.messages[7].opcode, Opcode::kClose);
    EXPECT_EQ(parsed.messages[7].close_code, 1000);
    EXPECT_EQ(parsed.messages[7].payload, "done");
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

TEST(FrameParserOfClientFrames, FragmentedMessageWithInterleavedPingIsReassembled) {
  const std::string stream = client_frame(0x01, "Hel") + client_frame(0x89, "p1") +
                             client_frame(0x00, "lo, ") + client_frame(0x8A, "") +
                             client_frame(0x00, "") + client_frame(0x80, "world");
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    const Parsed parsed = parse_chunks(stream, {cut});
    ASSERT_FALSE(parsed.error);
    ASSERT_EQ(parsed.messages.size(), 3u);
    EXPECT_EQ(parsed.messages[0].opcode, Opcode::kPing);
    EXPECT_EQ(parsed.messages[0].payload, "p1");
    EXPECT_EQ(parsed.messages[1].opcode, Opcode::kPong);
    EXPECT_EQ(parsed.messages[2].opcode, Opcode::kText);
    EXPECT_EQ(parsed.messages[2].payload, "Hello, world");
  }
  // A fragmented binary message.
  const Parsed binary = parse_all(client_frame(0x02, "ab") + client_frame(0x80, "c"));
  ASSERT_EQ(binary.messages.size(), 1u);
  EXPECT_EQ(binary.messages[0].opcode, Opcode::kBinary);
  EXPECT_EQ(binary.messages[0].payload, "abc");
}

TEST(FrameParserOfClientFrames, CloseWithoutPayloadReportsNoStatusAndEndsTheStream) {
  FrameParser parser(Sender::kClient, kV1Limit);
  std::string input = client_frame(0x88, "") + text("after close");
  std::string_view view(input);
  Message event;
  ASSERT_EQ(parser.parse(view, event), Status::kMessage);
  EXPECT_EQ(event.opcode, Opcode::kClose);
  EXPECT_EQ(event.close_code, close_code::kNoStatus);
  EXPECT_TRUE(parser.closed());
  // The rest is consumed and ignored.
  EXPECT_EQ(parser.parse(view, event), Status::kNeedMore);
  EXPECT_TRUE(view.empty());
}

TEST(FrameParserOfClientFrames, UnmaskedFrameIsAProtocolError) {
  const auto error = expect_error(client_frame(0x81, "hi", false));
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "unmasked client frame");
}

TEST(FrameParserOfClientFrames, ReservedBitsAndOpcodesAreProtocolErrors) {
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

TEST(FrameParserOfClientFrames, ControlFramesMustBeShortAndFinal) {
  auto error = expect_error(client_frame(0x89, std::string(126, 'p')));
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "control frame too long");
  error = expect_error(client_frame(0x09, "p"));
  EXPECT_EQ(error.reason, "fragmented control frame");
  error = expect_error(client_frame(0x08, raw_close_payload(1000, "")));
  EXPECT_EQ(error.reason, "fragmented control frame");
  // 125 bytes is fine.
  const Parsed ok = parse_all(client_frame(0x89, std::string(125, 'p')));
  ASSERT_FALSE(ok.error);
  EXPECT_EQ(ok.messages[0].payload.size(), 125u);
}

TEST(FrameParserOfClientFrames, ContinuationOutsideAMessageAndDataInsideOneAreProtocolErrors) {
  auto error = expect_error(client_frame(0x80, "orphan"));
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "unexpected continuation frame");
  error = expect_error(client_frame(0x01, "start") + text("interloper"));
  EXPECT_EQ(error.reason, "expected continuation frame");
  error = expect_error(client_frame(0x01, "start") + client_frame(0x82, "interloper"));
  EXPECT_EQ(error.reason, "expected continuation frame");
}

TEST(FrameParserOfClientFrames, SixtyFourBitLengthWithTheTopBitSetIsAProtocolError) {
  std::string frame = bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 1, 2, 3, 4});
  const auto error = expect_error(frame);
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "invalid frame length");
}

TEST(FrameParserOfClientFrames, InvalidClosePayloadsAreRefused) {
  auto error = expect_error(client_frame(0x88, "x"));  // one byte
  EXPECT_EQ(error.close_code, close_code::kProtocolError);
  EXPECT_EQ(error.reason, "invalid close frame");
  for (int code : {999, 1004, 1005, 1006, 1015, 2000, 5000}) {
    error =
        expect_error(client_frame(0x88, raw_close_payload(static_cast<std::uint16_t>(code), "")));
    EXPECT_EQ(error.close_code, close_code::kProtocolError) << code;
    EXPECT_EQ(error.reason, "invalid close code");
  }
  error = expect_error(client_frame(0x88, raw_close_payload(1000, "bad \xFF utf-8")));
  EXPECT_EQ(error.close_code, close_code::kInvalidPayload);
  EXPECT_EQ(error.reason, "invalid close reason");
}

TEST(FrameParserOfClientFrames, ErrorIsSticky) {
  FrameParser parser(Sender::kClient, kV1Limit);
  std::string input = client_frame(0x81, "x", false);
  std::string_view view(input);
  Message event;
  EXPECT_EQ(parser.parse(view, event), Status::kError);
  std::string more = text("valid");
  std::string_view view2(more);
  EXPECT_EQ(parser.parse(view2, event), Status::kError);
  EXPECT_EQ(parser.error().close_code, close_code::kProtocolError);
}

TEST(FrameParserOfClientFrames, MessageAtTheLimitPassesOneByteMoreIsTooBig) {
  constexpr std::size_t kLimit = 1000;
  const Parsed at_limit = parse_all(text(std::string(kLimit, 'a')), kLimit);
  ASSERT_FALSE(at_limit.error);
  EXPECT_EQ(at_limit.messages[0].payload.size(), kLimit);

  const auto error = expect_error(text(std::string(kLimit + 1, 'a')), kLimit);
  EXPECT_EQ(error.close_code, close_code::kMessageTooBig);
  EXPECT_EQ(error.reason, "message too big");
}

TEST(FrameParserOfClientFrames, FragmentsAddUpTowardsTheLimit) {
  constexpr std::size_t kLimit = 1000;
  const std::string stream = client_frame(0x01, std::string(600, 'a')) +
                             client_frame(0x89, "control frames do not count") +
                             client_frame(0x00, std::string(400, 'b')) +
                             client_frame(0x80, std::string(1, 'c'));
  const Parsed parsed = parse_all(stream, kLimit);
  ASSERT_TRUE(parsed.error);
  EXPECT_EQ(parsed.protocol_error.close_code, close_code::kMessageTooBig);
  ASSERT_EQ(parsed.messages.size(), 1u);  // the ping before the fragment that overflowed
  EXPECT_EQ(parsed.messages[0].opcode, Opcode::kPing);
}

TEST(FrameParserOfClientFrames, HugeAnnouncedLengthIsRefusedFromTheHeaderAlone) {
  // A header announcing 2^40 bytes, and no payload: refused before anything is buffered.
  FrameParser parser(Sender::kClient, kV1Limit);
  std::string header = bytes({0x82, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4});
  std::string_view view(header);
  Message event;
  EXPECT_EQ(parser.parse(view, event), Status::kError);
  EXPECT_EQ(parser.error().close_code, close_code::kMessageTooBig);
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(FrameParserOfClientFrames, TheLimitIsCheckedAgainstA64BitLength) {
  const auto error =
      expect_error(bytes({0x81, 0xFF, 0, 0, 0, 0, 0, 0x98, 0x96, 0x81, 1, 2, 3, 4}));  // 10,000,001
  EXPECT_EQ(error.close_code, close_code::kMessageTooBig);
}

// --- Parser of server frames (jetstream-loadgen, the tests) --------------------------------

/// "opcode size payload" for every message, so two parses compare with ==.
std::vector<std::string> lines(const Parsed& parsed) {
  std::vector<std::string> out;
  for (const Message& m : parsed.messages) {
    out.push_back(std::to_string(static_cast<int>(m.opcode)) + " " + std::to_string(m.size) + " " +
                  m.payload +
                  (m.opcode == Opcode::kClose ? " " + std::to_string(m.close_code) : ""));
  }
  return out;
}

/// Every length encoding, each opcode, a fragmented message with a ping between its fragments,
/// an empty message, and a close.
std::string mixed_server_stream() {
  std::string stream;
  stream += server_frame(0x81, "hello");                   // 7-bit length
  stream += server_frame(0x81, std::string(300, 'a'));     // 16-bit length
  stream += server_frame(0x81, std::string(70'000, 'b'));  // 64-bit length, kept prefix only
  stream += server_frame(0x82, std::string(200, '\x01'));
  stream += server_frame(0x89, "ping!");
  stream += server_frame(0x01, "frag-");  // text, not FIN
  stream += server_frame(0x89, "");       // ping between fragments
  stream += server_frame(0x00, "ment-");  // continuation, not FIN
  stream += server_frame(0x80, "end");    // continuation, FIN
  stream += server_frame(0x8A, "pong");   // unsolicited pong
  stream += server_frame(0x81, "");       // empty message
  stream += make_close_frame(1001, "server shutting down");
  return stream;
}

constexpr KeepBytes kKeep512{512, SIZE_MAX};

TEST(FrameParserOfServerFrames, KeepsTheAskedPrefixAndCountsTheWholeMessage) {
  const auto parsed = parse_chunks(mixed_server_stream(), {}, 1u << 30, Sender::kServer, kKeep512);
  ASSERT_FALSE(parsed.error) << parsed.protocol_error.reason;
  const auto got = lines(parsed);
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(got[0], "1 5 hello");
  EXPECT_EQ(got[1], "1 300 " + std::string(300, 'a'));
  EXPECT_EQ(got[2], "1 70000 " + std::string(512, 'b'));
  EXPECT_EQ(got[3], "2 200 " + std::string(200, '\x01'));
  EXPECT_EQ(got[4], "9 5 ping!");
  EXPECT_EQ(got[5], "9 0 ");
  EXPECT_EQ(got[6], "1 13 frag-ment-end");
  EXPECT_EQ(got[7], "10 4 pong");
  EXPECT_EQ(got[8], "1 0 ");
  EXPECT_EQ(got[9], "8 22 server shutting down 1001");
}

TEST(FrameParserOfServerFrames, GivesTheSameMessagesForEverySplit) {
  const std::string stream = mixed_server_stream();
  const auto expected = lines(parse_chunks(stream, {}, 1u << 30, Sender::kServer, kKeep512));
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    ASSERT_EQ(lines(parse_chunks(stream, {split}, 1u << 30, Sender::kServer, kKeep512)), expected)
        << "split at " << split;
  }
  EXPECT_EQ(lines(parse_chunks(stream, std::vector<std::size_t>(stream.size(), 1), 1u << 30,
                               Sender::kServer, kKeep512)),
            expected)
      << "byte by byte";
}

TEST(FrameParserOfServerFrames, AWholeUnmaskedMessageInTheInputIsAViewIntoIt) {
  const std::string stream =
      server_frame(0x81, "zero copy") + server_frame(0x01, "frag") + server_frame(0x80, "mented");
  FrameParser parser(Sender::kServer, 1000);
  Message message;
  std::string_view input(stream);
  ASSERT_EQ(parser.parse(input, message), Status::kMessage);
  EXPECT_EQ(message.view, "zero copy");
  EXPECT_GE(message.view.data(), stream.data());
  EXPECT_LT(message.view.data(), stream.data() + stream.size()) << "points into the input";
  EXPECT_TRUE(message.payload.empty());
  ASSERT_EQ(parser.parse(input, message), Status::kMessage);
  EXPECT_EQ(message.view, "fragmented") << "fragments are reassembled into payload";
  EXPECT_EQ(message.view.data(), message.payload.data());
}

TEST(FrameParserOfServerFrames, KeepsOnlyThePrefixAcrossFragments) {
  const std::string stream =
      server_frame(0x01, "ab") + server_frame(0x00, "cdef") + server_frame(0x80, "gh");
  const auto parsed = parse_chunks(stream, std::vector<std::size_t>(stream.size(), 1), 1000,
                                   Sender::kServer, KeepBytes{4, 0});
  EXPECT_EQ(lines(parsed), std::vector<std::string>{"1 8 abcd"});
  const auto none =
      parse_chunks(server_frame(0x82, "abc"), {}, 1000, Sender::kServer, KeepBytes{4, 0});
  EXPECT_EQ(lines(none), std::vector<std::string>{"2 3 "});
}

TEST(FrameParserOfServerFrames, RejectsWhatAServerMustNotSend) {
  struct Case {
    std::string stream;
    std::string_view reason;
  };
  const std::vector<Case> cases = {
      {client_frame(0x81, "hello"), "masked server frame"},
      {server_frame(0xC1, "x"), "reserved bits set"},
      {server_frame(0x83, "x"), "reserved opcode"},
      {server_frame(0x09, "x"), "fragmented control frame"},
      {server_frame(0x89, std::string(126, 'p')), "control frame too long"},
      {server_frame(0x80, "x"), "unexpected continuation frame"},
      {server_frame(0x01, "a") + server_frame(0x81, "b"), "expected continuation frame"},
      {bytes({0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1}), "invalid frame length"},
      {server_frame(0x01, std::string(600, 'a')) + server_frame(0x80, std::string(600, 'a')),
       "message too big"},
      {server_frame(0x88, "x"), "invalid close frame"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(expect_error(c.stream, 1000, Sender::kServer).reason, c.reason) << c.reason;
  }
}

TEST(FrameParserOfServerFrames, AfterACloseTheRestIsIgnored) {
  const auto parsed = parse_chunks(make_close_frame(1000, "") + server_frame(0x81, "after"), {},
                                   1000, Sender::kServer);
  ASSERT_FALSE(parsed.error);
  EXPECT_EQ(lines(parsed), std::vector<std::string>{"8 2  1000"});
}

// --- Client frames ---------------------------------------------------------------------------

TEST(ClientFrames, AreMaskedAndParseBack) {
  std::string frame;
  append_masked_frame(frame, Opcode::kPong, "ping!", {0x11, 0x22, 0x33, 0x44});
  ASSERT_EQ(frame.size(), 2u + 4u + 5u);
  EXPECT_EQ(static_cast<std::uint8_t>(frame[0]), 0x8A);
  EXPECT_EQ(static_cast<std::uint8_t>(frame[1]), 0x80 | 5);
  EXPECT_EQ(frame.substr(2, 4), bytes({0x11, 0x22, 0x33, 0x44}));
  EXPECT_EQ(frame_header_size(5, true), 6u);

  std::string big;
  append_masked_frame(big, Opcode::kText, std::string(70'000, 'z'), {1, 2, 3, 4});
  EXPECT_EQ(static_cast<std::uint8_t>(big[1]), 0x80 | 127);
  EXPECT_EQ(big.size(), frame_header_size(70'000, true) + 70'000u);

  const Parsed parsed = parse_all(frame + big);
  ASSERT_FALSE(parsed.error);
  ASSERT_EQ(parsed.messages.size(), 2u);
  EXPECT_EQ(parsed.messages[0].payload, "ping!");
  EXPECT_EQ(parsed.messages[1].payload, std::string(70'000, 'z'));
  EXPECT_THROW(append_masked_frame(big, Opcode::kContinuation, "x", kMask), std::invalid_argument);
}

TEST(WsHandshake, ClientKeyIsBase64OfTheNonceAndAcceptedByTheServerCheck) {
  const std::array<std::uint8_t, 16> nonce = {'t', 'h', 'e', ' ', 's', 'a', 'm', 'p',
                                              'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'};
  EXPECT_EQ(websocket_client_key(nonce), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_TRUE(is_valid_websocket_key(websocket_client_key(nonce)));
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
}

}  // namespace
}  // namespace jetstream::websocket
