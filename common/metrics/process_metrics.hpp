// Metrics every service exports besides its own: the standard Prometheus process collector
// (computed from /proc/self at scrape time) and the build info gauge.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <string_view>
#include <vector>

namespace jetstream::metrics {

/// The standard process metrics, with client_golang's names, help texts and semantics:
/// `process_cpu_seconds_total` (counter, user + system), `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds` (soft RLIMIT_NOFILE),
/// `process_start_time_seconds` (unix seconds). Read from /proc/self on every Collect(); a file
/// that cannot be read drops its metrics from that scrape and nothing else. Thread-safe.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

/// Attaches a ProcessCollector to `registry` (see exposition.hpp); a second call is a no-op.
void register_process_metrics(prometheus::Registry& registry);

/// The project version from CMake (`project(... VERSION ...)`), e.g. `0.1.0`.
std::string_view version();

/// Gauge `jetstream_build_info{service="<service>",version="<version>"} 1`.
void register_build_info(prometheus::Registry& registry, std::string_view service,
                         std::string_view version = metrics::version());

}  // namespace jetstream::metrics
