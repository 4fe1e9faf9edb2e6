// `jetstream-frames serve`: plays a capture to websocket clients as a relay's subscribeRepos
// would (common/websocket FrameServer), until SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/config/flags.hpp"
#include "common/firehose/capture.hpp"
#include "common/websocket/frame_server.hpp"
#include "tools/frames/subcommands.hpp"

namespace jetstream::tools {
namespace {

std::optional<std::string> no_environment(std::string_view) { return std::nullopt; }

bool read_text(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  out = text.str();
  return true;
}

}  // namespace

int run_serve(std::span<const std::string_view> args) {
  config::ListenAddress listen{"127.0.0.1", 0};
  double rate = 0;
  bool keep_open = false;
  std::int64_t drop_after = 0;
  std::string tls_cert;
  std::string tls_key;
  config::FlagSet flags("jetstream-frames serve",
                        "Serves the frames of a capture as binary websocket messages on "
                        "/xrpc/com.atproto.sync.subscribeRepos; ?cursor=N starts after seq N. "
                        "Runs until SIGINT/SIGTERM. No environment fallback.");
  flags.set_positional_usage("FILE");
  flags.add_listen_address("listen", &listen, "address to listen on (an IP literal; port 0 = any)");
  flags.add_double("rate", &rate, "frames per second per connection (0 = as fast as possible)");
  flags.add_bool("keep-open", &keep_open, "keep connections open after the last frame");
  flags.add_int64("drop-after", &drop_after,
                  "drop every connection (no close frame) after this many frames (0 = never)");
  flags.add_string("tls-cert", &tls_cert, "PEM certificate chain: serve wss:// (with --tls-key)");
  flags.add_string("tls-key", &tls_key, "PEM private key for --tls-cert");

  std::vector<std::string> storage{"jetstream-frames serve"};
  for (const auto arg : args) storage.emplace_back(arg);
  std::vector<const char*> argv;
  for (const auto& arg : storage) argv.push_back(arg.c_str());
  const auto outcome =
      flags.parse(static_cast<int>(argv.size()), argv.data(), config::EnvLookup(no_environment));
  if (const auto code = flags.report(outcome, std::cout, std::cerr)) return *code;
  if (outcome.positional.size() != 1) {
    std::cerr << "usage: jetstream-frames serve FILE [flags] (--help for the flags)\n";
    return 2;
  }
  if (rate < 0 || drop_after < 0) {
    std::cerr << "jetstream-frames serve: --rate and --drop-after must not be negative\n";
    return 2;
  }

  const std::string& path = outcome.positional[0];
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "jetstream-frames serve: cannot open " << path << "\n";
    return 1;
  }
  firehose::CaptureReader reader(in);
  std::vector<std::vector<std::uint8_t>> frames;
  firehose::CaptureReadStatus status;
  while ((status = reader.next()) == firehose::CaptureReadStatus::frame) {
    frames.emplace_back(reader.frame().begin(), reader.frame().end());
  }
  if (status != firehose::CaptureReadStatus::end) {
    std::cerr << "jetstream-frames serve: " << path << " is truncated or corrupt after "
              << frames.size() << " frames\n";
    return 1;
  }

  websocket::FrameServerOptions options;
  options.host = listen.host.empty() ? "0.0.0.0" : listen.host;
  options.port = listen.port;
  options.rate = rate;
  options.keep_open = keep_open;
  options.drop_after = static_cast<std::size_t>(drop_after);
  if (!tls_cert.empty() || !tls_key.empty()) {
    if (!read_text(tls_cert, options.tls_certificate_pem) ||
        !read_text(tls_key, options.tls_private_key_pem)) {
      std::cerr << "jetstream-frames serve: cannot read --tls-cert/--tls-key\n";
      return 1;
    }
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<websocket::FrameServer> server;
  try {
    server = std::make_unique<websocket::FrameServer>(std::move(frames), options);
  } catch (const std::exception& error) {
    std::cerr << "jetstream-frames serve: " << error.what() << "\n";
    return 1;
  }
  std::cout << server->url() << std::endl;
  std::cerr << "serving " << path << " on " << server->url() << " (Ctrl-C to stop)\n";
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->stop();
  std::cerr << "connections: " << server->connections()
            << ", frames sent: " << server->frames_sent() << "\n";
  return 0;
}

}  // namespace jetstream::tools
