#include "common/codec/record_json.hpp"

#include <algorithm>

#include "common/codec/cid.hpp"
#include "common/codec/json_writer.hpp"
#include "common/codec/multibase.hpp"

namespace jetstream::codec {

std::string_view to_string(RecordError error) {
  switch (error) {
    case RecordError::malformed_cbor: return "malformed_cbor";
    case RecordError::not_a_map: return "not_a_map";
    case RecordError::bad_type_field: return "bad_type_field";
    case RecordError::bad_blob: return "bad_blob";
    case RecordError::reserved_key: return "reserved_key";
    case RecordError::duplicate_key: return "duplicate_key";
  }
  return "unknown";
}

std::optional<RecordError> RecordConverter::append_json(std::string& out, byte_view cbor) {
  if (auto error = document_.parse(cbor, limits_)) {
    last_cbor_error_ = *error;
    return RecordError::malformed_cbor;
  }
  if (document_.root().kind != CborKind::map) return RecordError::not_a_map;
  return append_value_json(out, document_, 0);
}

std::optional<RecordError> RecordConverter::append_value_json(std::string& out,
                                                              const CborDocument& document,
                                                              std::uint32_t index) {
  const std::size_t original_size = out.size();
  key_scratch_.clear();
  auto error = write_value(out, document, index);
  if (error) out.resize(original_size);
  return error;
}

std::optional<RecordError> RecordConverter::write_value(std::string& out,
                                                        const CborDocument& document,
                                                        std::uint32_t index) {
  const CborNode& node = document.node(index);
  switch (node.kind) {
    case CborKind::unsigned_integer: append_json_uint(out, node.integer); return std::nullopt;
    case CborKind::negative_integer:
      // -1 - n, with n <= INT64_MAX, always fits int64.
      append_json_int(out, -1 - static_cast<std::int64_t>(node.integer));
      return std::nullopt;
    case CborKind::text: append_json_string(out, node.text()); return std::nullopt;
    case CborKind::bytes:
      out.append(R"({"$bytes":")");
      append_base64_std_unpadded(out, node.bytes());
      out.append("\"}");
      return std::nullopt;
    case CborKind::cid_link:
      out.append(R"({"$link":")");
      append_cid_string(out, node.bytes());
      out.append("\"}");
      return std::nullopt;
    case CborKind::boolean: out.append(node.integer != 0 ? "true" : "false"); return std::nullopt;
    case CborKind::null: out.append("null"); return std::nullopt;
    case CborKind::array: {
      out.push_back('[');
      std::uint32_t child = CborDocument::first_child(index);
      for (std::uint32_t i = 0; i < node.count; ++i) {
        if (i != 0) out.push_back(',');
        if (auto error = write_value(out, document, child)) return error;
        child = document.next_sibling(child);
      }
      out.push_back(']');
      return std::nullopt;
    }
    case CborKind::map: return write_map(out, document, index);
  }
  return RecordError::malformed_cbor;
}

std::optional<RecordError> RecordConverter::write_map(std::string& out,
                                                      const CborDocument& document,
                                                      std::uint32_t index) {
  const CborNode& map = document.node(index);
  // Collect this map's key indices at the end of the shared scratch vector; nested maps push
  // after them and truncate back, so one allocation serves the whole record.
  const std::size_t base = key_scratch_.size();
  std::uint32_t child = CborDocument::first_child(index);
  std::optional<std::uint32_t> type_value;
  for (std::uint32_t pair = 0; pair < map.count; ++pair) {
    const std::string_view key = document.node(child).text();
    if (key == "$type") type_value = child + 1;
    if (key == "$link" || key == "$bytes") return RecordError::reserved_key;
    key_scratch_.push_back(child);
    child = document.next_sibling(child + 1);
  }

  if (type_value) {
    const CborNode& type = document.node(*type_value);
    if (type.kind != CborKind::text || type.size == 0) return RecordError::bad_type_field;
    if (type.text() == "blob") {
      key_scratch_.resize(base);
      const auto ref = document.find(index, "ref");
      const auto mime_type = document.find(index, "mimeType");
      const auto size = document.find(index, "size");
      if (map.count != 4 || !ref || !mime_type || !size ||
          document.node(*ref).kind != CborKind::cid_link ||
          document.node(*mime_type).kind != CborKind::text ||
          (document.node(*size).kind != CborKind::unsigned_integer &&
           document.node(*size).kind != CborKind::negative_integer)) {
        return RecordError::bad_blob;
      }
      out.append(R"({"$type":"blob","ref":)");
      write_value(out, document, *ref);
      out.append(R"(,"mimeType":)");
      write_value(out, document, *mime_type);
      out.append(R"(,"size":)");
      write_value(out, document, *size);
      out.push_back('}');
      return std::nullopt;
    }
  }

  const auto keys_begin = key_scratch_.begin() + static_cast<std::ptrdiff_t>(base);
  std::sort(keys_begin, key_scratch_.end(), [&document](std::uint32_t a, std::uint32_t b) {
    return document.node(a).text() < document.node(b).text();
  });
  for (auto it = keys_begin; it + 1 < key_scratch_.end(); ++it) {
    if (document.node(*it).text() == document.node(*(it + 1)).text()) {
      return RecordError::duplicate_key;
    }
  }

  out.push_back('{');
  const std::size_t end = key_scratch_.size();
  for (std::size_t i = base; i < end; ++i) {
    if (i != base) out.push_back(',');
    const std::uint32_t key = key_scratch_[i];
    append_json_string(out, document.node(key).text());
    out.push_back(':');
    if (auto error = write_value(out, document, key + 1)) return error;
  }
  out.push_back('}');
  key_scratch_.resize(base);
  return std::nullopt;
}

}  // namespace jetstream::codec
