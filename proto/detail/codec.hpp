// Internal: the little-endian reader and writer every message codec is built from. Not part of
// the API; only proto/*.cpp include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "proto/wire.hpp"

namespace jetstream::proto::detail {

/// Size on the wire of a length-prefixed byte string (u32 length + bytes).
constexpr std::size_t sized_bytes(std::size_t length) { return 4 + length; }

/// A bounds-checked cursor over untrusted input with a sticky error: after the first failure
/// every read returns zero/empty and the first error is kept. Reads never go past the end.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> input) noexcept : input_(input) {}

  /// Bytes 0 and 1: the version (checked first, so an unknown version is reported as such even
  /// when the rest is too short) and the message type.
  void header(MessageType expected) noexcept {
    if (input_.empty()) return fail(DecodeError::truncated);
    if (input_[0] != kVersion) return fail(DecodeError::unknown_version);
    if (input_.size() < 2) return fail(DecodeError::truncated);
    if (input_[1] != static_cast<std::uint8_t>(expected)) return fail(DecodeError::wrong_type);
    position_ = 2;
  }

  std::uint8_t u8() noexcept { return static_cast<std::uint8_t>(little_endian(1)); }
  std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(little_endian(4)); }
  std::uint64_t u64() noexcept { return little_endian(8); }
  std::int64_t i64() noexcept { return static_cast<std::int64_t>(little_endian(8)); }

  /// A u8 that must be 0 or 1.
  bool boolean() noexcept {
    const std::uint8_t value = u8();
    if (value > 1) fail(DecodeError::invalid_value);
    return value == 1;
  }

  /// A u32 length (at most `max_length`, else limit_exceeded) and that many bytes.
  std::span<const std::uint8_t> sized(std::uint32_t max_length) noexcept {
    const std::uint32_t length = u32();
    if (!ok()) return {};
    if (length > max_length) {
      fail(DecodeError::limit_exceeded);
      return {};
    }
    return raw(length);
  }

  std::string_view sized_text(std::uint32_t max_length) noexcept {
    const auto bytes = sized(max_length);
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }

  /// A u32 count of items (at most `max_count`, else limit_exceeded), each at least
  /// `min_item_size` bytes long: a count the remaining bytes cannot hold is `truncated` at once,
  /// so a caller may reserve `count` items without trusting the sender.
  std::uint32_t count(std::uint32_t max_count, std::size_t min_item_size) noexcept {
    const std::uint32_t value = u32();
    if (!ok()) return 0;
    if (value > max_count) {
      fail(DecodeError::limit_exceeded);
      return 0;
    }
    if (value > remaining() / min_item_size) {
      fail(DecodeError::truncated);
      return 0;
    }
    return value;
  }

  /// `length` raw bytes.
  std::span<const std::uint8_t> raw(std::size_t length) noexcept {
    if (!ok()) return {};
    if (length > remaining()) {
      fail(DecodeError::truncated);
      return {};
    }
    const auto bytes = input_.subspan(position_, length);
    position_ += length;
    return bytes;
  }

  std::size_t remaining() const noexcept { return input_.size() - position_; }
  bool ok() const noexcept { return !failed_; }
  /// The first error (meaningful once ok() is false).
  DecodeError error() const noexcept { return error_; }
  void fail(DecodeError error) noexcept {
    if (failed_) return;
    failed_ = true;
    error_ = error;
  }

  /// Whether the whole input was read without error (input left over is trailing_bytes).
  bool finish() noexcept {
    if (ok() && remaining() != 0) fail(DecodeError::trailing_bytes);
    return ok();
  }

 private:
  std::uint64_t little_endian(std::size_t width) noexcept {
    const auto bytes = raw(width);
    std::uint64_t value = 0;
    for (std::size_t i = bytes.size(); i > 0; --i) value = (value << 8) | bytes[i - 1];
    return value;
  }

  std::span<const std::uint8_t> input_;
  std::size_t position_ = 0;
  // Not std::optional: GCC 12 reports a false maybe-uninitialized on optional<enum> here.
  bool failed_ = false;
  DecodeError error_ = DecodeError::truncated;
};

/// Writes into a buffer sized in advance; writing past its end is a bug and aborts.
class Writer {
 public:
  explicit Writer(std::span<std::uint8_t> output) noexcept : output_(output) {}

  void header(MessageType type) noexcept {
    u8(kVersion);
    u8(static_cast<std::uint8_t>(type));
  }
  void u8(std::uint8_t value) noexcept { little_endian(value, 1); }
  void u32(std::uint32_t value) noexcept { little_endian(value, 4); }
  void u64(std::uint64_t value) noexcept { little_endian(value, 8); }
  void i64(std::int64_t value) noexcept { little_endian(static_cast<std::uint64_t>(value), 8); }
  void boolean(bool value) noexcept { u8(value ? 1 : 0); }

  void sized(std::span<const std::uint8_t> bytes) noexcept {
    u32(static_cast<std::uint32_t>(bytes.size()));
    raw(bytes);
  }
  void sized_text(std::string_view text) noexcept {
    sized({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
  }
  void raw(std::span<const std::uint8_t> bytes) noexcept {
    reserve(bytes.size());
    for (const std::uint8_t byte : bytes) output_[position_++] = byte;
  }

  /// Aborts unless exactly the whole buffer was written.
  void finish() const noexcept {
    if (position_ != output_.size()) contract_violation("encoder wrote fewer bytes than it sized");
  }

 private:
  void reserve(std::size_t length) noexcept {
    if (length > output_.size() - position_) contract_violation("encoder overran its buffer");
  }
  void little_endian(std::uint64_t value, std::size_t width) noexcept {
    reserve(width);
    for (std::size_t i = 0; i < width; ++i) {
      output_[position_++] = static_cast<std::uint8_t>(value >> (8 * i));
    }
  }

  std::span<std::uint8_t> output_;
  std::size_t position_ = 0;
};

/// Aborts with `what` when an encoder's input fails the rules its decoder enforces.
inline void require_valid(std::optional<DecodeError> error, const char* what) noexcept {
  if (error) contract_violation(what);
}

}  // namespace jetstream::proto::detail
