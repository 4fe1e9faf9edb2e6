// fanout's status page (API.md "Status page"): `GET /status.json`, the figures of the whole
// pipeline as this replica sees them, and `GET /status`, one self-contained HTML page that shows
// them live and tails `/subscribe` with filters typed in the page.
//
// The figures come over the links fanout already has: decode's pipeline status (proto §3.6c,
// once a second on the events stream: ingest's connection, decode's counters and log bounds, the
// twin's size, backfill's progress, which backfill reports to decode) and this replica's own
// metrics. No new port, nothing for users to open. Rates are counters' differences over the last
// few seconds of samples.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "proto/events.hpp"

namespace jetstream::fanout {

/// One look at everything the page shows, taken once a second.
struct StatusSample {
  std::chrono::steady_clock::time_point at;
  std::int64_t wall_time_us = 0;
  // This replica (FanoutProbe::figures).
  double clients_text = 0, clients_zstd = 0, clients_deflate = 0;
  double events_received = 0;
  double events_delivered = 0;
  bool joined = false;  ///< the feed has joined decode's stream
  // decode's last pipeline status; `pipeline_age` is how long ago it arrived.
  std::optional<proto::PipelineStatus> pipeline;
  std::chrono::steady_clock::duration pipeline_age{};
  std::string compacted;  ///< decode's compacted set (canonical), empty without a twin
  std::string building;   ///< the part of it still built from the log
};

/// The JSON of `/status.json` for the newest sample, with rates against an older one (nullptr:
/// no rates yet, they are null). Pure: unit-tested without sockets.
std::string render_status_json(const StatusSample& now, const StatusSample* earlier);

/// The page of `/status`: HTML with its style and script inline (no external request of any
/// kind), which polls `/status.json` once a second and tails `/subscribe` on the same origin.
std::string_view status_page_html();

/// The samples of the last seconds; sampled by one actor, read by the io threads.
class StatusBoard {
 public:
  /// Keeps samples this long; rates use the oldest one kept.
  explicit StatusBoard(std::chrono::seconds window = std::chrono::seconds(5)) : window_(window) {}
  void add(StatusSample sample);
  /// `render_status_json` of the newest sample against the oldest kept (`{}`-like figures with
  /// nulls before the first sample).
  std::string json() const;

 private:
  std::chrono::seconds window_;
  mutable std::mutex mutex_;
  std::deque<StatusSample> samples_;
};

}  // namespace jetstream::fanout
