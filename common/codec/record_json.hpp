// DAG-CBOR record → JSON, byte for byte as Jetstream v1 served it, with atproto data-model
// validation. A record that is not valid atproto data yields an error and no output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/dag_cbor.hpp"

namespace jetstream::codec {

enum class RecordError : std::uint8_t {
  malformed_cbor,  ///< see `RecordConverter::last_cbor_error()`
  not_a_map,       ///< the top level of a record must be a map
  bad_type_field,  ///< `$type` present but not a non-empty string
  bad_blob,        ///< `$type: "blob"` without exactly ref (link), mimeType (text), size (int)
  reserved_key,    ///< a map with a `$link` or `$bytes` key: ambiguous with links and bytes
  duplicate_key,
};

std::string_view to_string(RecordError error);

/// Converts records to v1 JSON. Map keys come out sorted by byte order at every level, except
/// blobs, written `$type`, `ref`, `mimeType`, `size`. Links become {"$link":"b..."}, bytes
/// {"$bytes":"<base64 std, unpadded>"}. Holds scratch buffers: one instance per thread.
class RecordConverter {
 public:
  explicit RecordConverter(CborLimits limits = {}) : limits_(limits) {}

  /// Appends the JSON of the record in `cbor` to `out`. On error `out` is left unchanged.
  std::optional<RecordError> append_json(std::string& out, byte_view cbor);

  /// Converts an already parsed document (any top-level value, no record checks at the top).
  std::optional<RecordError> append_value_json(std::string& out, const CborDocument& document,
                                               std::uint32_t index);

  CborError last_cbor_error() const { return last_cbor_error_; }

 private:
  std::optional<RecordError> write_value(std::string& out, const CborDocument& document,
                                         std::uint32_t index);
  std::optional<RecordError> write_map(std::string& out, const CborDocument& document,
                                       std::uint32_t index);

  CborLimits limits_;
  CborDocument document_;
  std::vector<std::uint32_t> key_scratch_;  // key node indices of the maps being written
  CborError last_cbor_error_ = CborError::truncated;
};

}  // namespace jetstream::codec
