// Compression with the Jetstream v1 zstd dictionary: one independent zstd frame per event, made
// once by decode and shared by every subscriber. Clients embed the same dictionary to read it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"

struct ZSTD_CDict_s;
struct ZSTD_DDict_s;
struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace jetstream::zstd {

/// The v1 dictionary: ID 1612007021, 112,640 bytes. Kept for checks and log lines.
inline constexpr std::uint32_t kV1DictionaryId = 1612007021;

/// A loaded dictionary, prepared for compression and decompression. Immutable and thread-safe;
/// share one instance. Compressors and decompressors hold the per-thread state.
class Dictionary {
 public:
  /// Reads and prepares the dictionary at `path`; on failure `error` says why.
  static std::shared_ptr<const Dictionary> load(const std::string& path, std::string& error,
                                                int level = 3);
  static std::shared_ptr<const Dictionary> from_bytes(std::vector<std::uint8_t> bytes,
                                                      std::string& error, int level = 3);
  ~Dictionary();
  Dictionary(const Dictionary&) = delete;
  Dictionary& operator=(const Dictionary&) = delete;

  std::uint32_t id() const { return id_; }
  std::size_t size() const { return bytes_.size(); }
  int level() const { return level_; }

 private:
  friend class Compressor;
  friend class Decompressor;
  Dictionary() = default;
  std::vector<std::uint8_t> bytes_;
  std::uint32_t id_ = 0;
  int level_ = 3;
  ZSTD_CDict_s* cdict_ = nullptr;
  ZSTD_DDict_s* ddict_ = nullptr;
};

/// Compresses messages into single zstd frames with the dictionary. One per thread.
class Compressor {
 public:
  explicit Compressor(std::shared_ptr<const Dictionary> dictionary);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  /// Replaces `out` with one zstd frame holding `input` (content size and checksum included).
  void compress(std::string_view input, std::string& out);

 private:
  std::shared_ptr<const Dictionary> dictionary_;
  ZSTD_CCtx_s* context_ = nullptr;
};

/// Decompresses single zstd frames made with the dictionary. One per thread.
class Decompressor {
 public:
  explicit Decompressor(std::shared_ptr<const Dictionary> dictionary);
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  /// The decompressed frame, or nullopt if it is not a valid frame or exceeds `max_size`.
  std::optional<std::string> decompress(byte_view frame, std::size_t max_size = 16u << 20);

 private:
  std::shared_ptr<const Dictionary> dictionary_;
  ZSTD_DCtx_s* context_ = nullptr;
};

}  // namespace jetstream::zstd
