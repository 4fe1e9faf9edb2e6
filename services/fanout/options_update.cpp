#include "services/fanout/options_update.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/websocket/codec.hpp"
#include "services/fanout/query_string.hpp"

namespace jetstream::fanout {
namespace {

/// Go's encoding/json key matching for our (ASCII) field names: ASCII letters compare without
/// case, and the two non-ASCII runes whose case folding reaches an ASCII letter count as that
/// letter (U+017F LATIN SMALL LETTER LONG S as `s`, U+212A KELVIN SIGN as `k`).
bool json_key_matches(std::string_view key, std::string_view field) noexcept {
  constexpr auto upper = [](char c) noexcept {
    return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  };
  std::size_t k = 0;
  for (const char f : field) {
    if (k >= key.size()) return false;
    if (static_cast<unsigned char>(key[k]) < 0x80) {
      if (upper(key[k]) != upper(f)) return false;
      ++k;
    } else if (upper(f) == 'S' && key.substr(k, 2) == "\xC5\xBF") {
      k += 2;
    } else if (upper(f) == 'K' && key.substr(k, 3) == "\xE2\x84\xAA") {
      k += 3;
    } else {
      return false;
    }
  }
  return k == key.size();
}

/// Go's nesting limit for JSON values (encoding/json maxNestingDepth).
constexpr std::size_t kMaxJsonDepth = 10'000;

enum class JsonKind : std::uint8_t { null, boolean, number, string, array, object };

std::string_view kind_name(JsonKind kind) noexcept {
  switch (kind) {
    case JsonKind::null: return "null";
    case JsonKind::boolean: return "bool";
    case JsonKind::number: return "number";
    case JsonKind::string: return "string";
    case JsonKind::array: return "array";
    case JsonKind::object: return "object";
  }
  return "value";
}

/// SAX handler that reads the envelope and the payload of an options_update in one pass, with
/// Go's semantics: a wrong type is remembered (the first one) and reading goes on, so a syntax
/// error anywhere still wins, as Go validates the whole input before decoding it.
class MessageHandler {
 public:
  // What the value about to be read is.
  enum class Slot : std::uint8_t {
    envelope,
    type,
    payload,
    collections,
    dids,
    max_size,
    collection_item,
    did_item,
    skip,
  };
  // Containers whose contents matter; anything else is skipped with a depth counter.
  enum class Container : std::uint8_t { envelope, payload, collections, dids };

  bool depth_exceeded = false;
  std::string type;
  std::optional<std::string> envelope_error;
  bool payload_present = false;
  std::optional<std::string> payload_error;
  FilterBuilder filters;
  std::optional<std::int64_t> max_size;

  // ---- rapidjson::Handler.
  bool Null() { return scalar(JsonKind::null, {}); }
  bool Bool(bool) { return scalar(JsonKind::boolean, {}); }
  // With kParseNumbersAsStringsFlag every number arrives as RawNumber; these are never called.
  bool Int(int) { return scalar(JsonKind::number, {}); }
  bool Uint(unsigned) { return scalar(JsonKind::number, {}); }
  bool Int64(std::int64_t) { return scalar(JsonKind::number, {}); }
  bool Uint64(std::uint64_t) { return scalar(JsonKind::number, {}); }
  bool Double(double) { return scalar(JsonKind::number, {}); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool) {
    return scalar(JsonKind::number, {text, length});
  }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    return scalar(JsonKind::string, {text, length});
  }
  bool StartObject() { return start(JsonKind::object); }
  bool StartArray() { return start(JsonKind::array); }
  bool EndObject(rapidjson::SizeType) { return end(); }
  bool EndArray(rapidjson::SizeType) { return end(); }
  bool Key(const char* text, rapidjson::SizeType length, bool) {
    if (skip_depth_ > 0 || stack_.empty()) return true;
    const std::string_view key(text, length);
    if (stack_.back() == Container::envelope) {
      key_slot_ = json_key_matches(key, "type")      ? Slot::type
                  : json_key_matches(key, "payload") ? Slot::payload
                                                     : Slot::skip;
    } else {
      key_slot_ = json_key_matches(key, "wantedCollections")     ? Slot::collections
                  : json_key_matches(key, "wantedDids")          ? Slot::dids
                  : json_key_matches(key, "maxMessageSizeBytes") ? Slot::max_size
                                                                 : Slot::skip;
    }
    return true;
  }

