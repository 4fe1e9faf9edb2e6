#include "tools/loadgen/engine.hpp"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace jetstream::loadgen {
namespace {

constexpr std::size_t kScratchBytes = 256 * 1024;
/// Reads per readiness report before going back to epoll (fairness between sockets).
constexpr int kReadsPerEvent = 4;
constexpr int kMaxEvents = 256;
/// Connections started per loop turn when not paced, so the loop keeps reading meanwhile.
constexpr std::size_t kConnectBurst = 128;
constexpr int kIdleWaitMs = 20;

std::string errno_text(int error) { return std::strerror(error); }

/// Close reason text for the report: printable ASCII, bounded.
std::string reason_text(std::string_view reason) {
  std::string out;
  for (const char c : reason.substr(0, std::min<std::size_t>(reason.size(), 123))) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  return out;
}

}  // namespace

Worker::Worker(const EngineConfig& config, std::vector<std::size_t> client_ids, std::uint64_t seed)
    : config_(config), connections_(client_ids.size()), scratch_(kScratchBytes), random_(seed) {
  for (std::size_t i = 0; i < client_ids.size(); ++i) connections_[i].id = client_ids[i];
  if (config_.dictionary && config_.decompress_every > 0) {
    decompressor_ = std::make_unique<zstd::Decompressor>(config_.dictionary);
  }
  if (config_.deflate) inflater_ = std::make_unique<websocket::MessageInflater>();
}

Worker::~Worker() {
  close_all();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void Worker::run(const std::atomic<bool>& stop) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    for (Connection& c : connections_) finish(c, "epoll_create1: " + errno_text(errno));
    publish();
    return;
  }
  start_steady_us_ = steady_clock_us();
  std::int64_t next_expiry_check = start_steady_us_;
  std::array<epoll_event, kMaxEvents> events{};
  while (!stop.load(std::memory_order_acquire)) {
    const std::int64_t now = steady_clock_us();
    connect_due(now);
    int wait_ms = kIdleWaitMs;
    if (next_to_connect_ < connections_.size()) {
      if (config_.connect_rate <= 0) {
        wait_ms = 0;
      } else {
        const double next_at_us =
            static_cast<double>(next_to_connect_) / config_.connect_rate * 1e6;
        const double wait = (next_at_us - static_cast<double>(now - start_steady_us_)) / 1000.0;
        wait_ms = std::clamp(static_cast<int>(std::ceil(wait)), 0, kIdleWaitMs);
      }
    }
    const int ready = epoll_wait(epoll_fd_, events.data(), kMaxEvents, wait_ms);
    for (int i = 0; i < ready; ++i) {
      on_event(connections_[events[static_cast<std::size_t>(i)].data.u64],
               events[static_cast<std::size_t>(i)].events);
    }
    if (now >= next_expiry_check) {
      expire(now);
      next_expiry_check = now + 100'000;
    }
    publish();
  }
  close_all();
  publish();
}

void Worker::connect_due(std::int64_t now_steady_us) {
  std::size_t allowed = connections_.size();
  if (config_.connect_rate > 0) {
    const double elapsed_s = static_cast<double>(now_steady_us - start_steady_us_) / 1e6;
    allowed = std::min(connections_.size(),
                       static_cast<std::size_t>(elapsed_s * config_.connect_rate) + 1);
  }
  const std::size_t limit = std::min(allowed, next_to_connect_ + kConnectBurst);
  while (next_to_connect_ < limit) start_connect(connections_[next_to_connect_++], now_steady_us);
}

void Worker::start_connect(Connection& c, std::int64_t now_steady_us) {
  const auto* address = reinterpret_cast<const sockaddr*>(&config_.address);
  c.fd = ::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    finish(c, "socket: " + errno_text(errno));
    return;
  }
  const int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (config_.source_addresses > 0) {
    sockaddr_in source{};
    source.sin_family = AF_INET;
    const auto host = static_cast<std::uint32_t>(1 + c.id % config_.source_addresses);
    source.sin_addr.s_addr = htonl((127u << 24) | (config_.source_network << 8) | host);
    if (::bind(c.fd, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0) {
      finish(c, "bind to a loopback source address: " + errno_text(errno));
      return;
    }
  }
  c.state = State::kConnecting;
  c.deadline_us = now_steady_us + config_.handshake_timeout.count();
  epoll_event event{};
  event.events = EPOLLOUT;
  event.data.u64 = static_cast<std::uint64_t>(&c - connections_.data());
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &event) != 0) {
    finish(c, "epoll_ctl: " + errno_text(errno));
    return;
  }
  c.want_write = true;
  if (::connect(c.fd, address, config_.address_length) == 0) {
    on_connected(c);
  } else if (errno != EINPROGRESS) {
    finish(c, "connect: " + errno_text(errno));
  }
}

