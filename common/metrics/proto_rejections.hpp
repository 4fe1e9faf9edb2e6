// `jetstream_proto_rejected_total{message,reason}`: the one registration of the metric every
// service has — inter-service messages their receiver rejected (proto/README.md). ingest, decode
// and fanout each hold one, registered in their own registry, so the family has one name, one
// help text and one label set across the pipeline.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <string_view>

namespace jetstream::metrics {

class ProtoRejections {
 public:
  explicit ProtoRejections(prometheus::Registry& registry);

  /// One rejected message: `message` is its type's name (or the channel's when the topic was
  /// unreadable), `reason` a proto::DecodeError name (`unknown_topic`, `wrong_part_count`, …).
  /// Thread-safe.
  void record(std::string_view message, std::string_view reason);

 private:
  prometheus::Family<prometheus::Counter>* family_;
};

}  // namespace jetstream::metrics
