// `jetstream-frames record`: captures a live firehose into the capture format
// ([u32 LE length][frame]...), with a progress line on stderr every second.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common/config/flags.hpp"
#include "common/firehose/capture.hpp"
#include "common/firehose/frame.hpp"
#include "common/websocket/client.hpp"
#include "common/websocket/url.hpp"
#include "tools/frames/subcommands.hpp"

namespace jetstream::tools {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::optional<std::string> no_environment(std::string_view) { return std::nullopt; }

/// One recording session: the client, the file, the counters, the stop conditions. Everything
/// runs on the main thread's io_context.
class Recorder {
 public:
  Recorder(boost::asio::io_context& io, std::ofstream& out, std::uint64_t max_frames,
           std::chrono::microseconds duration, websocket::ClientOptions options)
      : io_(io),
        out_(out),
        max_frames_(max_frames),
        duration_(duration),
        progress_(io),
        deadline_(io),
        signals_(io, SIGINT, SIGTERM),
        client_(io, std::move(options),
                {[] { std::cerr << "connected\n"; },
                 [this](std::vector<std::uint8_t>&& frame) { on_frame(frame); },
                 [this](const websocket::ClientError& error) { on_error(error); }}) {}

  void start(websocket::WebSocketUrl url) {
    started_ = SteadyClock::now();
    client_.connect(std::move(url));
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) finish("interrupted", 0);
    });
    if (duration_.count() > 0) {
      deadline_.expires_after(duration_);
      deadline_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) finish("duration reached", 0);
      });
    }
    tick();
  }

  int exit_code() const { return exit_code_; }

 private:
  void on_frame(const std::vector<std::uint8_t>& frame) {
    if (done_) return;
    const byte_view view{frame.data(), frame.size()};
    firehose::write_capture_frame(out_, view);
    ++frames_;
    bytes_ += frame.size();
    if (const auto seq = firehose::peek_frame_seq(view)) last_seq_ = *seq;
    if (!out_) return finish("write failed", 1);
    if (max_frames_ != 0 && frames_ >= max_frames_) finish("max frames reached", 0);
  }

  void on_error(const websocket::ClientError& error) {
    const bool peer_closed = error.category == websocket::ErrorCategory::closed_by_peer;
    std::cerr << "connection ended (" << websocket::to_string(error.category)
              << "): " << error.message << "\n";
    finish("connection ended", peer_closed && frames_ > 0 ? 0 : 1);
  }

  void tick() {
    progress_.expires_after(std::chrono::seconds(1));
    progress_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || done_) return;
      print_progress();
      tick();
    });
  }

  void print_progress() const {
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - started_).count();
    std::fprintf(stderr, "frames=%llu bytes=%llu last_seq=%lld elapsed=%.1fs\n",
                 static_cast<unsigned long long>(frames_), static_cast<unsigned long long>(bytes_),
                 static_cast<long long>(last_seq_), seconds);
  }

  void finish(const char* why, int code) {
    if (done_) return;
    done_ = true;
    exit_code_ = code;
    client_.close();
    progress_.cancel();
    deadline_.cancel();
    signals_.cancel();
    out_.flush();
    print_progress();
    std::cerr << "stopped: " << why << "\n";
    // Let the close handshake go out, then stop whatever is left.
    deadline_.expires_after(std::chrono::milliseconds(500));
    deadline_.async_wait([this](const boost::system::error_code&) { io_.stop(); });
  }

  boost::asio::io_context& io_;
  std::ofstream& out_;
  std::uint64_t max_frames_;
  std::chrono::microseconds duration_;
  boost::asio::steady_timer progress_;
  boost::asio::steady_timer deadline_;
  boost::asio::signal_set signals_;
  websocket::WebSocketClient client_;
  SteadyClock::time_point started_{};
  std::uint64_t frames_ = 0;
  std::uint64_t bytes_ = 0;
  std::int64_t last_seq_ = 0;
  bool done_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run_record(std::span<const std::string_view> args) {
  std::int64_t max_frames = 0;
  std::chrono::microseconds duration{0};
  std::int64_t cursor = -1;
  std::string ca_file;
  config::FlagSet flags("jetstream-frames record",
                        "Records the binary messages of a ws:// or wss:// firehose into a capture "
                        "file until --max-frames, --duration, the peer's close or SIGINT/SIGTERM. "
                        "No environment fallback.");
  flags.set_positional_usage("URL FILE");
  flags.add_int64("max-frames", &max_frames, "stop after this many frames (0 = no limit)");
  flags.add_duration("duration", &duration, "stop after this long (0 = no limit)");
  flags.add_int64("cursor", &cursor, "replace the URL's cursor parameter (-1 = keep the URL)");
  flags.add_string("ca-file", &ca_file, "extra PEM CA certificates to trust for wss://");

  std::vector<std::string> storage{"jetstream-frames record"};
  for (const auto arg : args) storage.emplace_back(arg);
  std::vector<const char*> argv;
  for (const auto& arg : storage) argv.push_back(arg.c_str());
  const auto outcome =
      flags.parse(static_cast<int>(argv.size()), argv.data(), config::EnvLookup(no_environment));
  if (const auto code = flags.report(outcome, std::cout, std::cerr)) return *code;
  if (outcome.positional.size() != 2 || max_frames < 0) {
    std::cerr << "usage: jetstream-frames record URL FILE [flags] (--help for the flags)\n";
    return 2;
  }
  std::string url_error;
  auto url = websocket::parse_url(outcome.positional[0], &url_error);
  if (!url) {
    std::cerr << "jetstream-frames record: " << outcome.positional[0] << ": " << url_error << "\n";
    return 2;
  }
  if (cursor >= 0) url->target = websocket::with_cursor(url->target, cursor);
  std::ofstream out(outcome.positional[1], std::ios::binary | std::ios::trunc);
  if (!out) {
    std::cerr << "jetstream-frames record: cannot write " << outcome.positional[1] << "\n";
    return 1;
  }

  websocket::ClientOptions options;
  options.extra_ca_file = ca_file;
  options.user_agent = "jetstream-frames-record";
  boost::asio::io_context io;
  Recorder recorder(io, out, static_cast<std::uint64_t>(max_frames), duration, options);
  std::cerr << "recording " << url->to_string() << " into " << outcome.positional[1] << "\n";
  recorder.start(*url);
  io.run();
  out.close();
  return recorder.exit_code();
}

}  // namespace jetstream::tools