void Worker::on_connected(Connection& c) {
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  if (error != 0) {
    finish(c, "connect: " + errno_text(error));
    return;
  }
  std::array<std::uint8_t, 16> nonce{};
  for (std::size_t i = 0; i < nonce.size(); i += 8) {
    const std::uint64_t bits = random_();
    std::memcpy(nonce.data() + i, &bits, 8);
  }
  const std::string key = websocket::websocket_client_key(nonce);
  c.accept = websocket::websocket_accept(key);
  c.state = State::kHandshaking;
  set_events(c, false);
  send_bytes(c, upgrade_request(config_.host_header, config_.target, key, config_.deflate));
}

void Worker::on_event(Connection& c, std::uint32_t events) {
  if (c.state == State::kDone) return;
  if (c.state == State::kConnecting) {
    on_connected(c);
    return;
  }
  if ((events & EPOLLOUT) != 0) flush(c);
  if (c.state != State::kDone && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
    on_readable(c);
  }
}

void Worker::on_readable(Connection& c) {
  for (int round = 0; round < kReadsPerEvent && c.state != State::kDone; ++round) {
    const ssize_t n = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
    if (n > 0) {
      now_us_ = wall_clock_us();
      on_bytes(c, {scratch_.data(), static_cast<std::size_t>(n)});
      if (static_cast<std::size_t>(n) < scratch_.size()) return;  // drained for now
      continue;
    }
    if (n == 0) {
      on_eof(c);
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) finish(c, "recv: " + errno_text(errno));
    return;
  }
}

void Worker::on_bytes(Connection& c, std::string_view data) {
  if (c.state != State::kHandshaking) {
    c.result.wire_bytes += data.size();
    wire_bytes_ += data.size();
    feed(c, data);
    return;
  }
  c.in.append(data);
  const UpgradeCheck check = check_upgrade_response(c.in, c.accept, false, config_.deflate);
  switch (check.status) {
    case UpgradeCheck::Status::kIncomplete:
      if (c.in.size() > 2 * kMaxResponseHeadBytes) finish(c, "handshake: response too long");
      return;
    case UpgradeCheck::Status::kRejected: finish(c, "handshake: " + check.error); return;
    case UpgradeCheck::Status::kUpgraded: break;
  }
  c.state = State::kOpen;
  c.result.connected = true;
  if (check.deflate) {
    c.parser = websocket::FrameParser(websocket::Sender::kServer, 64u << 20,
                                      websocket::Compression::kPermessageDeflate);
  }
  ++connected_;
  ++open_;
  const std::string rest = c.in.substr(check.header_bytes);
  std::string().swap(c.in);
  c.result.wire_bytes += rest.size();
  wire_bytes_ += rest.size();
  feed(c, rest);
}

void Worker::on_eof(Connection& c) {
  if (c.state == State::kHandshaking) {
    const UpgradeCheck check = check_upgrade_response(c.in, c.accept, true, config_.deflate);
    finish(c,
           "handshake: " + (check.error.empty() ? std::string("connection closed") : check.error));
    return;
  }
  // After our own close (--until-events) the server may simply hang up: not worth reporting.
  finish(c, c.close_sent ? std::string() : std::string("eof without close frame"));
}

void Worker::feed(Connection& c, std::string_view data) {
  while (!data.empty() && c.state != State::kDone) {
    switch (c.parser.parse(data, message_, keep_bytes(c))) {
      case websocket::FrameParser::Status::kNeedMore: return;
      case websocket::FrameParser::Status::kError:
        finish(c, "protocol error: " + std::string(c.parser.error().reason));
        return;
      case websocket::FrameParser::Status::kMessage:
        if (!websocket::is_control(message_.opcode)) {
          on_message(c, message_);
        } else if (!on_control(c, message_)) {
          return;
        }
        break;
    }
  }
}

