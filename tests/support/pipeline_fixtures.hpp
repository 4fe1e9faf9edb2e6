// Test doubles and helpers shared by the black-box tests of decode and fanout: a scripted ingest
// (ingest's side of proto §5.1 over real ZeroMQ sockets, streaming the dev corpus) and a real
// jetstream-decode process with its own data dir and loopback ports.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/clock/clock.hpp"
#include "common/firehose/capture.hpp"
#include "common/firehose/frame.hpp"
#include "common/firehose/v1_encoder.hpp"
#include "proto/proto.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/shared_data.hpp"

namespace jetstream::testing {

using namespace std::chrono_literals;
namespace support = jetstream::testing;

struct CorpusFrame {
  std::vector<std::uint8_t> bytes;
  std::int64_t seq;
};

/// The corpus frames; with `repeat` > 1 the corpus is streamed that many times under synthetic
/// upstream seqs 1, 2, 3, … (decode keys its cursor on the envelope's seq, not the body's).
inline std::vector<CorpusFrame> load_frames(const std::filesystem::path& path, int repeat = 1) {
  const auto capture = support::read_binary_file(path);
  const auto split = jetstream::firehose::split_capture(capture);
  std::vector<CorpusFrame> frames;
  if (!split) return frames;
  for (const auto frame : *split) {
    frames.push_back(
        {{frame.begin(), frame.end()}, jetstream::firehose::peek_frame_seq(frame).value_or(0)});
  }
  if (repeat <= 1) return frames;
  std::vector<CorpusFrame> repeated;
  for (int r = 0; r < repeat; ++r) {
    for (const auto& frame : frames) {
      repeated.push_back({frame.bytes, static_cast<std::int64_t>(repeated.size()) + 1});
    }
  }
  return repeated;
}

/// Plays ingest: publishes status, obeys resume by streaming the corpus from the cursor.
class FakeIngest {
 public:
  /// `send_hwm` and `send_buffer` > 0 make the publisher drop when decode falls behind.
  FakeIngest(zmq::context_t& context, std::vector<CorpusFrame> frames,
             std::chrono::microseconds pace, int send_hwm = 1000000, int send_buffer = 0)
      : frames_(std::move(frames)),
        pace_(pace),
        publisher_(context, zmq::socket_type::pub),
        control_(context, zmq::socket_type::pull) {
    // Nothing is worth waiting for at teardown: with the default infinite linger, frames still
    // queued for a decode that is gone keep the context's termination (and the test) waiting.
    publisher_.set(zmq::sockopt::linger, 0);
    control_.set(zmq::sockopt::linger, 0);
    publisher_.set(zmq::sockopt::sndhwm, send_hwm);
    if (send_buffer > 0) publisher_.set(zmq::sockopt::sndbuf, send_buffer);
    publisher_.bind("tcp://127.0.0.1:*");
    control_.bind("tcp://127.0.0.1:*");
    frames_endpoint = publisher_.get(zmq::sockopt::last_endpoint);
    control_endpoint = control_.get(zmq::sockopt::last_endpoint);
    new_epoch();
    thread_ = std::thread([this] { run(); });
  }
  ~FakeIngest() {
    stopping_ = true;
    thread_.join();
  }

  /// Simulates an ingest restart: new epoch, ingest seqs from 1, no stream until a resume.
  void restart() {
    std::lock_guard lock(mutex_);
    new_epoch();
  }
  /// A frame after the ones given: the stream goes on with it.
  void append(CorpusFrame frame) {
    std::lock_guard lock(mutex_);
    frames_.push_back(std::move(frame));
  }
  /// Stamp each frame with the wall clock as its receive time (decode's
  /// consumer_event_processing_duration_seconds then measures receive → stored); else 1.
  std::atomic<bool> stamp_receive_time{false};
  /// Drops `count` frame envelopes (as a full ZeroMQ queue would).
  void lose_next_frames(int count) { to_lose_ = count; }
  /// Publishes one multipart message of these parts as they are (a broken one, for the tests of
  /// decode's checks), from the publishing thread, before the next frame.
  void publish_raw(std::vector<std::string> parts) {
    std::lock_guard lock(mutex_);
    raw_.push_back(std::move(parts));
  }

  std::string frames_endpoint;
  std::string control_endpoint;
  std::atomic<bool> accept_resumes{true};  ///< false: ignore decode (as if not yet reachable)
  std::atomic<int> resumes{0};
  std::atomic<std::int64_t> last_cursor{-2};

