#include "services/ingest/ingest_probe.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>

namespace jetstream::ingest {

std::string_view to_string(UpstreamState state) {
  switch (state) {
    case UpstreamState::idle: return "idle";
    case UpstreamState::connecting: return "connecting";
    case UpstreamState::connected: return "connected";
    case UpstreamState::backoff: return "backoff";
  }
  return "unknown";
}

namespace {

std::string_view reconnect_reason(std::size_t index) {
  if (index < websocket::kErrorCategoryCount) {
    return websocket::to_string(static_cast<websocket::ErrorCategory>(index));
  }
  return kErrorFrameReason;
}

}  // namespace

IngestProbe::IngestProbe(prometheus::Registry& registry) : rejected_(registry) {
  connected_ = &prometheus::BuildGauge()
                    .Name("jetstream_ingest_upstream_connected")
                    .Help("1 while the upstream websocket is open")
                    .Register(registry)
                    .Add({});
  auto& states = prometheus::BuildGauge()
                     .Name("jetstream_ingest_upstream_state")
                     .Help(
                         "1 for the current upstream connection state (idle = waiting for "
                         "decode's first resume)")
                     .Register(registry);
  for (std::size_t i = 0; i < kUpstreamStateCount; ++i) {
    state_gauges_[i] =
        &states.Add({{"state", std::string(to_string(static_cast<UpstreamState>(i)))}});
  }
  state_gauges_[0]->Set(1);
  reconnects_family_ = &prometheus::BuildCounter()
                            .Name("jetstream_ingest_upstream_reconnects_total")
                            .Help(
                                "Upstream connections that failed or ended, by reason; each "
                                "one is followed by a reconnect after backoff")
                            .Register(registry);
  for (std::size_t i = 0; i < kReconnectReasonCount; ++i) {
    reconnects_[i] = &reconnects_family_->Add({{"reason", std::string(reconnect_reason(i))}});
  }
  frames_received_ = &prometheus::BuildCounter()
                          .Name("jetstream_ingest_frames_received_total")
                          .Help("Binary websocket messages read from upstream")
                          .Register(registry)
                          .Add({});
  bytes_received_ = &prometheus::BuildCounter()
                         .Name("jetstream_ingest_bytes_received_total")
                         .Help("Bytes of the websocket messages read from upstream")
                         .Register(registry)
                         .Add({});
  frames_published_ = &prometheus::BuildCounter()
                           .Name("jetstream_ingest_frames_published_total")
                           .Help("Frame envelopes published on the frames PUB socket")
                           .Register(registry)
                           .Add({});
  error_frames_ = &prometheus::BuildCounter()
                       .Name("jetstream_ingest_error_frames_total")
                       .Help("Upstream error frames (op = -1); each one ends the connection")
                       .Register(registry)
                       .Add({});
  last_upstream_seq_ = &prometheus::BuildGauge()
                            .Name("jetstream_ingest_last_upstream_seq")
                            .Help("Upstream seq of the last frame published (0 = none yet)")
                            .Register(registry)
                            .Add({});
  last_ingest_seq_ = &prometheus::BuildGauge()
                          .Name("jetstream_ingest_last_ingest_seq")
                          .Help("Ingest seq of the last frame published in this epoch")
                          .Register(registry)
                          .Add({});
  seconds_since_last_frame_ =
      &prometheus::BuildGauge()
           .Name("jetstream_ingest_seconds_since_last_frame")
           .Help(
               "Seconds since the last upstream frame (since the first resume when none yet; "
               "0 while idle); updated every status interval")
           .Register(registry)
           .Add({});
  auto& resumes = prometheus::BuildCounter()
                      .Name("jetstream_ingest_resumes_total")
                      .Help("Resume requests from decode: accepted (new id) or retry (same id)")
                      .Register(registry);
  resumes_accepted_ = &resumes.Add({{"result", "accepted"}});
  resumes_retried_ = &resumes.Add({{"result", "retry"}});
}

void IngestProbe::set_state(UpstreamState state) {
  state_.store(state, std::memory_order_relaxed);
  for (std::size_t i = 0; i < kUpstreamStateCount; ++i) {
    state_gauges_[i]->Set(i == static_cast<std::size_t>(state) ? 1 : 0);
  }
  connected_->Set(state == UpstreamState::connected ? 1 : 0);
}

void IngestProbe::record_reconnect(std::string_view reason) {
  for (std::size_t i = 0; i < kReconnectReasonCount; ++i) {
    if (reconnect_reason(i) == reason) {
      reconnects_[i]->Increment();
      return;
    }
  }
  reconnects_family_->Add({{"reason", std::string(reason)}}).Increment();
}

void IngestProbe::record_received(std::size_t bytes) {
  frames_received_->Increment();
  bytes_received_->Increment(static_cast<double>(bytes));
}

void IngestProbe::record_published(std::uint64_t ingest_seq, std::int64_t upstream_seq) {
  frames_published_->Increment();
  last_ingest_seq_->Set(static_cast<double>(ingest_seq));
  if (upstream_seq > 0) last_upstream_seq_->Set(static_cast<double>(upstream_seq));
}

void IngestProbe::record_error_frame() { error_frames_->Increment(); }

void IngestProbe::set_seconds_since_last_frame(double seconds) {
  seconds_since_last_frame_->Set(seconds);
}

void IngestProbe::record_resume(bool retry) {
  (retry ? resumes_retried_ : resumes_accepted_)->Increment();
}

void IngestProbe::record_rejected(std::string_view message, proto::DecodeError reason) {
  rejected_.record(message, proto::to_string(reason));
}

}  // namespace jetstream::ingest
