#include "services/ingest/upstream_link.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/clock/clock.hpp"
#include "common/config/listen_address.hpp"
#include "common/firehose/frame.hpp"
#include "common/log/log.hpp"
#include "proto/ingest.hpp"
#include "services/ingest/ingest_probe.hpp"

namespace jetstream::ingest {

namespace net = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

void free_message_buffer(void* /*data*/, void* hint) {
  delete static_cast<std::vector<std::uint8_t>*>(hint);
}

/// PUB sends never block and never fail for a slow subscriber (ZeroMQ drops at the high-water
/// mark, which decode detects by sequence), so the result carries nothing to act on.
void send_part(zmq::socket_t& socket, zmq::const_buffer buffer, zmq::send_flags flags) {
  static_cast<void>(socket.send(buffer, flags));
}

}  // namespace

std::string zmq_bind_endpoint(const std::string& flag_value, std::string* error) {
  if (flag_value.find("://") != std::string::npos) return flag_value;
  const auto address = config::parse_listen_address(flag_value, error);
  if (!address) return {};
  std::string host = address->host.empty() ? "*" : address->host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  const std::string port = address->port == 0 ? "*" : std::to_string(address->port);
  return "tcp://" + host + ":" + port;
}

bool endpoint_wants_ipv6(const std::string& endpoint) {
  return endpoint.rfind("tcp://*:", 0) == 0 || endpoint.rfind("tcp://[", 0) == 0;
}

class UpstreamLink::Impl {
 public:
  Impl(zmq::context_t& context, std::uint64_t epoch, LinkOptions options, IngestProbe& probe,
       LinkEvents events)
      : options_(std::move(options)),
        probe_(probe),
        events_(std::move(events)),
        epoch_(epoch),
        pub_(context, zmq::socket_type::pub),
        work_(io_.get_executor()),
        status_timer_(io_) {
    pub_.set(zmq::sockopt::sndhwm, options_.send_high_water_mark);
    pub_.set(zmq::sockopt::linger, 0);
    if (endpoint_wants_ipv6(options_.frames_endpoint)) pub_.set(zmq::sockopt::ipv6, 1);
    pub_.bind(options_.frames_endpoint);
    endpoint_ = pub_.get(zmq::sockopt::last_endpoint);
  }

  ~Impl() { stop(); }

  void start() {
    thread_ = std::thread([this] {
      net::post(io_, [this] {
        publish_status();
        arm_status_timer();
      });
      io_.run();
    });
  }

  std::string endpoint() const { return endpoint_; }

  void begin_stream(std::uint64_t generation, std::uint64_t resume_id, std::int64_t cursor) {
    net::post(io_, [this, generation, resume_id, cursor] {
      drop_client();
      resume_id_ = resume_id;
      last_stream_seq_ = 0;
      stream_start_pending_ = true;
      stream_began_ = SteadyClock::now();
      publish_status();
      open_client(generation, cursor);
    });
  }

  void reconnect(std::uint64_t generation, std::int64_t cursor) {
    net::post(io_, [this, generation, cursor] {
      drop_client();
      open_client(generation, cursor);
    });
  }

  void post_status() {
    net::post(io_, [this] { publish_status(); });
  }

