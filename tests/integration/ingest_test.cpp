// The real jetstream-ingest binary between a FrameServer on 127.0.0.1 (the upstream relay) and
// this file's DecodeStub (decode's side of proto §5.1 over real ZeroMQ sockets): nothing moves
// before decode's first resume; then every upstream frame arrives untouched in its envelope,
// with contiguous ingest seqs, across resumes, dropped connections, stalls and kill -9.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <variant>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/firehose/capture.hpp"
#include "common/firehose/frame.hpp"
#include "common/websocket/frame_server.hpp"
#include "proto/proto.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/refused_flags.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/tls_certificate.hpp"

namespace {

namespace proto = jetstream::proto;
namespace support = jetstream::testing;
using jetstream::websocket::FrameServer;
using jetstream::websocket::FrameServerOptions;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

std::vector<Bytes> load_corpus() {
  const auto path = support::shared_file("corpus/dev.frames");
  if (!path) return {};
  const auto capture = support::read_binary_file(*path);
  const auto split = jetstream::firehose::split_capture({capture.data(), capture.size()});
  std::vector<Bytes> frames;
  if (split) {
    for (const auto frame : *split) frames.emplace_back(frame.begin(), frame.end());
  }
  return frames;
}

std::int64_t seq_of(const Bytes& frame) {
  return jetstream::firehose::peek_frame_seq({frame.data(), frame.size()}).value_or(0);
}

struct ReceivedFrame {
  proto::FrameHeader header;
  Bytes bytes;
};

/// Plays decode: SUB on ingest's frames (F and S), PUSH to its control socket.
class DecodeStub {
 public:
  DecodeStub(std::uint16_t frames_port, std::uint16_t control_port)
      : sub_(context_, zmq::socket_type::sub), push_(context_, zmq::socket_type::push) {
    sub_.set(zmq::sockopt::subscribe, "F");
    sub_.set(zmq::sockopt::subscribe, "S");
    sub_.set(zmq::sockopt::rcvhwm, 0);
    sub_.set(zmq::sockopt::linger, 0);
    push_.set(zmq::sockopt::linger, 0);
    sub_.connect("tcp://127.0.0.1:" + std::to_string(frames_port));
    push_.connect("tcp://127.0.0.1:" + std::to_string(control_port));
  }

  /// The next message (frame or status), or nothing within `timeout`. Fails the test on a
  /// message that does not decode.
  std::optional<std::variant<ReceivedFrame, proto::Status>> next(
      std::chrono::milliseconds timeout) {
    sub_.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(sub_, std::back_inserter(parts))) return std::nullopt;
    const auto span = [](const zmq::message_t& m) {
      return std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(m.data()), m.size());
    };
    const auto type = proto::decode_topic(span(parts.at(0)));
    EXPECT_TRUE(type.ok());
    if (!type.ok()) return std::nullopt;
    if (*type == proto::MessageType::status) {
      EXPECT_EQ(parts.size(), 2u);
      const auto status = proto::decode_status(span(parts.at(1)));
      EXPECT_TRUE(status.ok()) << proto::to_string(status.error());
      if (!status.ok()) return std::nullopt;
      last_status_ = *status;
      return *status;
    }
    EXPECT_EQ(*type, proto::MessageType::frame);
    EXPECT_EQ(parts.size(), 3u);
    const auto frame = proto::decode_frame(span(parts.at(1)), span(parts.at(2)));
    EXPECT_TRUE(frame.ok()) << proto::to_string(frame.error());
    if (!frame.ok()) return std::nullopt;
    return ReceivedFrame{frame->header, Bytes(frame->frame.begin(), frame->frame.end())};
  }

  /// The next status, skipping frames; nullopt when none comes in time.
  std::optional<proto::Status> next_status(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto message = next(100ms);
      if (message && std::holds_alternative<proto::Status>(*message)) {
        return std::get<proto::Status>(*message);
      }
    }
    return std::nullopt;
  }

  /// Frames until `count` were received or `timeout` passed (statuses are remembered).
  std::vector<ReceivedFrame> frames(std::size_t count, std::chrono::milliseconds timeout = 10s) {
    std::vector<ReceivedFrame> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
      auto message = next(100ms);
      if (message && std::holds_alternative<ReceivedFrame>(*message)) {
        out.push_back(std::get<ReceivedFrame>(std::move(*message)));
      }
    }
    return out;
  }

  void resume(std::uint64_t resume_id, std::uint64_t seen_epoch, std::int64_t cursor) {
    const auto body = proto::encode_resume({resume_id, seen_epoch, cursor});
    const auto topic = proto::topic(proto::MessageType::resume);
    ASSERT_TRUE(push_.send(zmq::buffer(topic.data(), topic.size()), zmq::send_flags::sndmore));
    ASSERT_TRUE(push_.send(zmq::buffer(body), zmq::send_flags::none));
  }

  const std::optional<proto::Status>& last_status() const { return last_status_; }

 private:
  zmq::context_t context_{1};
  zmq::socket_t sub_;
  zmq::socket_t push_;
  std::optional<proto::Status> last_status_;
};

