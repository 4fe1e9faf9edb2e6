// What a scrape of `/metrics` returns: the families of a prometheus::Registry, plus any
// collectables computed at scrape time that were attached to that registry (process metrics).
//
// prometheus-cpp 1.0's Registry cannot hold a custom Collectable, so attachments live in a small
// process-wide table keyed by the registry's address. Each service keeps one registry for its
// whole life; a registry destroyed earlier must be detached first (tests do).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace jetstream::metrics {

/// The Content-Type of the Prometheus text format served on `/metrics`.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

/// Scrapes of `registry` also collect `collectable` (thread-safe; Collect() runs at scrape time
/// on the scraping thread, so it must be thread-safe too).
void attach_collectable(const prometheus::Registry& registry,
                        std::shared_ptr<prometheus::Collectable> collectable);
/// Forgets every collectable attached to `registry`.
void detach_collectables(const prometheus::Registry& registry);
/// The collectables attached to `registry`, in attachment order.
std::vector<std::shared_ptr<prometheus::Collectable>> attached_collectables(
    const prometheus::Registry& registry);

/// The registry's families followed by those of its attached collectables.
std::vector<prometheus::MetricFamily> collect(const prometheus::Registry& registry);
/// `collect(registry)` in the Prometheus text format (version 0.0.4).
std::string serialize(const prometheus::Registry& registry);

}  // namespace jetstream::metrics