  void stop() {
    std::lock_guard lock(stop_mutex_);
    if (stopped_) return;
    stopped_ = true;
    if (thread_.joinable()) {
      net::post(io_, [this] {
        drop_client();
        status_timer_.cancel();
        work_.reset();
      });
      // Give a polite close frame a moment; then stop whatever is left.
      std::thread stopper([this] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        io_.stop();
      });
      thread_.join();
      stopper.join();
    }
    pub_.close();
  }

 private:
  // ---- Everything below runs on the io thread. ----

  void drop_client() {
    if (client_) {
      client_->close();
      client_.reset();
    }
    if (connected_) {
      connected_ = false;
      publish_status();
    }
  }

  void open_client(std::uint64_t generation, std::int64_t cursor) {
    generation_ = generation;
    delivered_ = false;
    websocket::WebSocketUrl url = options_.url;
    url.target = websocket::with_cursor(
        url.target, cursor >= 0 ? std::optional<std::int64_t>(cursor) : std::nullopt);
    client_ = std::make_unique<websocket::WebSocketClient>(
        io_, options_.client,
        websocket::ClientHandlers{
            [this, generation] { on_open(generation); },
            [this, generation](std::vector<std::uint8_t>&& frame) {
              on_frame(generation, std::move(frame));
            },
            [this, generation](const websocket::ClientError& error) {
              on_error(generation, error);
            },
        });
    log::info("connecting upstream", {{"url", url.to_string()},
                                      {"resume_id", resume_id_},
                                      {"cursor", cursor},
                                      {"generation", generation}});
    client_->connect(std::move(url));
  }

  void on_open(std::uint64_t generation) {
    if (generation != generation_) return;
    connected_ = true;
    publish_status();
    if (events_.opened) events_.opened(generation);
  }

  void on_frame(std::uint64_t generation, std::vector<std::uint8_t>&& frame) {
    if (generation != generation_) return;
    const auto received_us = clock::wall_clock_us();
    last_frame_ = SteadyClock::now();
    probe_.record_received(frame.size());

    const byte_view view{frame.data(), frame.size()};
    const auto seq = firehose::peek_frame_seq(view);
    const std::int64_t upstream_seq = seq && *seq > 0 ? *seq : 0;
    bool error_frame = false;
    std::string error_text;
    if (!seq && !decoder_.decode(view) && decoder_.type() == firehose::FrameType::error) {
      error_frame = true;
      firehose::ErrorBody body;
      if (!decoder_.read_error(body)) {
        error_text = std::string(body.error) + ": " + std::string(body.message);
      }
    }

    proto::FrameHeader header;
    header.epoch = epoch_;
    header.ingest_seq = ++ingest_seq_;
    header.resume_id = resume_id_;
    header.upstream_seq = upstream_seq;
    header.receive_time_us = received_us;
    header.frame_size = static_cast<std::uint32_t>(frame.size());
    header.stream_start = stream_start_pending_;
    stream_start_pending_ = false;
    publish_frame(header, std::move(frame));
    probe_.record_published(ingest_seq_, upstream_seq);
    if (upstream_seq > 0) {
      last_upstream_seq_ = upstream_seq;
      last_stream_seq_ = upstream_seq;
    }

    if (error_frame) {
      probe_.record_error_frame();
      log::warn_every(std::chrono::seconds(10), "upstream-error-frame", "upstream error frame",
                      {{"error", error_text}});
      client_->close();
      client_.reset();
      report_failure(generation, std::string(kErrorFrameReason), "error frame: " + error_text);
      return;
    }
    delivered_ = true;
  }

  void on_error(std::uint64_t generation, const websocket::ClientError& error) {
    if (generation != generation_) return;
    client_.reset();
    report_failure(generation, std::string(websocket::to_string(error.category)), error.message);
  }

  void report_failure(std::uint64_t generation, std::string reason, std::string message) {
    connected_ = false;
    publish_status();
    if (events_.failed) {
      events_.failed(generation, std::move(reason), std::move(message), last_stream_seq_,
                     delivered_);
    }
  }

  void publish_frame(const proto::FrameHeader& header, std::vector<std::uint8_t>&& frame) {
    const auto encoded = proto::encode_frame_header(header);
    const auto topic = proto::topic(proto::MessageType::frame);
    send_part(pub_, zmq::buffer(topic.data(), topic.size()), zmq::send_flags::sndmore);
    send_part(pub_, zmq::buffer(encoded), zmq::send_flags::sndmore);
    zmq::message_t body;
    if (!frame.empty()) {
      auto* owned = new std::vector<std::uint8_t>(std::move(frame));
      body.rebuild(owned->data(), owned->size(), free_message_buffer, owned);
    }
    static_cast<void>(pub_.send(body, zmq::send_flags::none));
  }

  void publish_status() {
    proto::Status status;
    status.epoch = epoch_;
    status.last_ingest_seq = ingest_seq_;
    status.resume_id = resume_id_;
    status.last_upstream_seq = last_upstream_seq_;
    status.sent_time_us = clock::wall_clock_us();
    status.connected = connected_;
    const auto encoded = proto::encode_status(status);
    const auto topic = proto::topic(proto::MessageType::status);
    send_part(pub_, zmq::buffer(topic.data(), topic.size()), zmq::send_flags::sndmore);
    send_part(pub_, zmq::buffer(encoded), zmq::send_flags::none);
  }

  void arm_status_timer() {
    status_timer_.expires_after(options_.status_interval);
    status_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      publish_status();
      double quiet = 0;
      if (last_frame_) {
        quiet = std::chrono::duration<double>(SteadyClock::now() - *last_frame_).count();
      } else if (stream_began_) {
        quiet = std::chrono::duration<double>(SteadyClock::now() - *stream_began_).count();
      }
      probe_.set_seconds_since_last_frame(quiet);
      arm_status_timer();
    });
  }

  LinkOptions options_;
  IngestProbe& probe_;
  LinkEvents events_;
  const std::uint64_t epoch_;
  net::io_context io_;
  zmq::socket_t pub_;
  std::string endpoint_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  net::steady_timer status_timer_;
  std::unique_ptr<websocket::WebSocketClient> client_;
  firehose::FrameDecoder decoder_;
  std::uint64_t generation_ = 0;
  std::uint64_t ingest_seq_ = 0;
  std::uint64_t resume_id_ = 0;
  std::int64_t last_upstream_seq_ = 0;
  std::int64_t last_stream_seq_ = 0;
  bool stream_start_pending_ = false;
  bool connected_ = false;
  bool delivered_ = false;
  std::optional<SteadyClock::time_point> last_frame_;
  std::optional<SteadyClock::time_point> stream_began_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
  std::thread thread_;
};

UpstreamLink::UpstreamLink(zmq::context_t& context, std::uint64_t epoch, LinkOptions options,
                           IngestProbe& probe, LinkEvents events)
    : impl_(std::make_unique<Impl>(context, epoch, std::move(options), probe, std::move(events))) {}

UpstreamLink::~UpstreamLink() { stop(); }

void UpstreamLink::start() { impl_->start(); }

std::string UpstreamLink::frames_endpoint() const { return impl_->endpoint(); }

void UpstreamLink::begin_stream(std::uint64_t generation, std::uint64_t resume_id,
                                std::int64_t cursor) {
  impl_->begin_stream(generation, resume_id, cursor);
}

void UpstreamLink::reconnect(std::uint64_t generation, std::int64_t cursor) {
  impl_->reconnect(generation, cursor);
}

void UpstreamLink::publish_status() { impl_->post_status(); }

void UpstreamLink::stop() { impl_->stop(); }

}  // namespace jetstream::ingest