 private:
  void new_epoch() {
    std::random_device device;
    epoch_ = (std::uint64_t{device()} << 32) | device() | 1;
    ingest_seq_ = 0;
    accepted_ = 0;
    streaming_ = false;
  }

  void publish_status() {
    proto::Status status;
    status.epoch = epoch_;
    status.last_ingest_seq = ingest_seq_;
    status.resume_id = accepted_;
    status.connected = streaming_;
    const auto body = proto::encode_status(status);
    publisher_.send(zmq::buffer(proto::topic(proto::MessageType::status)),
                    zmq::send_flags::sndmore);
    publisher_.send(zmq::buffer(body), zmq::send_flags::none);
  }

  void run() {
    auto next_status = std::chrono::steady_clock::now();
    while (!stopping_) {
      std::lock_guard lock(mutex_);
      std::vector<zmq::message_t> parts;
      if (zmq::recv_multipart(control_, std::back_inserter(parts), zmq::recv_flags::dontwait) &&
          parts.size() == 2) {
        const auto resume = proto::decode_resume(
            {static_cast<const std::uint8_t*>(parts[1].data()), parts[1].size()});
        if (resume && accept_resumes && resume.value().resume_id != accepted_) {
          ++resumes;
          accepted_ = resume.value().resume_id;
          last_cursor = resume.value().cursor;
          position_ = 0;
          while (position_ < frames_.size() && frames_[position_].seq <= resume.value().cursor) {
            ++position_;
          }
          streaming_ = true;
          stream_start_ = true;
          publish_status();
          // Like the real ingest, which closes the old upstream connection and opens a new one
          // before the new stream's first frame: frames of the old stream stop at once and the
          // new stream starts a little later, not in the same instant.
          next_frame_at_ = std::chrono::steady_clock::now() + 20ms;
        }
      }
      for (const auto& raw : raw_) {
        for (std::size_t i = 0; i < raw.size(); ++i) {
          publisher_.send(zmq::buffer(raw[i]),
                          i + 1 < raw.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
        }
      }
      raw_.clear();
      if (std::chrono::steady_clock::now() >= next_status) {
        publish_status();
        next_status = std::chrono::steady_clock::now() + 50ms;
      }
      if (streaming_ && position_ < frames_.size() &&
          std::chrono::steady_clock::now() >= next_frame_at_) {
        proto::FrameHeader header;
        header.epoch = epoch_;
        header.ingest_seq = ++ingest_seq_;
        header.resume_id = accepted_;
        header.upstream_seq = frames_[position_].seq;
        // A real receive time only when asked (benchmarks measuring decode's receive → stored).
        header.receive_time_us = stamp_receive_time ? clock::wall_clock_us() : 1;
        header.frame_size = static_cast<std::uint32_t>(frames_[position_].bytes.size());
        header.stream_start = stream_start_;
        stream_start_ = false;
        if (to_lose_ > 0) {
          --to_lose_;
        } else {
          const auto encoded = proto::encode_frame_header(header);
          publisher_.send(zmq::buffer(proto::topic(proto::MessageType::frame)),
                          zmq::send_flags::sndmore);
          publisher_.send(zmq::buffer(encoded), zmq::send_flags::sndmore);
          publisher_.send(zmq::buffer(frames_[position_].bytes), zmq::send_flags::none);
        }
        ++position_;
        std::this_thread::sleep_for(pace_);
      } else {
        std::this_thread::sleep_for(2ms);
      }
    }
  }

  std::vector<CorpusFrame> frames_;
  std::chrono::microseconds pace_;
  zmq::socket_t publisher_;
  zmq::socket_t control_;
  std::mutex mutex_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> to_lose_{0};
  std::vector<std::vector<std::string>> raw_;
  std::uint64_t epoch_ = 0;
  std::uint64_t ingest_seq_ = 0;
  std::uint64_t accepted_ = 0;
  bool streaming_ = false;
  bool stream_start_ = false;
  std::chrono::steady_clock::time_point next_frame_at_{};
  std::size_t position_ = 0;
};

/// A decode process with its own data dir and ports.
class DecodeUnderTest {
 public:
  DecodeUnderTest(const FakeIngest& ingest, const std::string& name,
                  std::vector<std::string> extra = {})
      : data_dir_(std::filesystem::temp_directory_path() /
                  ("jetstream-decode-test-" + name + "-" + std::to_string(::getpid()))),
        ingest_(ingest),
        extra_(std::move(extra)) {
    std::filesystem::remove_all(data_dir_);
    events_endpoint = "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port());
    replay_endpoint = "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port());
    backfill_endpoint = "tcp://127.0.0.1:" + std::to_string(support::free_loopback_port());
    metrics_port = support::free_loopback_port();
  }
  ~DecodeUnderTest() {
    process.kill_now();
    std::filesystem::remove_all(data_dir_);
  }