using support::http_get;
using support::metric_value;

class IngestBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    corpus_ = load_corpus();
    if (corpus_.empty()) GTEST_FAIL() << "shared input missing: corpus/dev.frames";
    frames_port_ = support::free_loopback_port();
    control_port_ = support::free_loopback_port();
    metrics_port_ = support::free_loopback_port();
    log_path_ = (std::filesystem::temp_directory_path() /
                 ("jetstream-ingest-test-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".log"))
                    .string();
    std::filesystem::remove(log_path_);
  }

  void TearDown() override {
    if (ingest_.running()) {
      const auto status = ingest_.stop(SIGTERM, 10s);
      EXPECT_TRUE(status.has_value()) << "ingest did not stop on SIGTERM";
      if (status) {
        EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
      }
    }
    if (HasFailure()) std::cerr << "---- ingest log ----\n" << ingest_.log();
    std::filesystem::remove(log_path_);
  }

  void start_server(FrameServerOptions options) {
    server_ = std::make_unique<FrameServer>(corpus_, options);
  }

  void start_ingest(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--ws-url",
        server_->url(),
        "--frames-listen-addr",
        "127.0.0.1:" + std::to_string(frames_port_),
        "--control-listen-addr",
        "127.0.0.1:" + std::to_string(control_port_),
        "--metrics-listen-addr",
        "127.0.0.1:" + std::to_string(metrics_port_),
        "--status-interval",
        "100ms",
        "--backoff-initial",
        "50ms",
        "--backoff-max",
        "400ms",
        "--ping-interval",
        "1s",
        "--idle-timeout",
        "5s",
        "--stall-timeout",
        "0",
    };
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(ingest_.start(JETSTREAM_INGEST_BINARY, args, log_path_));
  }

  std::unique_ptr<DecodeStub> make_decode() {
    return std::make_unique<DecodeStub>(frames_port_, control_port_);
  }

  std::string scrape() { return http_get(metrics_port_, "/metrics").body; }

  /// Checks that `received` are `expected` in their envelopes: same bytes, contiguous ingest
  /// seqs from `first_ingest_seq`, upstream seqs read from the frame.
  void expect_envelopes(const std::vector<ReceivedFrame>& received,
                        const std::vector<Bytes>& expected, std::uint64_t epoch,
                        std::uint64_t first_ingest_seq, std::uint64_t resume_id) {
    ASSERT_EQ(received.size(), expected.size());
    for (std::size_t i = 0; i < received.size(); ++i) {
      const auto& header = received[i].header;
      SCOPED_TRACE("frame " + std::to_string(i));
      EXPECT_EQ(received[i].bytes, expected[i]);
      EXPECT_EQ(header.epoch, epoch);
      EXPECT_EQ(header.ingest_seq, first_ingest_seq + i);
      EXPECT_EQ(header.resume_id, resume_id);
      EXPECT_EQ(header.upstream_seq, seq_of(expected[i]));
      EXPECT_EQ(header.frame_size, expected[i].size());
      EXPECT_GT(header.receive_time_us, 1'700'000'000'000'000);
    }
  }

  std::vector<Bytes> corpus_;
  std::unique_ptr<FrameServer> server_;
  support::ChildProcess ingest_;
  std::uint16_t frames_port_ = 0;
  std::uint16_t control_port_ = 0;
  std::uint16_t metrics_port_ = 0;
  std::string log_path_;
};

