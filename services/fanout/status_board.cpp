#include "services/fanout/status_board.hpp"

#include <cmath>
#include <cstdio>

#include "common/codec/json_writer.hpp"

namespace jetstream::fanout {

namespace {

/// How long decode may stay silent before the page says it is not heard from (it sends its
/// status once a second).
constexpr auto kDecodeSilence = std::chrono::seconds(5);

void append_number(std::string& out, double value, int decimals) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  out += buffer;
}

void key(std::string& out, std::string_view name) {
  if (out.back() != '{') out += ',';
  codec::append_json_string(out, name);
  out += ':';
}

/// `(later - earlier) / seconds`, or null when there is no earlier sample or no time between.
void rate(std::string& out, std::string_view name, double later, double earlier, double seconds,
          bool known) {
  key(out, name);
  if (!known || seconds <= 0 || later < earlier) {
    out += "null";
    return;
  }
  append_number(out, (later - earlier) / seconds, 2);
}

}  // namespace

std::string render_status_json(const StatusSample& now, const StatusSample* earlier) {
  std::string out = "{";
  key(out, "time_us");
  codec::append_json_int(out, now.wall_time_us);

  const proto::PipelineStatus* status = now.pipeline ? &*now.pipeline : nullptr;
  const bool reachable = status != nullptr && now.pipeline_age <= kDecodeSilence;
  const proto::PipelineStatus* before =
      earlier != nullptr && earlier->pipeline ? &*earlier->pipeline : nullptr;
  const double decode_seconds =
      status != nullptr && before != nullptr
          ? static_cast<double>(status->sent_time_us - before->sent_time_us) / 1e6
          : 0;

  key(out, "upstream");
  out += '{';
  key(out, "connected");
  out += reachable && status->upstream_connected ? "true" : "false";
  key(out, "lag_seconds");
  if (reachable && status->upstream_lag_us >= 0) {
    append_number(out, static_cast<double>(status->upstream_lag_us) / 1e6, 3);
  } else {
    out += "null";
  }
  out += '}';

  key(out, "decode");
  out += '{';
  key(out, "reachable");
  out += reachable ? "true" : "false";
  key(out, "seconds_since_heard");
  if (status != nullptr) {
    append_number(out, std::chrono::duration<double>(now.pipeline_age).count(), 1);
  } else {
    out += "null";
  }
  rate(out, "frames_per_second", status ? static_cast<double>(status->frames_received) : 0,
       before ? static_cast<double>(before->frames_received) : 0, decode_seconds, status && before);
  rate(out, "events_per_second", status ? static_cast<double>(status->events_stored) : 0,
       before ? static_cast<double>(before->events_stored) : 0, decode_seconds, status && before);
  key(out, "events_stored");
  if (status != nullptr) {
    codec::append_json_uint(out, status->events_stored);
  } else {
    out += "null";
  }
  out += '}';

  const double fanout_seconds =
      earlier != nullptr ? std::chrono::duration<double>(now.at - earlier->at).count() : 0;
  key(out, "fanout");
  out += '{';
  key(out, "joined");
  out += now.joined ? "true" : "false";
  rate(out, "events_per_second", now.events_received, earlier ? earlier->events_received : 0,
       fanout_seconds, earlier != nullptr);
  rate(out, "deliveries_per_second", now.events_delivered, earlier ? earlier->events_delivered : 0,
       fanout_seconds, earlier != nullptr);
  key(out, "clients");
  append_number(out, now.clients_text + now.clients_zstd + now.clients_deflate, 0);
  key(out, "clients_by_encoding");
  out += '{';
  key(out, "text");
  append_number(out, now.clients_text, 0);
  key(out, "zstd");
  append_number(out, now.clients_zstd, 0);
  key(out, "deflate");
  append_number(out, now.clients_deflate, 0);
  out += "}}";

  key(out, "log");
  out += '{';
  key(out, "oldest_time_us");
  if (status != nullptr && status->log_oldest_time_us > 0) {
    codec::append_json_int(out, status->log_oldest_time_us);
  } else {
    out += "null";
  }
  key(out, "newest_time_us");
  if (status != nullptr && status->log_newest_time_us > 0) {
    codec::append_json_int(out, status->log_newest_time_us);
  } else {
    out += "null";
  }
  out += '}';

  key(out, "state");
  if (status != nullptr && status->twin) {
    out += '{';
    key(out, "collections");
    codec::append_json_string(out, now.compacted);
    key(out, "building");
    codec::append_json_string(out, now.building);
    key(out, "records");
    codec::append_json_uint(out, status->compacted_records);
    out += '}';
  } else {
    out += "null";
  }

  key(out, "backfill");
  if (status != nullptr && status->backfill) {
    out += '{';
    key(out, "repos_done");
    codec::append_json_uint(out, status->backfill_repos_done);
    key(out, "repos_total");
    codec::append_json_uint(out, status->backfill_repos_total);
    key(out, "repos_failed");
    codec::append_json_uint(out, status->backfill_repos_failed);
    key(out, "records_applied");
    codec::append_json_uint(out, status->backfill_records_applied);
    rate(out, "records_per_second", static_cast<double>(status->backfill_records_applied),
         before ? static_cast<double>(before->backfill_records_applied) : 0, decode_seconds,
         before != nullptr);
    out += '}';
  } else {
    out += "null";
  }
  out += '}';
  return out;
}

void StatusBoard::add(StatusSample sample) {
  std::lock_guard lock(mutex_);
  samples_.push_back(std::move(sample));
  // Keep the oldest sample that is still within the window, and always two to rate between.
  while (samples_.size() > 2 && samples_.back().at - samples_[1].at >= window_) {
    samples_.pop_front();
  }
}

std::string StatusBoard::json() const {
  std::lock_guard lock(mutex_);
  if (samples_.empty()) return render_status_json(StatusSample{}, nullptr);
  return render_status_json(samples_.back(), samples_.size() > 1 ? &samples_.front() : nullptr);
}

}  // namespace jetstream::fanout