  bool start() {
    std::vector<std::string> args = {"--data-dir",
                                     data_dir_.string(),
                                     "--frames-endpoint",
                                     ingest_.frames_endpoint,
                                     "--control-endpoint",
                                     ingest_.control_endpoint,
                                     "--events-endpoint",
                                     events_endpoint,
                                     "--replay-endpoint",
                                     replay_endpoint,
                                     "--backfill-endpoint",
                                     backfill_endpoint,
                                     "--metrics-listen-addr",
                                     "127.0.0.1:" + std::to_string(metrics_port),
                                     "--heartbeat-interval",
                                     "100ms"};
    if (auto dictionary = support::shared_file("zstd/jetstream-v1.zdict")) {
      args.push_back("--zstd-dictionary-path");
      args.push_back(dictionary->string());
    }
    args.insert(args.end(), extra_.begin(), extra_.end());
    return process.start(
        (std::filesystem::path(JETSTREAM_BINARY_DIR) / "services/decode/jetstream-decode").string(),
        args, (data_dir_.string() + ".log"));
  }

  std::string events_endpoint;
  std::string replay_endpoint;
  std::string backfill_endpoint;
  std::uint16_t metrics_port;
  support::ChildProcess process;

 private:
  std::filesystem::path data_dir_;
  const FakeIngest& ingest_;
  std::vector<std::string> extra_;
};

/// Starts jetstream-ingest reading `ws://127.0.0.1:upstream_port` and serving decode on the
/// frames and control ports (the benchmarks' own stacks; StackUnderTest starts its own).
inline bool start_ingest(ChildProcess& ingest, std::uint16_t upstream_port,
                         std::uint16_t frames_port, std::uint16_t control_port,
                         std::uint16_t metrics_port, const std::filesystem::path& log) {
  const auto local = [](std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); };
  return ingest.start(
      (std::filesystem::path(JETSTREAM_BINARY_DIR) / "services/ingest/jetstream-ingest").string(),
      {"--ws-url", "ws://" + local(upstream_port) + "/xrpc/com.atproto.sync.subscribeRepos",
       "--frames-listen-addr", local(frames_port), "--control-listen-addr", local(control_port),
       "--metrics-listen-addr", local(metrics_port)},
      log.string());
}

/// What the passes of a repeated capture write to: the corpus's own records every time (each
/// event after the first pass updates a record already seen), or records of other repositories
/// on every pass (as the firehose mostly is: creates of records not seen before).
enum class RepeatedRecords { same, distinct };

/// Gives the `did:plc:` DID a frame is about (the body's `repo` of a commit or sync, `did` of an
/// identity or account event) the last 4 characters of `pass` in base32, so each pass speaks
/// for its own 32^4 repositories. Record blocks are left alone (their CIDs are checked), and
/// lengths are kept, so the CBOR stays valid.
inline void rewrite_plc_dids(std::vector<std::uint8_t>& frame, std::size_t pass) {
  static constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
  constexpr std::size_t kIdentifier = 24;
  constexpr std::size_t kDid = 8 + kIdentifier;  // "did:plc:" and the identifier
  // A map key, then the DID as a text string of 32 bytes (0x78 0x20) that starts "did:plc:".
  for (const std::string_view key : {std::string_view("\x64repo\x78\x20"
                                                      "did:plc:"),
                                     std::string_view("\x63"
                                                      "did\x78\x20"
                                                      "did:plc:")}) {
    const auto at = std::search(frame.begin(), frame.end(), key.begin(), key.end());
    if (at == frame.end()) continue;
    const std::size_t end = static_cast<std::size_t>(at - frame.begin()) + key.size() - 8 + kDid;
    if (end > frame.size()) continue;
    for (std::size_t digit = 0; digit < 4; ++digit) {
      frame[end - 1 - digit] = static_cast<std::uint8_t>(kBase32[(pass >> (5 * digit)) & 31]);
    }
    return;  // one DID per frame
  }
}

/// Writes a capture of `count` real relay frames: the dev corpus repeated, each frame's body `seq`
/// rewritten to 1, 2, 3, … so every frame is new to decode. Returns the number of events it holds.
inline std::optional<std::size_t> write_repeated_capture(
    const std::filesystem::path& out, std::size_t count,
    RepeatedRecords records = RepeatedRecords::same) {
  const auto corpus = shared_file("corpus/dev.frames");
  if (!corpus) return std::nullopt;
  const auto bytes = read_binary_file(*corpus);
  const auto frames = jetstream::firehose::split_capture(bytes);
  if (!frames || frames->empty()) return std::nullopt;
  std::ofstream file(out, std::ios::binary);
  for (std::size_t i = 0; i < count; ++i) {
    const auto frame = (*frames)[i % frames->size()];
    std::vector<std::uint8_t> copy(frame.begin(), frame.end());
    if (!jetstream::firehose::rewrite_frame_seq(copy, i + 1)) return std::nullopt;
    if (records == RepeatedRecords::distinct) rewrite_plc_dids(copy, i / frames->size());
    jetstream::firehose::write_capture_frame(file, copy);
  }
  // The corpus yields 77 events from its 75 frames; count the events of the partial last pass.
  std::size_t events = count / frames->size() * 77;
  const std::size_t rest = count % frames->size();
  jetstream::firehose::V1Encoder encoder;
  std::vector<jetstream::firehose::PendingEvent> pending;
  for (std::size_t i = 0; i < rest; ++i) encoder.events_from_frame((*frames)[i], pending);
  return events + pending.size();
}

/// The whole pipeline as separate processes on loopback: `jetstream-frames serve` as upstream,
/// ingest, decode and fanout, each with free ports, decode with a fresh data dir.
class StackUnderTest {
 public:
  struct Options {
    std::filesystem::path capture;
    double rate = 0;  ///< upstream frames/s, 0 = full speed
    bool dictionary = true;
    std::vector<std::string> fanout_args;
    std::vector<std::string> serve_args;
    std::vector<std::string> decode_args;
    std::vector<std::string> ingest_args;
  };