TEST_F(IngestBinary, DoesNotConnectUpstreamBeforeDecodesFirstResume) {
  start_server({});
  start_ingest();
  auto decode = make_decode();
  for (int i = 0; i < 5; ++i) {
    const auto status = decode->next_status();
    ASSERT_TRUE(status) << "no status from ingest";
    EXPECT_NE(status->epoch, 0u);
    EXPECT_EQ(status->resume_id, 0u);
    EXPECT_EQ(status->last_ingest_seq, 0u);
    EXPECT_FALSE(status->connected);
  }
  EXPECT_EQ(server_->connections(), 0u);
  // Waiting for decode is a normal, ready state.
  EXPECT_EQ(http_get(metrics_port_, "/healthz").status, 200);
  EXPECT_EQ(http_get(metrics_port_, "/readyz").status, 200);
  EXPECT_EQ(metric_value(scrape(), "jetstream_ingest_upstream_state{state=\"idle\"}"), 1);
}

TEST_F(IngestBinary, AfterALiveResumeEveryFrameArrivesUntouchedWithContiguousIngestSeqs) {
  FrameServerOptions options;
  options.keep_open = true;
  start_server(options);
  start_ingest();
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  const auto frames = decode->frames(corpus_.size());
  expect_envelopes(frames, corpus_, first->epoch, 1, 1);
  ASSERT_FALSE(frames.empty());
  EXPECT_TRUE(frames.front().header.stream_start);
  for (std::size_t i = 1; i < frames.size(); ++i) EXPECT_FALSE(frames[i].header.stream_start);

  ASSERT_EQ(server_->request_targets().size(), 1u);
  EXPECT_EQ(server_->request_targets()[0], jetstream::websocket::kSubscribeReposPath);
  const auto status = decode->next_status();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->resume_id, 1u);
  EXPECT_EQ(status->last_ingest_seq, corpus_.size());
  EXPECT_EQ(status->last_upstream_seq, seq_of(corpus_.back()));
  EXPECT_TRUE(status->connected);

  const auto text = scrape();
  EXPECT_EQ(metric_value(text, "jetstream_ingest_frames_received_total"),
            static_cast<double>(corpus_.size()));
  EXPECT_EQ(metric_value(text, "jetstream_ingest_frames_published_total"),
            static_cast<double>(corpus_.size()));
  EXPECT_EQ(metric_value(text, "jetstream_ingest_upstream_connected"), 1);
  EXPECT_EQ(metric_value(text, "jetstream_ingest_last_upstream_seq"),
            static_cast<double>(seq_of(corpus_.back())));
  EXPECT_EQ(http_get(metrics_port_, "/readyz").status, 200);
}

TEST_F(IngestBinary, AResumeWithACursorReconnectsUpstreamWithThatCursor) {
  FrameServerOptions options;
  options.keep_open = true;
  start_server(options);
  start_ingest();
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  ASSERT_EQ(decode->frames(corpus_.size()).size(), corpus_.size());

  // Decode repairs: everything after the 40th frame again, under a new resume id.
  const std::size_t after = 39;
  const std::int64_t cursor = seq_of(corpus_[after]);
  ASSERT_GT(cursor, 0);
  decode->resume(2, first->epoch, cursor);
  const std::vector<Bytes> expected(corpus_.begin() + after + 1, corpus_.end());
  const auto frames = decode->frames(expected.size());
  expect_envelopes(frames, expected, first->epoch, corpus_.size() + 1, 2);
  ASSERT_FALSE(frames.empty());
  EXPECT_TRUE(frames.front().header.stream_start);

  const auto targets = server_->request_targets();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[1], std::string(jetstream::websocket::kSubscribeReposPath) +
                            "?cursor=" + std::to_string(cursor));

  // A retry of the same resume is acknowledged by a status, without reconnecting.
  decode->resume(2, first->epoch, cursor);
  const auto status = decode->next_status();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->resume_id, 2u);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(server_->connections(), 2u);
}

