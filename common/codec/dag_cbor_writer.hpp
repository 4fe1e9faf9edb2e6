// The canonical DAG-CBOR encoding of a parsed item: what atproto hashes and signs.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/codec/dag_cbor.hpp"

namespace jetstream::codec {

/// Appends the canonical DAG-CBOR encoding of the item at `index` of `doc`: shortest heads, map
/// keys ordered by length then bytewise (RFC 7049 §3.9 as DAG-CBOR fixes it). With `omit_key`
/// set, the entry of that key is left out of the item's own map (not of nested maps): atproto
/// signs a commit as its map without `sig`. The reader accepts non-canonical input (as v1 did),
/// so what a signature covers is always rebuilt here, never sliced out of the received bytes.
void append_canonical_cbor(const CborDocument& doc, std::uint32_t index,
                           std::vector<std::uint8_t>& out, std::string_view omit_key = {});

}  // namespace jetstream::codec
