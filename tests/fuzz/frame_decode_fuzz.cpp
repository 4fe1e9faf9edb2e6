// Fuzzes the whole untrusted path of a firehose frame: header, body, CAR, CID check, record
// conversion and v1 JSON. Any crash, hang, sanitizer report or broken invariant is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/firehose/v1_encoder.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static jetstream::firehose::V1Encoder encoder;
  std::vector<jetstream::firehose::PendingEvent> events;
  encoder.events_from_frame({data, size}, events);
  for (const auto& event : events) {
    // Every event must be a complete JSON object with the time_us hole inside it.
    if (event.json.empty() || event.json.front() != '{' || event.json.back() != '}' ||
        event.time_us_offset == 0 || event.time_us_offset >= event.json.size()) {
      std::abort();
    }
    const std::string finalized = event.finalize(1);
    if (finalized.size() != event.json.size() + 1) std::abort();
  }
  return 0;
}