TEST_F(IngestBinary, UpstreamDroppingEveryFewFramesIsReconnectedFromTheLastSeqWithoutLoss) {
  FrameServerOptions options;
  options.keep_open = true;
  options.drop_after = 10;
  start_server(options);
  start_ingest();
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(7, first->epoch, proto::kLiveCursor);
  const auto frames = decode->frames(corpus_.size(), 20s);
  // Every frame exactly once, in order, one contiguous ingest stream, no second stream_start.
  expect_envelopes(frames, corpus_, first->epoch, 1, 7);
  for (std::size_t i = 1; i < frames.size(); ++i) EXPECT_FALSE(frames[i].header.stream_start);

  const auto targets = server_->request_targets();
  const std::size_t expected_connections = (corpus_.size() + 9) / 10;
  ASSERT_GE(targets.size(), expected_connections);
  EXPECT_EQ(targets[0], jetstream::websocket::kSubscribeReposPath);
  for (std::size_t i = 1; i < expected_connections; ++i) {
    EXPECT_EQ(targets[i], std::string(jetstream::websocket::kSubscribeReposPath) +
                              "?cursor=" + std::to_string(seq_of(corpus_[i * 10 - 1])))
        << "connection " << i;
  }
  EXPECT_GE(metric_value(scrape(),
                         "jetstream_ingest_upstream_reconnects_total{reason=\"closed_by_peer\"}"),
            static_cast<double>(expected_connections - 1));
}

TEST_F(IngestBinary, QuietUpstreamIsReconnectedAfterTheStallTimeoutAndIngestStaysUp) {
  FrameServerOptions options;
  options.keep_open = true;  // answers pings, sends nothing after the corpus
  start_server(options);
  start_ingest({"--stall-timeout", "500ms"});
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  ASSERT_EQ(decode->frames(corpus_.size()).size(), corpus_.size());

  // Quiet for 4 s: at least two stalls, each followed by a reconnect from the last seq.
  ASSERT_TRUE(support::eventually([&] { return server_->connections() >= 3; }, 6s))
      << "connections: " << server_->connections();
  EXPECT_TRUE(ingest_.running());
  const auto targets = server_->request_targets();
  EXPECT_EQ(targets.back(), std::string(jetstream::websocket::kSubscribeReposPath) +
                                "?cursor=" + std::to_string(seq_of(corpus_.back())));
  const auto text = scrape();
  EXPECT_GE(metric_value(text, "jetstream_ingest_upstream_reconnects_total{reason=\"stall\"}"), 2);
  EXPECT_GE(metric_value(text, "jetstream_ingest_seconds_since_last_frame"), 0.5);
  EXPECT_EQ(http_get(metrics_port_, "/healthz").status, 200);
  // Statuses keep coming, and no frame was duplicated by the reconnects.
  const auto status = decode->next_status();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->last_ingest_seq, corpus_.size());
}

/// An upstream error frame (op = -1): header {op: -1}, body {error, message} in DAG-CBOR.
Bytes error_frame() {
  Bytes frame = {0xa1, 0x62, 'o', 'p', 0x20, 0xa2, 0x65, 'e', 'r', 'r', 'o', 'r', 0x6c};
  for (const char c : std::string("FutureCursor")) frame.push_back(static_cast<std::uint8_t>(c));
  frame.insert(frame.end(), {0x67, 'm', 'e', 's', 's', 'a', 'g', 'e', 0x75});
  for (const char c : std::string("Cursor in the future.")) {
    frame.push_back(static_cast<std::uint8_t>(c));
  }
  return frame;
}

TEST_F(IngestBinary, UpstreamErrorFrameIsPublishedThenTheConnectionIsRemadeFromTheLastSeq) {
  std::vector<Bytes> frames(corpus_.begin(), corpus_.begin() + 10);
  frames.push_back(error_frame());
  FrameServerOptions options;
  options.keep_open = true;
  server_ = std::make_unique<FrameServer>(frames, options);
  start_ingest();
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  // The error frame travels untouched like any other (upstream seq 0): decode counts it.
  const auto received = decode->frames(frames.size());
  expect_envelopes(received, frames, first->epoch, 1, 1);

  ASSERT_TRUE(support::eventually([&] { return server_->connections() >= 2; }, 5s));
  EXPECT_EQ(server_->request_targets()[1], std::string(jetstream::websocket::kSubscribeReposPath) +
                                               "?cursor=" + std::to_string(seq_of(frames[9])));
  const auto text = scrape();
  EXPECT_EQ(metric_value(text, "jetstream_ingest_error_frames_total"), 1);
  EXPECT_EQ(
      metric_value(text, "jetstream_ingest_upstream_reconnects_total{reason=\"error_frame\"}"), 1);
  EXPECT_TRUE(ingest_.running());
}

