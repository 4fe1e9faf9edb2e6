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

/// repeat FILE OUT --frames N: a capture of N frames cycling through FILE, each frame's body seq
/// rewritten to 1, 2, 3, … so every frame is new to decode (benchmarks, demos, load tests).
int run_repeat(std::span<const std::string_view> args);

/// serve FILE [--listen 127.0.0.1:PORT] [--rate N] [--keep-open] [--drop-after K]: plays a
/// capture to websocket clients as a relay's subscribeRepos would (`?cursor=` honoured); prints
/// the URL to connect to on stdout; runs until SIGINT/SIGTERM.
int run_serve(std::span<const std::string_view> args);

/// record URL FILE [--max-frames N] [--duration D]: captures a live firehose into the capture
/// format, with a progress line (frames, bytes, last seq) on stderr every second.
int run_record(std::span<const std::string_view> args);

}  // namespace jetstream::tools