bool Worker::sampled(std::uint64_t index) const {
  return decompressor_ != nullptr && index % config_.decompress_every == 0;
}

websocket::KeepBytes Worker::keep_bytes(const Connection& c) const {
  if (c.state != State::kOpen) return {0, 0};
  // A compressed text message is inflated from its start when sampled: keep all of it then.
  if (inflater_) {
    const bool inflate =
        config_.decompress_every > 0 && c.result.messages % config_.decompress_every == 0;
    return {inflate ? std::numeric_limits<std::size_t>::max() : kTimeUsPrefixBytes,
            sampled(c.result.messages) ? std::numeric_limits<std::size_t>::max() : 0};
  }
  return {kTimeUsPrefixBytes,
          sampled(c.result.messages) ? std::numeric_limits<std::size_t>::max() : 0};
}

void Worker::on_message(Connection& c, const websocket::Message& message) {
  const websocket::Opcode opcode = message.opcode;
  const std::string_view kept = message.view;  // often into the receive buffer: no copy
  if (c.state != State::kOpen) {
    if (c.state == State::kClosing) ++ignored_after_target_;
    return;
  }
  ClientResult& r = c.result;
  const std::uint64_t index = r.messages++;
  r.payload_bytes += message.size;
  ++deliveries_;
  if (opcode == websocket::Opcode::kText && message.compressed) {
    // Every K-th message (--decompress-every), like zstd's: one loadgen thread cannot inflate
    // what one fanout core sends to 1,000 clients. Only the event's start is inflated: the bound
    // stops zlib right after `time_us`.
    if (config_.decompress_every == 0 || index % config_.decompress_every != 0) {
      // not sampled: counted only
    } else {
      const auto result = inflater_->inflate(kept, kTimeUsPrefixBytes, inflated_);
      const auto time_us = result == websocket::MessageInflater::Result::kCorrupt
                               ? std::nullopt
                               : extract_time_us(inflated_);
      if (result == websocket::MessageInflater::Result::kCorrupt) ++r.decompress_failures;
      if (time_us) {
        record_time(c, *time_us);
      } else if (result != websocket::MessageInflater::Result::kCorrupt) {
        ++r.unparsed;
      }
    }
  } else if (opcode == websocket::Opcode::kText) {
    if (const auto time_us = extract_time_us(kept)) {
      record_time(c, *time_us);
    } else {
      ++r.unparsed;
    }
  } else if (sampled(index)) {
    const auto json = decompressor_->decompress(
        {reinterpret_cast<const std::uint8_t*>(kept.data()), kept.size()});
    if (!json) {
      ++r.decompress_failures;
    } else if (const auto time_us = extract_time_us(*json)) {
      record_time(c, *time_us);
    } else {
      ++r.unparsed;
    }
  } else if (config_.decompress_every > 0 && decompressor_ == nullptr) {
    ++r.unparsed;  // binary without a dictionary: nothing can be read
  }
  if (config_.until_events > 0 && r.messages >= config_.until_events) {
    r.reached_target = true;
    ++settled_;
    send_close(c, 1000, "jetstream-loadgen: --until-events reached");
    if (c.state != State::kDone) c.state = State::kClosing;
  }
}

void Worker::record_time(Connection& c, std::int64_t time_us) {
  ClientResult& r = c.result;
  if (r.timed == 0) {
    r.first_time_us = time_us;
  } else if (time_us <= r.last_time_us) {
    if (r.order_violations++ == 0) {
      r.first_violation_previous = r.last_time_us;
      r.first_violation_next = time_us;
    }
  }
  r.last_time_us = time_us;
  r.hash.add(time_us);
  ++r.timed;
  const std::int64_t latency = now_us_ - time_us;
  if (latency < 0) {
    ++negative_latencies_;
    latency_.record(0);
  } else {
    latency_.record(static_cast<std::uint64_t>(latency));
  }
}

