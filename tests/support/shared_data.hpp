// Locating the read-only inputs kept beside the repository in ../shared/ (corpus, interop
// vectors, zstd dictionary). They are never committed here; a test that needs one skips with a
// message naming the missing path.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace jetstream::testing {

/// The shared folder: $JETSTREAM_SHARED_DIR if set, else the path CMake recorded at configure time.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("JETSTREAM_SHARED_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return JETSTREAM_SHARED_DIR;
}

/// The absolute path of `relative` inside the shared folder, or nullopt when it does not exist.
inline std::optional<std::filesystem::path> shared_file(const std::string& relative) {
  auto path = shared_dir() / relative;
  if (!std::filesystem::exists(path)) return std::nullopt;
  return path;
}

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string content(static_cast<std::size_t>(std::filesystem::file_size(path)), '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<std::size_t>(in.gcount()));
  return content;
}

inline std::vector<std::uint8_t> read_binary_file(const std::filesystem::path& path) {
  const std::string content = read_text_file(path);
  return {content.begin(), content.end()};
}

}  // namespace jetstream::testing

/// Binds `var` to the shared file `relative`, or fails the current test with a clear message:
/// ../shared is always there in CI, so a test that cannot find it must not pass by skipping.
#define JETSTREAM_REQUIRE_SHARED_FILE(var, relative)                                              \
  const auto var##_optional = ::jetstream::testing::shared_file(relative);                        \
  if (!var##_optional) {                                                                          \
    GTEST_FAIL() << "shared input missing: " << (::jetstream::testing::shared_dir() / (relative)) \
                 << " (tests read ../shared/ beside the repository; it is never committed)";      \
  }                                                                                               \
  const std::filesystem::path& var = *var##_optional
