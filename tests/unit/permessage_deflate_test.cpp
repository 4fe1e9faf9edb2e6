// permessage-deflate (common/websocket/permessage_deflate.hpp): the server's negotiation for
// shared compressed bytes, a client's reading of the answer, RFC 7692's own example bytes, the
// bounded inflater (a deflate bomb stops at its bound) and RSV1 in the frame parser.
#include "common/websocket/permessage_deflate.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

#include "common/websocket/codec.hpp"

namespace jetstream::websocket {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

constexpr std::string_view kAnswer =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

TEST(PermessageDeflateNegotiation, BrowserAndWsOffersAreAcceptedWithNoContextTakeoverBothWays) {
  // What Chromium and npm ws send.
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate; client_max_window_bits"), kAnswer);
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate"), kAnswer);
  // Firefox and Safari: the same, sometimes with both no-context-takeover flags.
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate;client_no_context_takeover;"
                                      "server_no_context_takeover"),
            kAnswer);
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate; client_max_window_bits=10"), kAnswer);
}

TEST(PermessageDeflateNegotiation, AServerWindowBelowFifteenIsDeclinedAndFifteenIsEchoed) {
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate; server_max_window_bits=10"),
            std::nullopt);
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate; server_max_window_bits=8"),
            std::nullopt);
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate; server_max_window_bits=15"),
            std::string(kAnswer) + "; server_max_window_bits=15");
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate; server_max_window_bits=\"15\""),
            std::string(kAnswer) + "; server_max_window_bits=15");
  // A later offer of the list is taken when the first cannot be (RFC 7692 §5).
  EXPECT_EQ(accept_permessage_deflate("permessage-deflate; server_max_window_bits=9, "
                                      "permessage-deflate"),
            kAnswer);
}

TEST(PermessageDeflateNegotiation, MalformedOffersAndOtherExtensionsAreDeclined) {
  for (const std::string_view offer : {
           "",
           "x-webkit-deflate-frame",
           "permessage-deflate; server_max_window_bits",      // a value is required
           "permessage-deflate; server_max_window_bits=16",   // out of range
           "permessage-deflate; server_max_window_bits=015",  // leading zero
           "permessage-deflate; client_max_window_bits=7",
           "permessage-deflate; client_max_window_bits=abc",
           "permessage-deflate; server_no_context_takeover=1",
           "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
           "permessage-deflate; unknown_parameter",
           "permessage-deflate; server_max_window_bits=\"15",  // an unclosed quote
           "permessage-deflate;;",
           "=; permessage-deflate",
       }) {
    EXPECT_EQ(accept_permessage_deflate(offer), std::nullopt) << offer;
  }
  // A broken element does not hide a good one after it.
  EXPECT_EQ(accept_permessage_deflate("foo; a=\"x,y\" ;;, permessage-deflate"), kAnswer);
  EXPECT_EQ(accept_permessage_deflate("mux, PerMessage-Deflate"), kAnswer);
}

TEST(PermessageDeflateNegotiation, AClientReadsTheServersAnswer) {
  const auto none = read_permessage_deflate_response("");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->accepted);
  const auto ours = read_permessage_deflate_response(kAnswer);
  ASSERT_TRUE(ours);
  EXPECT_TRUE(ours->accepted);
  EXPECT_TRUE(ours->server_no_context_takeover);
  EXPECT_TRUE(ours->client_no_context_takeover);
  const auto plain = read_permessage_deflate_response("permessage-deflate");
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->accepted);
  EXPECT_FALSE(plain->server_no_context_takeover);
  EXPECT_EQ(read_permessage_deflate_response("x-other"), std::nullopt);
  EXPECT_EQ(read_permessage_deflate_response("permessage-deflate, permessage-deflate"),
            std::nullopt);
  EXPECT_EQ(read_permessage_deflate_response("permessage-deflate; client_max_window_bits=9"),
            std::nullopt);
  EXPECT_EQ(read_permessage_deflate_response("permessage-deflate; bogus"), std::nullopt);
}

// RFC 7692 §7.2.3: the example bytes.
TEST(PermessageDeflateMessages, CompressingHelloGivesTheRfcBytes) {
  MessageDeflater deflater;
  std::string out;
  EXPECT_EQ(deflater.compress("Hello", out), 7U);
  EXPECT_EQ(out, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
  // No context takeover: the second message is compressed alone, to the same bytes.
  std::string again;
  deflater.compress("Hello", again);
  EXPECT_EQ(again, out);
}

TEST(PermessageDeflateMessages, TheRfcExamplesInflate) {
  MessageInflater inflater;
  std::string out;
  // §7.2.3.1 compressed, §7.2.3.3 a stored block, §7.2.3.4 with BFINAL set.
  for (const std::string& payload :
       {bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}),
        bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}),
        bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})}) {
    ASSERT_EQ(inflater.inflate(payload, 1000, out), MessageInflater::Result::kOk);
    EXPECT_EQ(out, "Hello");
  }
  // §7.2.3.2: with context takeover, the second "Hello" refers back to the first.
  MessageInflater stream(/*reset_each_message=*/false);
  ASSERT_EQ(stream.inflate(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), 1000, out),
            MessageInflater::Result::kOk);
  ASSERT_EQ(stream.inflate(bytes({0xf2, 0x00, 0x11, 0x00, 0x00}), 1000, out),
            MessageInflater::Result::kOk);
  EXPECT_EQ(out, "Hello");
}