  explicit StackUnderTest(const std::string& name)
      : dir_(std::filesystem::temp_directory_path() /
             ("jetstream-stack-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    for (auto* port :
         {&upstream_port, &frames_port, &control_port, &events_port, &replay_port, &backfill_port,
          &decode_metrics_port, &ingest_metrics_port, &fanout_port, &fanout_metrics_port}) {
      *port = free_loopback_port();
    }
  }
  ~StackUnderTest() {
    for (auto* process : {&fanout, &ingest, &decode, &serve}) process->kill_now();
    std::filesystem::remove_all(dir_);
  }

  const std::filesystem::path& dir() const { return dir_; }

  bool start(const Options& options) {
    const auto bin = [](const char* relative) {
      return (std::filesystem::path(JETSTREAM_BINARY_DIR) / relative).string();
    };
    const auto local = [](std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); };
    const auto tcp = [&](std::uint16_t port) { return "tcp://" + local(port); };
    const auto dictionary = shared_file("zstd/jetstream-v1.zdict");
    std::vector<std::string> serve_args = {"serve", options.capture.string(), "--listen",
                                           local(upstream_port), "--keep-open"};
    if (options.rate > 0) {
      serve_args.push_back("--rate");
      serve_args.push_back(std::to_string(options.rate));
    }
    serve_args.insert(serve_args.end(), options.serve_args.begin(), options.serve_args.end());
    decode_args_.clear();
    std::vector<std::string>& decode_args = decode_args_;
    decode_args = {"--data-dir",
                   (dir_ / "data").string(),
                   "--frames-endpoint",
                   tcp(frames_port),
                   "--control-endpoint",
                   tcp(control_port),
                   "--events-endpoint",
                   tcp(events_port),
                   "--replay-endpoint",
                   tcp(replay_port),
                   "--backfill-endpoint",
                   tcp(backfill_port),
                   "--metrics-listen-addr",
                   local(decode_metrics_port),
                   "--heartbeat-interval",
                   "200ms"};
    std::vector<std::string> fanout_args = {"--listen-addr",         local(fanout_port),
                                            "--metrics-listen-addr", local(fanout_metrics_port),
                                            "--events-endpoint",     tcp(events_port),
                                            "--replay-endpoint",     tcp(replay_port)};
    if (options.dictionary && dictionary) {
      for (auto* args : {&decode_args, &fanout_args}) {
        args->push_back("--zstd-dictionary-path");
        args->push_back(dictionary->string());
      }
    }
    fanout_args.insert(fanout_args.end(), options.fanout_args.begin(), options.fanout_args.end());
    decode_base_args_ = decode_args;
    decode_args.insert(decode_args.end(), options.decode_args.begin(), options.decode_args.end());
    ingest_args_ = {"--ws-url",
                    "ws://" + local(upstream_port) + "/xrpc/com.atproto.sync.subscribeRepos",
                    "--frames-listen-addr",
                    local(frames_port),
                    "--control-listen-addr",
                    local(control_port),
                    "--metrics-listen-addr",
                    local(ingest_metrics_port),
                    "--backoff-initial",
                    "50ms",
                    "--backoff-max",
                    "500ms"};
    ingest_args_.insert(ingest_args_.end(), options.ingest_args.begin(), options.ingest_args.end());
    // decode and fanout first: ingest connects upstream only once decode tells it where to start,
    // and fanout joins decode's stream at its first heartbeat.
    return decode.start(bin("services/decode/jetstream-decode"), decode_args,
                        (dir_ / "decode.log").string()) &&
           fanout.start(bin("services/fanout/jetstream-fanout"), fanout_args,
                        (dir_ / "fanout.log").string()) &&
           wait_until_ready(fanout_metrics_port) &&
           serve.start(bin("tools/frames/jetstream-frames"), serve_args,
                       (dir_ / "serve.log").string()) &&
           ingest.start(bin("services/ingest/jetstream-ingest"), ingest_args_,
                        (dir_ / "ingest.log").string());
  }

