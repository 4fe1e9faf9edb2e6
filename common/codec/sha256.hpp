// SHA-256 through OpenSSL's libcrypto (hardware SHA extensions when the CPU has them).
#pragma once

#include <array>
#include <cstdint>

#include "common/codec/bytes.hpp"

namespace jetstream::codec {

using Sha256Digest = std::array<std::uint8_t, 32>;

Sha256Digest sha256(byte_view data);

}  // namespace jetstream::codec
