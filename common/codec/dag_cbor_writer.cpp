#include "common/codec/dag_cbor_writer.hpp"

#include <algorithm>

namespace jetstream::codec {
namespace {

void append_head(std::vector<std::uint8_t>& out, std::uint8_t major, std::uint64_t value) {
  const auto type = static_cast<std::uint8_t>(major << 5);
  int width = 0;
  if (value < 24) {
    out.push_back(static_cast<std::uint8_t>(type | value));
    return;
  }
  if (value <= 0xff) {
    out.push_back(type | 24);
    width = 1;
  } else if (value <= 0xffff) {
    out.push_back(type | 25);
    width = 2;
  } else if (value <= 0xffffffffULL) {
    out.push_back(type | 26);
    width = 4;
  } else {
    out.push_back(type | 27);
    width = 8;
  }
  for (int shift = 8 * (width - 1); shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

void append_payload(std::vector<std::uint8_t>& out, std::uint8_t major, const CborNode& node) {
  append_head(out, major, node.size);
  out.insert(out.end(), node.data, node.data + node.size);
}

}  // namespace

void append_canonical_cbor(const CborDocument& doc, std::uint32_t index,
                           std::vector<std::uint8_t>& out, std::string_view omit_key) {
  const CborNode& node = doc.node(index);
  switch (node.kind) {
    case CborKind::unsigned_integer: append_head(out, 0, node.integer); return;
    case CborKind::negative_integer: append_head(out, 1, node.integer); return;
    case CborKind::bytes: append_payload(out, 2, node); return;
    case CborKind::text: append_payload(out, 3, node); return;
    case CborKind::boolean: out.push_back(node.integer != 0 ? 0xf5 : 0xf4); return;
    case CborKind::null: out.push_back(0xf6); return;
    case CborKind::cid_link:
      append_head(out, 6, 42);
      append_head(out, 2, std::uint64_t{node.size} + 1);
      out.push_back(0x00);  // the multibase identity prefix the reader removed
      out.insert(out.end(), node.data, node.data + node.size);
      return;
    case CborKind::array: {
      append_head(out, 4, node.count);
      std::uint32_t child = CborDocument::first_child(index);
      for (std::uint32_t i = 0; i < node.count; ++i) {
        append_canonical_cbor(doc, child, out);
        child = doc.next_sibling(child);
      }
      return;
    }
    case CborKind::map: {
      std::vector<std::uint32_t> keys;  // key node indices; each value follows its key
      keys.reserve(node.count);
      std::uint32_t child = CborDocument::first_child(index);
      for (std::uint32_t i = 0; i < node.count; ++i) {
        if (omit_key.empty() || doc.node(child).text() != omit_key) keys.push_back(child);
        child = doc.next_sibling(doc.next_sibling(child));
      }
      std::sort(keys.begin(), keys.end(), [&](std::uint32_t a, std::uint32_t b) {
        const std::string_view key_a = doc.node(a).text();
        const std::string_view key_b = doc.node(b).text();
        return key_a.size() != key_b.size() ? key_a.size() < key_b.size() : key_a < key_b;
      });
      append_head(out, 5, keys.size());
      for (const std::uint32_t key : keys) {
        append_payload(out, 3, doc.node(key));
        append_canonical_cbor(doc, doc.next_sibling(key), out);
      }
      return;
    }
  }
}

}  // namespace jetstream::codec
