// Test-only conversion of atproto JSON (the data model's JSON form) into canonical DAG-CBOR, so
// JSON test vectors and real v1 output can be fed to the CBOR side of the codec.
#pragma once

#include <rapidjson/document.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/cid.hpp"
#include "tests/support/cbor_builder.hpp"

namespace jetstream::testing {

namespace detail {

inline std::optional<Bytes> decode_base64(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  Bytes out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    if (c == '=') break;
    const auto pos = kAlphabet.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(buffer >> bits));
      buffer &= (1u << bits) - 1;
    }
  }
  return out;
}

inline void write_value(CborBuilder& out, const rapidjson::Value& value);

inline void write_object(CborBuilder& out, const rapidjson::Value& object) {
  if (object.MemberCount() == 1) {
    const auto& member = *object.MemberBegin();
    const std::string_view key(member.name.GetString(), member.name.GetStringLength());
    if (key == "$link" && member.value.IsString()) {
      if (auto cid = codec::parse_cid_string(member.value.GetString())) {
        out.link(*cid);
        return;
      }
    }
    if (key == "$bytes" && member.value.IsString()) {
      if (auto bytes = decode_base64(member.value.GetString())) {
        out.bytes(*bytes);
        return;
      }
    }
  }
  // DAG-CBOR canonical key order: shorter keys first, then bytewise.
  std::vector<const rapidjson::Value::Member*> members;
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) members.push_back(&*it);
  std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
    const std::string_view ka(a->name.GetString(), a->name.GetStringLength());
    const std::string_view kb(b->name.GetString(), b->name.GetStringLength());
    return ka.size() != kb.size() ? ka.size() < kb.size() : ka < kb;
  });
  out.map(members.size());
  for (const auto* member : members) {
    out.text({member->name.GetString(), member->name.GetStringLength()});
    write_value(out, member->value);
  }
}

inline void write_value(CborBuilder& out, const rapidjson::Value& value) {
  if (value.IsObject()) {
    write_object(out, value);
  } else if (value.IsArray()) {
    out.array(value.Size());
    for (const auto& item : value.GetArray()) write_value(out, item);
  } else if (value.IsString()) {
    out.text({value.GetString(), value.GetStringLength()});
  } else if (value.IsBool()) {
    out.boolean(value.GetBool());
  } else if (value.IsNull()) {
    out.null();
  } else if (value.IsInt64()) {
    out.integer(value.GetInt64());
  } else if (value.IsUint64()) {
    out.uint(value.GetUint64());
  } else {
    // A float: written as CBOR float64 so the codec can prove it rejects it.
    const auto bits = std::bit_cast<std::uint64_t>(value.GetDouble());
    Bytes encoded{0xfb};
    for (int i = 7; i >= 0; --i) encoded.push_back(static_cast<std::uint8_t>(bits >> (8 * i)));
    out.raw(encoded);
  }
}

}  // namespace detail

/// Canonical DAG-CBOR of an atproto JSON value: `{"$link": cid}` → tag 42, `{"$bytes": b64}` →
/// bytes, other objects → maps, fractional numbers → float64 (invalid in the data model).
inline Bytes atproto_json_to_cbor(const rapidjson::Value& value) {
  CborBuilder out;
  detail::write_value(out, value);
  return out.take();
}

}  // namespace jetstream::testing