TEST_F(IngestBinary, WssUpstreamIsReadWhenItsCaIsGivenWithCaFile) {
  const auto certificate = support::make_localhost_certificate();
  const auto ca_file = std::filesystem::path(log_path_).replace_extension(".ca.pem");
  std::ofstream(ca_file) << certificate.certificate_pem;
  FrameServerOptions options;
  options.keep_open = true;
  options.tls_certificate_pem = certificate.certificate_pem;
  options.tls_private_key_pem = certificate.private_key_pem;
  start_server(options);
  ASSERT_EQ(server_->url().rfind("wss://localhost:", 0), 0u);
  start_ingest({"--ca-file", ca_file.string()});
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  expect_envelopes(decode->frames(corpus_.size()), corpus_, first->epoch, 1, 1);
  std::filesystem::remove(ca_file);
}

TEST_F(IngestBinary, WssUpstreamWithAnUntrustedCertificateIsRetriedAndCountedAsTls) {
  const auto certificate = support::make_localhost_certificate();
  FrameServerOptions options;
  options.tls_certificate_pem = certificate.certificate_pem;
  options.tls_private_key_pem = certificate.private_key_pem;
  start_server(options);
  start_ingest();  // system CAs only
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  ASSERT_TRUE(support::eventually(
      [&] {
        return metric_value(scrape(),
                            "jetstream_ingest_upstream_reconnects_total{reason=\"tls\"}") >= 2;
      },
      5s));
  EXPECT_EQ(server_->connections(), 0u);
  EXPECT_TRUE(ingest_.running());
}

TEST_F(IngestBinary, UnreachableUpstreamIsRetriedWithBackoffAndReportedNotReady) {
  start_server({});
  const std::string url = server_->url();
  server_->stop();  // nothing listens there any more
  start_ingest();
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  ASSERT_TRUE(support::eventually(
      [&] {
        return metric_value(scrape(),
                            "jetstream_ingest_upstream_reconnects_total{reason=\"connect\"}") >= 3;
      },
      5s));
  EXPECT_TRUE(ingest_.running());
  const auto ready = http_get(metrics_port_, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("upstream not connected"), std::string::npos) << ready.body;
  const auto status = decode->next_status();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->resume_id, 1u);
  EXPECT_FALSE(status->connected);
}

TEST_F(IngestBinary, KillNineAndRestartShowsANewEpochWithSeqsFromOne) {
  FrameServerOptions options;
  options.keep_open = true;
  start_server(options);
  start_ingest();
  auto decode = make_decode();
  const auto first = decode->next_status();
  ASSERT_TRUE(first);
  decode->resume(1, first->epoch, proto::kLiveCursor);
  ASSERT_EQ(decode->frames(corpus_.size()).size(), corpus_.size());

  ingest_.kill_now();
  start_ingest();
  std::optional<proto::Status> status;
  ASSERT_TRUE(support::eventually(
      [&] {
        status = decode->next_status(200ms);
        return status && status->epoch != first->epoch;
      },
      10s))
      << "no status from the restarted ingest";
  EXPECT_EQ(status->resume_id, 0u);
  EXPECT_EQ(status->last_ingest_seq, 0u);
  EXPECT_FALSE(status->connected);

  // Decode's repair: resume after the 60th frame, naming the epoch it knew.
  const std::int64_t cursor = seq_of(corpus_[59]);
  decode->resume(2, first->epoch, cursor);
  const std::vector<Bytes> expected(corpus_.begin() + 60, corpus_.end());
  const auto frames = decode->frames(expected.size());
  expect_envelopes(frames, expected, status->epoch, 1, 2);
  ASSERT_FALSE(frames.empty());
  EXPECT_TRUE(frames.front().header.stream_start);
}

// Out-of-range settings are refused at start with the flag's name.
TEST(IngestFlags, OutOfRangeValuesAreRefusedAtStartWithTheFlagNamed) {
  support::expect_refused_at_start(
      JETSTREAM_INGEST_BINARY,
      {"--ws-url", "ws://127.0.0.1:1/xrpc/com.atproto.sync.subscribeRepos", "--frames-listen-addr",
       "127.0.0.1:0", "--control-listen-addr", "127.0.0.1:0", "--metrics-listen-addr",
       "127.0.0.1:0"},
      {
          {{"--connect-timeout", "0s"}, "--connect-timeout"},
          {{"--handshake-timeout", "0s"}, "--handshake-timeout"},
          {{"--status-interval", "0s"}, "--status-interval"},
          {{"--frames-send-hwm", "-1"}, "--frames-send-hwm"},
          {{"--backoff-initial", "5s", "--backoff-max", "1s"}, "--backoff-initial"},
      });
}

}  // namespace
