#include "services/fanout/subscriber_options.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <limits>
#include <unordered_set>
#include <utility>

#include "common/syntax/syntax.hpp"
#include "common/websocket/codec.hpp"

namespace jetstream::fanout {
namespace {

// ---- Query strings.

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` (two hex digits) is one byte, every other byte
/// is kept as is. False on a `%` not followed by two hex digits.
bool query_unescape(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int high = hex_value(in[i + 1]);
      const int low = hex_value(in[i + 2]);
      if (high < 0 || low < 0) return false;
      out.push_back(static_cast<char>(static_cast<unsigned char>(high * 16 + low)));
      i += 2;
    } else if (c == '+') {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

/// Calls `visit(pair)` for each non-empty `&`-separated pair of `raw`.
template <typename Visit>
void for_each_pair(std::string_view raw, Visit&& visit) {
  while (!raw.empty()) {
    const std::size_t amp = raw.find('&');
    const std::string_view pair = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
    if (!pair.empty()) visit(pair);
  }
}

/// A `maxMessageSizeBytes` value: 1..UINT32_MAX is a limit; everything else (absent, garbage,
/// zero, negative, above UINT32_MAX) is "no limit" (0).
std::uint32_t to_size_limit(std::optional<std::int64_t> value) noexcept {
  if (!value || *value <= 0 || *value > std::numeric_limits<std::uint32_t>::max()) return 0;
  return static_cast<std::uint32_t>(*value);
}

// ---- Filters.

/// Accumulates wantedCollections and wantedDids values with bounded memory, and reports the
/// first problem in v1's order: an invalid collection (the first one), an invalid DID, too many
/// distinct DIDs, too many distinct collection patterns. Values beyond a cap are still validated
/// (an invalid one later in the list wins over the count) but no longer stored.
class FilterBuilder {
 public:
  /// Forgets every collection value seen so far (a repeated JSON key: the last one wins).
  void reset_collections() {
    filters_.collections.clear();
    filters_.collection_prefixes.clear();
    seen_patterns_.clear();
    invalid_collection_.reset();
    too_many_collections_ = false;
  }

  void reset_dids() {
    dids_.clear();
    invalid_did_ = false;
    too_many_dids_ = false;
  }

  void add_collection(std::string_view value) {
    if (invalid_collection_) return;  // the first invalid value is the answer
    auto pattern = syntax::parse_collection_pattern(value);
    if (!pattern) {
      invalid_collection_.emplace(value);
      return;
    }
    if (seen_patterns_.contains(pattern->value)) return;
    if (seen_patterns_.size() >= kMaxWantedCollections) {
      too_many_collections_ = true;
      return;
    }
    // Exact NSIDs never end in `.` and prefixes always do, so one set holds both kinds.
    seen_patterns_.insert(pattern->value);
    auto& list = pattern->kind == syntax::CollectionPatternKind::kPrefix
                     ? filters_.collection_prefixes
                     : filters_.collections;
    list.push_back(std::move(pattern->value));
  }

  void add_did(std::string_view value) {
    if (invalid_did_) return;
    if (!syntax::is_valid_did(value)) {
      invalid_did_ = true;
      return;
    }
    if (too_many_dids_) return;
    if (dids_.size() >= kMaxWantedDids) {
      // One more distinct DID is too many; a repeated one is not.
      if (!dids_.contains(value)) too_many_dids_ = true;
      return;
    }
    dids_.add(value);
  }

  /// The 400 text of the first problem, or empty (and `out` filled) when the filters are valid.
  std::string finish(SubscriberFilters& out) {
    if (invalid_collection_) {
      std::string error;
      error.reserve(kInvalidCollectionPrefix.size() + invalid_collection_->size());
      error.append(kInvalidCollectionPrefix).append(*invalid_collection_);
      return error;
    }
    if (invalid_did_) return std::string(kInvalidOptionsText);
    if (too_many_dids_) return std::string(kTooManyDidsText);
    if (too_many_collections_) return std::string(kTooManyCollectionsText);
    filters_.dids = dids_.build();
    out = std::move(filters_);
    return {};
  }

 private:
  SubscriberFilters filters_;
  std::unordered_set<std::string> seen_patterns_;
  DidSet::Builder dids_;
  std::optional<std::string> invalid_collection_;
  bool too_many_collections_ = false;
  bool invalid_did_ = false;
  bool too_many_dids_ = false;
};

// ---- Client messages.

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

QueryParseResult parse_query(std::string_view raw_query) {
  QueryParseResult result;
  if (raw_query.size() > kMaxQueryBytes) {
    result.error = kQueryTooLongText;
    return result;
  }
  std::size_t pairs = 0;
  for_each_pair(raw_query, [&](std::string_view) { ++pairs; });
  if (pairs > kMaxQueryPairs) {
    result.error = kTooManyQueryPairsText;
    return result;
  }
  result.params.reserve(pairs);
  QueryParam param;
  for_each_pair(raw_query, [&](std::string_view pair) {
    if (pair.find(';') != std::string_view::npos) return;  // Go ≥ 1.17 drops these
    const std::size_t equals = pair.find('=');
    const std::string_view key = pair.substr(0, equals);
    const std::string_view value =
        equals == std::string_view::npos ? std::string_view{} : pair.substr(equals + 1);
    if (!query_unescape(key, param.key) || !query_unescape(value, param.value)) return;
    result.params.push_back(std::move(param));
  });
  return result;
}

std::optional<std::int64_t> parse_go_int64(std::string_view text) noexcept {
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return std::nullopt;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  const std::uint64_t limit = negative ? kMax + 1 : kMax;
  std::uint64_t magnitude = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (magnitude > (limit - digit) / 10) return std::nullopt;
    magnitude = magnitude * 10 + digit;
  }
  if (!negative) return static_cast<std::int64_t>(magnitude);
  if (magnitude == kMax + 1) return std::numeric_limits<std::int64_t>::min();
  return -static_cast<std::int64_t>(magnitude);
}

ParseResult parse_subscribe_request(std::string_view query,
                                    std::optional<std::string_view> socket_encoding_header) {
  ParseResult result;
  QueryParseResult parsed = parse_query(query);
  if (!parsed.ok()) {
    result.error = std::move(parsed.error);
    return result;
  }
  // Go's Values.Get: the first value, "" when the key is absent.
  const auto first = [&](std::string_view key) -> std::string_view {
    for (const QueryParam& param : parsed.params) {
      if (param.key == key) return param.value;
    }
    return {};
  };

  SubscriberOptions options;
  if (const std::string_view cursor = first("cursor"); !cursor.empty()) {
    options.cursor = parse_go_int64(cursor);
    if (!options.cursor) {
      result.error.reserve(kInvalidCursorPrefix.size() + cursor.size());
      result.error.append(kInvalidCursorPrefix).append(cursor);
      return result;
    }
  }

  FilterBuilder builder;
  for (const QueryParam& param : parsed.params) {
    if (param.key == "wantedCollections") {
      builder.add_collection(param.value);
    } else if (param.key == "wantedDids") {
      builder.add_did(param.value);
    }
  }
  result.error = builder.finish(options.filters);
  if (!result.error.empty()) return result;

  options.max_message_size_bytes = to_size_limit(parse_go_int64(first("maxMessageSizeBytes")));
  options.compress =
      first("compress") == "true" ||
      (socket_encoding_header && socket_encoding_header->find("zstd") != std::string_view::npos);
  options.require_hello = first("requireHello") == "true";
  result.options = std::move(options);
  return result;
}

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
  if (handler.max_size) result.update.max_message_size_bytes = to_size_limit(handler.max_size);
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