 private:
  Slot next_slot() const noexcept {
    if (skip_depth_ > 0) return Slot::skip;
    if (stack_.empty()) return Slot::envelope;
    switch (stack_.back()) {
      case Container::envelope:
      case Container::payload: return key_slot_;
      case Container::collections: return Slot::collection_item;
      case Container::dids: return Slot::did_item;
    }
    return Slot::skip;
  }

  /// A new `payload` value replaces the previous one entirely (json.RawMessage: last one wins).
  void begin_payload() {
    payload_present = true;
    payload_error.reset();
    filters = FilterBuilder{};
    max_size.reset();
  }

  static std::string type_error(std::string_view value, std::string_view target,
                                std::string_view go_type) {
    std::string error = "cannot unmarshal ";
    error.append(value).append(" into ").append(target).append(" of type ").append(go_type);
    return error;
  }

  void fail_envelope(JsonKind kind, std::string_view target, std::string_view go_type) {
    if (!envelope_error) envelope_error = type_error(kind_name(kind), target, go_type);
  }

  void fail_payload(std::string_view value, std::string_view target, std::string_view go_type) {
    if (!payload_error) payload_error = type_error(value, target, go_type);
  }

  /// Records the type error of a `kind` value in `slot` (a value that slot cannot hold).
  void mismatch(Slot slot, JsonKind kind) {
    switch (slot) {
      case Slot::envelope: fail_envelope(kind, "message", "object"); break;
      case Slot::type: fail_envelope(kind, "field type", "string"); break;
      case Slot::payload: fail_payload(kind_name(kind), "payload", "object"); break;
      case Slot::collections:
        fail_payload(kind_name(kind), "field wantedCollections", "[]string");
        break;
      case Slot::dids: fail_payload(kind_name(kind), "field wantedDids", "[]string"); break;
      case Slot::max_size: fail_payload(kind_name(kind), "field maxMessageSizeBytes", "int"); break;
      case Slot::collection_item:
        fail_payload(kind_name(kind), "field wantedCollections", "string");
        break;
      case Slot::did_item: fail_payload(kind_name(kind), "field wantedDids", "string"); break;
      case Slot::skip: break;
    }
  }

  bool scalar(JsonKind kind, std::string_view text) {
    const Slot slot = next_slot();
    const bool is_null = kind == JsonKind::null;
    switch (slot) {
      case Slot::skip: return true;
      case Slot::envelope:  // top-level null: an empty message (type "": ignored)
        if (!is_null) mismatch(slot, kind);
        return true;
      case Slot::type:  // null leaves the field as it was
        if (kind == JsonKind::string) {
          type.assign(text);
        } else if (!is_null) {
          mismatch(slot, kind);
        }
        return true;
      case Slot::payload:  // null: every field absent
        begin_payload();
        if (!is_null) mismatch(slot, kind);
        return true;
      case Slot::collections:  // null sets the slice to nil
        if (is_null) {
          filters.reset_collections();
        } else {
          mismatch(slot, kind);
        }
        return true;
      case Slot::dids:
        if (is_null) {
          filters.reset_dids();
        } else {
          mismatch(slot, kind);
        }
        return true;
      case Slot::max_size:
        if (kind == JsonKind::number) {
          // Go decodes a number into an int with strconv.ParseInt: 1.5, 1e3 and overflow fail.
          if (auto value = parse_go_int64(text)) {
            max_size = value;
          } else {
            std::string what = "number ";
            what.append(text);
            fail_payload(what, "field maxMessageSizeBytes", "int");
          }
        } else if (!is_null) {
          mismatch(slot, kind);
        }
        return true;
      case Slot::collection_item:  // a null element is the empty string (then invalid)
        if (kind == JsonKind::string || is_null) {
          filters.add_collection(text);
        } else {
          mismatch(slot, kind);
        }
        return true;
      case Slot::did_item:
        if (kind == JsonKind::string || is_null) {
          filters.add_did(text);
        } else {
          mismatch(slot, kind);
        }
        return true;
    }
    return true;
  }

