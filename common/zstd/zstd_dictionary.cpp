#include "common/zstd/zstd_dictionary.hpp"

#include <zdict.h>
#include <zstd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace jetstream::zstd {
namespace {

[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "fatal: zstd: %s\n", what);
  std::abort();
}

}  // namespace

std::shared_ptr<const Dictionary> Dictionary::load(const std::string& path, std::string& error,
                                                   int level) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open zstd dictionary " + path;
    return nullptr;
  }
  std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>()};
  return from_bytes(std::move(bytes), error, level);
}

std::shared_ptr<const Dictionary> Dictionary::from_bytes(std::vector<std::uint8_t> bytes,
                                                         std::string& error, int level) {
  std::shared_ptr<Dictionary> dictionary(new Dictionary());
  dictionary->bytes_ = std::move(bytes);
  dictionary->level_ = level;
  dictionary->id_ = ZDICT_getDictID(dictionary->bytes_.data(), dictionary->bytes_.size());
  if (dictionary->id_ == 0) {
    error = "not a structured zstd dictionary (no dictionary ID)";
    return nullptr;
  }
  dictionary->cdict_ =
      ZSTD_createCDict(dictionary->bytes_.data(), dictionary->bytes_.size(), level);
  dictionary->ddict_ = ZSTD_createDDict(dictionary->bytes_.data(), dictionary->bytes_.size());
  if (dictionary->cdict_ == nullptr || dictionary->ddict_ == nullptr) {
    error = "zstd could not prepare the dictionary";
    return nullptr;
  }
  return dictionary;
}

Dictionary::~Dictionary() {
  ZSTD_freeCDict(cdict_);
  ZSTD_freeDDict(ddict_);
}

Compressor::Compressor(std::shared_ptr<const Dictionary> dictionary)
    : dictionary_(std::move(dictionary)), context_(ZSTD_createCCtx()) {
  if (dictionary_ == nullptr || context_ == nullptr) fatal("compressor without dictionary");
  // v1 (klauspost) framing: content checksum on, content size in the header.
  ZSTD_CCtx_setParameter(context_, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(context_, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(context_, ZSTD_c_dictIDFlag, 1);
  if (ZSTD_isError(ZSTD_CCtx_refCDict(context_, dictionary_->cdict_))) fatal("refCDict failed");
}

Compressor::~Compressor() { ZSTD_freeCCtx(context_); }

void Compressor::compress(std::string_view input, std::string& out) {
  out.resize(ZSTD_compressBound(input.size()));
  const std::size_t written =
      ZSTD_compress2(context_, out.data(), out.size(), input.data(), input.size());
  // The bound guarantees room; an error here is a broken library, not bad input.
  if (ZSTD_isError(written)) fatal(ZSTD_getErrorName(written));
  out.resize(written);
}

Decompressor::Decompressor(std::shared_ptr<const Dictionary> dictionary)
    : dictionary_(std::move(dictionary)), context_(ZSTD_createDCtx()) {
  if (dictionary_ == nullptr || context_ == nullptr) fatal("decompressor without dictionary");
}

Decompressor::~Decompressor() { ZSTD_freeDCtx(context_); }

std::optional<std::string> Decompressor::decompress(byte_view frame, std::size_t max_size) {
  const unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN ||
      declared > max_size) {
    return std::nullopt;
  }
  std::string out(static_cast<std::size_t>(declared), '\0');
  const std::size_t written = ZSTD_decompress_usingDDict(
      context_, out.data(), out.size(), frame.data(), frame.size(), dictionary_->ddict_);
  if (ZSTD_isError(written) || written != out.size()) return std::nullopt;
  return out;
}

}  // namespace jetstream::zstd
