// The subcommands of `jetstream-frames`. Each lives in its own file and registers here, so a new
// one (serve, record, …) is a new file plus one line in main.cpp.
#pragma once

#include <span>
#include <string_view>

namespace jetstream::tools {

struct Subcommand {
  std::string_view name;
  std::string_view usage;    ///< arguments after the name, e.g. "FILE|-"
  std::string_view summary;  ///< one line for the help text
  int (*run)(std::span<const std::string_view> args);
};

/// decode FILE|-: prints one v1 JSON line per event (time_us = 1, 2, 3, …); a summary of
/// frames, events and drops by reason goes to stderr.
int run_decode(std::span<const std::string_view> args);

/// split FILE DIR: writes each frame of a capture to DIR/frame-NNNN.bin (fuzzing seeds).
int run_split(std::span<const std::string_view> args);

}  // namespace jetstream::tools