  /// Starts decode again (after a kill) with the same data dir and ports.
  bool restart_decode() {
    return decode.start(binary("services/decode/jetstream-decode"), decode_args_,
                        (dir_ / "decode.log").string());
  }
  /// The same, with `args` in place of Options::decode_args (a changed configuration).
  bool restart_decode(const std::vector<std::string>& args) {
    decode_args_ = decode_base_args_;
    decode_args_.insert(decode_args_.end(), args.begin(), args.end());
    return restart_decode();
  }
  /// Runs `jetstream-decode --check-state` on decode's data dir with `compact_collections`;
  /// returns its exit code (-1 when it did not finish in 120 s), its output in `output`.
  int check_state(const std::string& compact_collections, std::string& output) {
    ChildProcess check;
    const std::string log = (dir_ / "check-state.log").string();
    std::filesystem::remove(log);
    if (!check.start(binary("services/decode/jetstream-decode"),
                     {"--check-state", "--data-dir", (dir_ / "data").string(),
                      "--compact-collections", compact_collections},
                     log)) {
      return -1;
    }
    const auto status = check.wait(std::chrono::seconds(120));
    output = check.log();
    if (!status) return -1;
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  }

  /// Starts ingest again (after a kill): a new epoch for decode.
  bool restart_ingest() {
    return ingest.start(binary("services/ingest/jetstream-ingest"), ingest_args_,
                        (dir_ / "ingest.log").string());
  }

  static std::string binary(const char* relative) {
    return (std::filesystem::path(JETSTREAM_BINARY_DIR) / relative).string();
  }

  /// GET http://127.0.0.1:port/path: the whole response, "" when unreachable.
  static std::string http_get(std::uint16_t port, const std::string& path) {
    return testing::http_get(port, path).raw;
  }

  /// A metric's sample value from /metrics (`series`: the name plus labels as exposed), or -1.
  static double metric(std::uint16_t port, const std::string& series) {
    return metric_value(testing::http_get(port, "/metrics").body, series);
  }

  /// The sum of every series of metric `name` (all label sets).
  static double metric_sum(std::uint16_t port, const std::string& name) {
    return testing::metric_sum(testing::http_get(port, "/metrics").body, name);
  }

  static bool wait_until_ready(std::uint16_t metrics_port) {
    return eventually(
        [&] { return http_get(metrics_port, "/readyz").find(" 200 ") != std::string::npos; },
        std::chrono::seconds(20));
  }

  std::uint16_t upstream_port, frames_port, control_port, events_port, replay_port, backfill_port,
      decode_metrics_port, ingest_metrics_port, fanout_port, fanout_metrics_port;
  ChildProcess serve, ingest, decode, fanout;

 private:
  std::filesystem::path dir_;
  std::vector<std::string> decode_args_;
  std::vector<std::string> decode_base_args_;  ///< decode_args_ without Options::decode_args
  std::vector<std::string> ingest_args_;
};

}  // namespace jetstream::testing