bool Worker::on_control(Connection& c, const websocket::Message& message) {
  using websocket::Opcode;
  if (message.opcode == Opcode::kPing) {
    std::string frame;
    websocket::append_masked_frame(frame, Opcode::kPong, message.payload, mask());
    send_bytes(c, frame);
    return true;
  }
  if (message.opcode != Opcode::kClose) return true;  // unsolicited pong
  std::string reason;
  if (!c.close_sent) {
    reason = "close " + std::to_string(message.close_code);
    if (!message.payload.empty()) reason += " " + reason_text(message.payload);
    // Echo the status (RFC 6455 §5.5.1); 1005 means none was given, so none is sent back.
    std::string frame;
    websocket::append_masked_frame(frame, Opcode::kClose,
                                   websocket::close_payload(message.close_code, {}), mask());
    c.close_sent = true;
    send_bytes(c, frame);
  }
  finish(c, std::move(reason));
  return false;
}

void Worker::send_close(Connection& c, std::uint16_t code, std::string_view reason) {
  if (c.close_sent || c.fd < 0) return;
  c.close_sent = true;
  std::string frame;
  websocket::append_masked_frame(frame, websocket::Opcode::kClose,
                                 websocket::close_payload(code, reason), mask());
  send_bytes(c, frame);
}

void Worker::send_bytes(Connection& c, std::string_view data) {
  if (c.fd < 0) return;
  if (!c.out.empty()) {
    c.out.append(data);
    return;
  }
  while (!data.empty()) {
    const ssize_t n = ::send(c.fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    finish(c, "send: " + errno_text(errno));
    return;
  }
  if (!data.empty()) {
    c.out.assign(data);
    set_events(c, true);
  }
}

void Worker::flush(Connection& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    finish(c, "send: " + errno_text(errno));
    return;
  }
  set_events(c, false);
}

void Worker::set_events(Connection& c, bool want_write) {
  if (c.fd < 0 || c.want_write == want_write) return;
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP | (want_write ? EPOLLOUT : 0u);
  event.data.u64 = static_cast<std::uint64_t>(&c - connections_.data());
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &event);
  c.want_write = want_write;
}

websocket::Mask Worker::mask() {
  const auto bits = static_cast<std::uint32_t>(random_());
  websocket::Mask key{};
  std::memcpy(key.data(), &bits, 4);
  return key;
}

void Worker::finish(Connection& c, std::string reason) {
  if (c.state == State::kDone) return;
  if (c.state == State::kOpen || c.state == State::kClosing) --open_;
  if (!c.result.reached_target) ++settled_;
  c.result.end_reason = std::move(reason);
  if (c.fd >= 0) ::close(c.fd);  // also leaves the epoll set
  c.fd = -1;
  c.state = State::kDone;
  std::string().swap(c.out);
  std::string().swap(c.in);
}

void Worker::expire(std::int64_t now_steady_us) {
  for (Connection& c : connections_) {
    if ((c.state == State::kConnecting || c.state == State::kHandshaking) &&
        now_steady_us > c.deadline_us) {
      finish(c, c.state == State::kConnecting ? "connect: timed out" : "handshake: timed out");
    }
  }
}

void Worker::close_all() {
  for (Connection& c : connections_) {
    if (c.fd < 0) continue;
    // Best effort goodbye; the run is over whatever the server does with it.
    if (c.state == State::kOpen) send_close(c, 1000, "jetstream-loadgen: run finished");
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    if (c.state == State::kOpen || c.state == State::kClosing) --open_;
    if (c.state == State::kConnecting || c.state == State::kHandshaking) {
      c.result.end_reason = "still connecting at the end of the run";
    }
    c.state = State::kDone;
  }
}

void Worker::publish() {
  counters_.deliveries.store(deliveries_, std::memory_order_relaxed);
  counters_.wire_bytes.store(wire_bytes_, std::memory_order_relaxed);
  counters_.connected.store(connected_, std::memory_order_relaxed);
  counters_.open.store(open_, std::memory_order_relaxed);
  counters_.settled.store(settled_, std::memory_order_relaxed);
}

void Worker::collect(std::vector<ClientResult>& results) const {
  for (const Connection& c : connections_) results[c.id] = c.result;
}

}  // namespace jetstream::loadgen