  bool start(JsonKind kind) {
    if (stack_.size() + skip_depth_ >= kMaxJsonDepth) {
      depth_exceeded = true;
      return false;
    }
    const Slot slot = next_slot();
    if (kind == JsonKind::object && slot == Slot::envelope) {
      stack_.push_back(Container::envelope);
      key_slot_ = Slot::skip;
      return true;
    }
    if (kind == JsonKind::object && slot == Slot::payload) {
      begin_payload();
      stack_.push_back(Container::payload);
      key_slot_ = Slot::skip;
      return true;
    }
    if (kind == JsonKind::array && slot == Slot::collections) {
      filters.reset_collections();
      stack_.push_back(Container::collections);
      return true;
    }
    if (kind == JsonKind::array && slot == Slot::dids) {
      filters.reset_dids();
      stack_.push_back(Container::dids);
      return true;
    }
    if (slot == Slot::payload) begin_payload();
    mismatch(slot, kind);
    ++skip_depth_;
    return true;
  }

  bool end() {
    if (skip_depth_ > 0) {
      --skip_depth_;
    } else if (!stack_.empty()) {
      stack_.pop_back();
    }
    return true;
  }

  std::vector<Container> stack_;  // at most 3 deep: envelope, payload, list
  std::size_t skip_depth_ = 0;
  Slot key_slot_ = Slot::skip;
};

/// Go's text for a document that ends too early.
constexpr std::string_view kUnexpectedEnd = "unexpected end of JSON input";

std::string syntax_error(rapidjson::ParseErrorCode code, std::size_t offset,
                         std::size_t input_size) {
  if (code == rapidjson::kParseErrorDocumentEmpty || offset >= input_size) {
    return std::string(kUnexpectedEnd);
  }
  std::string error = "invalid JSON at offset ";
  error.append(std::to_string(offset)).append(": ").append(rapidjson::GetParseError_En(code));
  return error;
}

UpdateResult close_with(std::string_view prefix, std::string_view detail) {
  UpdateResult result;
  result.action = UpdateAction::close;
  std::string reason;
  // fit_close_reason reads only the first few hundred bytes: do not copy a huge detail whole.
  const std::size_t keep = std::min(detail.size(), websocket::kMaxCloseReasonBytes * 4);
  reason.reserve(prefix.size() + keep);
  reason.append(prefix).append(detail.substr(0, keep));
  result.close_reason = websocket::fit_close_reason(reason);
  return result;
}

}  // namespace

UpdateResult parse_client_message(std::string_view text) {
  // RapidJSON treats a NUL byte as the end of its input, and NUL is never valid in JSON text:
  // parse what comes before the first one and report the NUL if that part has no earlier error.
  const std::size_t nul = text.find('\0');
  const std::string_view json = text.substr(0, nul);

  MessageHandler handler;
  rapidjson::Reader reader;
  rapidjson::MemoryStream stream(json.data(), json.size());
  constexpr unsigned kFlags =
      rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;
  const rapidjson::ParseResult parsed = reader.Parse<kFlags>(stream, handler);

  if (handler.depth_exceeded) {
    return close_with(kBadMessagePrefix, "exceeded max depth of 10000");
  }
  if (nul != std::string_view::npos && (parsed || parsed.Offset() >= json.size())) {
    return close_with(kBadMessagePrefix,
                      "invalid character '\\x00' at offset " + std::to_string(nul));
  }
  if (!parsed) {
    return close_with(kBadMessagePrefix, syntax_error(parsed.Code(), parsed.Offset(), json.size()));
  }
  if (handler.envelope_error) return close_with(kBadMessagePrefix, *handler.envelope_error);
  if (handler.type != "options_update") return {};
  if (!handler.payload_present) return close_with(kBadPayloadPrefix, kUnexpectedEnd);
  if (handler.payload_error) return close_with(kBadPayloadPrefix, *handler.payload_error);

  UpdateResult result;
  const std::string error = handler.filters.finish(result.update.filters);
  if (!error.empty()) return close_with(kBadOptionsPrefix, error);
  if (handler.max_size)
    result.update.max_message_size_bytes = max_message_size_from(handler.max_size);
  result.action = UpdateAction::update;
  return result;
}

void apply_update(SubscriberOptions& options, const OptionsUpdate& update) {
  options.filters = update.filters;
  if (update.max_message_size_bytes) {
    options.max_message_size_bytes = *update.max_message_size_bytes;
  }
}

}  // namespace jetstream::fanout
