#include "common/metrics/proto_rejections.hpp"

#include <string>

namespace jetstream::metrics {

ProtoRejections::ProtoRejections(prometheus::Registry& registry)
    : family_(&prometheus::BuildCounter()
                   .Name("jetstream_proto_rejected_total")
                   .Help("Inter-service messages rejected by their receiver, by message and reason")
                   .Register(registry)) {}

void ProtoRejections::record(std::string_view message, std::string_view reason) {
  // Family::Add is thread-safe and returns the existing child for known labels.
  family_->Add({{"message", std::string(message)}, {"reason", std::string(reason)}}).Increment();
}

}  // namespace jetstream::metrics