TEST(PermessageDeflateMessages, RoundTripsEventsOfEverySizeAndEmptyMessages) {
  MessageDeflater deflater;
  MessageInflater inflater;
  std::mt19937 random(7);
  for (std::size_t size : {0UL, 1UL, 200UL, 1500UL, 70'000UL, 3'000'000UL}) {
    std::string message;
    for (std::size_t i = 0; i < size; ++i) {
      // JSON-like text with some noise: compressible, not trivially.
      message += (i % 17 == 0) ? static_cast<char>('a' + random() % 26) : "{\"did\":"[i % 7];
    }
    std::string compressed, out;
    deflater.compress(message, compressed);
    ASSERT_EQ(inflater.inflate(compressed, size, out), MessageInflater::Result::kOk) << size;
    EXPECT_EQ(out, message) << size;
    if (size >= 200) {
      EXPECT_LT(compressed.size(), size / 2) << size;
    }
  }
}

TEST(PermessageDeflateMessages, ADeflateBombStopsAtTheBoundAndGarbageIsCorrupt) {
  MessageDeflater deflater;
  MessageInflater inflater;
  const std::string zeros(50'000'000, '\0');  // ~50 KB compressed
  std::string bomb;
  deflater.compress(zeros, bomb);
  ASSERT_LT(bomb.size(), 100'000U);
  std::string out;
  EXPECT_EQ(inflater.inflate(bomb, 10'000'000, out), MessageInflater::Result::kTooBig);
  EXPECT_EQ(out.size(), 10'000'000U);
  // Exactly at the bound is fine.
  std::string exact;
  deflater.compress(std::string_view(zeros).substr(0, 1000), exact);
  EXPECT_EQ(inflater.inflate(exact, 1000, out), MessageInflater::Result::kOk);
  EXPECT_EQ(inflater.inflate(exact, 999, out), MessageInflater::Result::kTooBig);
  // A reserved block type (BTYPE 11) is not DEFLATE.
  EXPECT_EQ(inflater.inflate(bytes({0xff, 0xff, 0xff}), 1000, out),
            MessageInflater::Result::kCorrupt);
  // The inflater is usable again after an error.
  ASSERT_EQ(inflater.inflate(exact, 1000, out), MessageInflater::Result::kOk);
  EXPECT_EQ(out, std::string(1000, '\0'));
}

// RSV1 in the frame parser (RFC 7692 §6).
TEST(PermessageDeflateFrames, RsvOneMarksACompressedMessageOnlyWhereNegotiated) {
  constexpr Mask kMask = {1, 2, 3, 4};
  std::string frame;
  append_masked_frame(frame, Opcode::kText, "abc", kMask, /*compressed=*/true);
  ASSERT_EQ(static_cast<std::uint8_t>(frame[0]), 0xC1);
  {
    FrameParser parser(Sender::kClient, 1000, Compression::kPermessageDeflate);
    std::string_view input = frame;
    Message message;
    ASSERT_EQ(parser.parse(input, message), FrameParser::Status::kMessage);
    EXPECT_TRUE(message.compressed);
    EXPECT_EQ(message.view, "abc");
    // An uncompressed message on the same connection is allowed and not marked.
    std::string plain;
    append_masked_frame(plain, Opcode::kText, "xyz", kMask);
    input = plain;
    ASSERT_EQ(parser.parse(input, message), FrameParser::Status::kMessage);
    EXPECT_FALSE(message.compressed);
  }
  {
    FrameParser parser(Sender::kClient, 1000);  // not negotiated
    std::string_view input = frame;
    Message message;
    ASSERT_EQ(parser.parse(input, message), FrameParser::Status::kError);
    EXPECT_EQ(parser.error().reason, "reserved bits set");
  }
  // Never on a continuation, a control frame, or with RSV2/RSV3.
  for (const std::string& bad :
       {bytes({0x01, 0x81, 1, 2, 3, 4, 'a' ^ 1, 0xC0, 0x81, 1, 2, 3, 4, 'b' ^ 1}),
        bytes({0xC9, 0x80, 1, 2, 3, 4}), bytes({0xE1, 0x80, 1, 2, 3, 4})}) {
    FrameParser parser(Sender::kClient, 1000, Compression::kPermessageDeflate);
    std::string_view input = bad;
    Message message;
    FrameParser::Status status;
    do {
      status = parser.parse(input, message);
    } while (status == FrameParser::Status::kMessage);
    EXPECT_EQ(status, FrameParser::Status::kError);
  }
  // A fragmented compressed message: RSV1 on the first frame only, and the whole is marked.
  const std::string fragmented =
      bytes({0x41, 0x81, 1, 2, 3, 4, 'a' ^ 1, 0x80, 0x81, 1, 2, 3, 4, 'b' ^ 1});
  FrameParser parser(Sender::kClient, 1000, Compression::kPermessageDeflate);
  std::string_view input = fragmented;
  Message message;
  ASSERT_EQ(parser.parse(input, message), FrameParser::Status::kMessage);
  EXPECT_TRUE(message.compressed);
  EXPECT_EQ(message.view, "ab");
  // A server's header with RSV1.
  std::uint8_t header[kMaxServerHeaderBytes];
  ASSERT_EQ(write_frame_header(Opcode::kText, 5, header, true), 2U);
  EXPECT_EQ(header[0], 0xC1);
}

}  // namespace
}  // namespace jetstream::websocket
