// `jetstream-frames decode` and `jetstream-frames split`.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/firehose/capture.hpp"
#include "common/firehose/v1_encoder.hpp"
#include "tools/frames/subcommands.hpp"

namespace jetstream::tools {
namespace {

using firehose::CaptureReader;
using firehose::CaptureReadStatus;

/// Opens FILE, or stdin for "-". Returns nullptr (after printing why) when it cannot.
std::istream* open_input(std::string_view path, std::ifstream& file) {
  if (path == "-") return &std::cin;
  file.open(std::string(path), std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "jetstream-frames: cannot open %.*s\n", static_cast<int>(path.size()),
                 path.data());
    return nullptr;
  }
  return &file;
}

const char* describe(CaptureReadStatus status) {
  switch (status) {
    case CaptureReadStatus::truncated: return "truncated frame at end of capture";
    case CaptureReadStatus::oversize: return "declared frame length over the 64 MiB limit";
    default: return "ok";
  }
}

void print_summary(const firehose::DecodeStats& stats, std::uint64_t frames) {
  std::fprintf(stderr, "frames: %llu\n", static_cast<unsigned long long>(frames));
  for (std::size_t type = 0; type < stats.frames_by_type.size(); ++type) {
    if (stats.frames_by_type[type] == 0) continue;
    const auto name = firehose::to_string(static_cast<firehose::FrameType>(type));
    std::fprintf(stderr, "  #%.*s: %llu\n", static_cast<int>(name.size()), name.data(),
                 static_cast<unsigned long long>(stats.frames_by_type[type]));
  }
  std::fprintf(stderr, "events: %llu (commit %llu, identity %llu, account %llu)\n",
               static_cast<unsigned long long>(stats.events),
               static_cast<unsigned long long>(stats.events_by_kind[1]),
               static_cast<unsigned long long>(stats.events_by_kind[2]),
               static_cast<unsigned long long>(stats.events_by_kind[3]));
  std::uint64_t total_drops = 0;
  for (const auto count : stats.drops) total_drops += count;
  std::fprintf(stderr, "drops: %llu\n", static_cast<unsigned long long>(total_drops));
  for (std::size_t reason = 0; reason < stats.drops.size(); ++reason) {
    if (stats.drops[reason] == 0) continue;
    const auto name = firehose::to_string(static_cast<firehose::DropReason>(reason));
    std::fprintf(stderr, "  %.*s: %llu\n", static_cast<int>(name.size()), name.data(),
                 static_cast<unsigned long long>(stats.drops[reason]));
  }
}

}  // namespace

/// Decoded lines are written in large blocks, not one fwrite per event.
constexpr std::size_t kOutputBlockBytes = 1u << 20;

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t wrote = ::write(fd, bytes.data(), bytes.size());
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(wrote));
  }
  return true;
}

int run_decode(std::span<const std::string_view> args) {
  if (args.size() != 1) {
    std::fputs("usage: jetstream-frames decode FILE|-\n", stderr);
    return 2;
  }
  int fd = STDIN_FILENO;
  if (args[0] != "-") {
    fd = ::open(std::string(args[0]).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::fprintf(stderr, "jetstream-frames: cannot open %.*s: %s\n",
                   static_cast<int>(args[0].size()), args[0].data(), std::strerror(errno));
      return 1;
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }

  CaptureReader reader(fd);
  firehose::V1Encoder encoder;
  std::vector<firehose::PendingEvent> events;
  std::string output;
  output.reserve(kOutputBlockBytes + (64u << 10));
  int output_errno = 0;  // set by the first write that failed
  const auto flush = [&] {
    if (output_errno == 0 && !write_all(STDOUT_FILENO, output)) output_errno = errno ? errno : EIO;
    output.clear();
  };
  std::int64_t time_us = 0;
  std::uint64_t frames = 0;
  CaptureReadStatus status;
  for (;;) {
    // Flush before the reader waits for input, so a capture piped in live comes out as it goes.
    if (!reader.has_buffered_frame()) flush();
    if ((status = reader.next()) != CaptureReadStatus::frame) break;
    ++frames;
    events.clear();
    const auto outcome = encoder.events_from_frame(reader.frame(), events);
    if (!outcome.upstream_error.empty()) {
      std::fprintf(stderr, "frame %llu: upstream error frame: %s\n",
                   static_cast<unsigned long long>(frames), outcome.upstream_error.c_str());
    }
    for (const auto& event : events) {
      event.append_finalized(output, ++time_us);
      output.push_back('\n');
    }
    if (output.size() >= kOutputBlockBytes) flush();
  }
  flush();
  if (fd != STDIN_FILENO) ::close(fd);
  print_summary(encoder.stats(), frames);
  if (output_errno != 0) {
    std::fprintf(stderr, "jetstream-frames: cannot write the decoded events: %s\n",
                 std::strerror(output_errno));
    return 1;
  }
  if (status != CaptureReadStatus::end) {
    std::fprintf(stderr, "jetstream-frames: %s after %llu frames\n", describe(status),
                 static_cast<unsigned long long>(frames));
    return 1;
  }
  return 0;
}

int run_split(std::span<const std::string_view> args) {
  if (args.size() != 2) {
    std::fputs("usage: jetstream-frames split FILE DIR\n", stderr);
    return 2;
  }
  std::ifstream file;
  std::istream* in = open_input(args[0], file);
  if (in == nullptr) return 1;
  const std::filesystem::path dir{std::string(args[1])};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "jetstream-frames: cannot create %s: %s\n", dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  CaptureReader reader(*in);
  std::uint64_t frames = 0;
  CaptureReadStatus status;
  while ((status = reader.next()) == CaptureReadStatus::frame) {
    char name[32];
    std::snprintf(name, sizeof name, "frame-%04llu.bin", static_cast<unsigned long long>(frames++));
    std::ofstream out(dir / name, std::ios::binary);
    const auto frame = reader.frame();
    out.write(reinterpret_cast<const char*>(frame.data()),
              static_cast<std::streamsize>(frame.size()));
  }
  std::fprintf(stderr, "wrote %llu frames to %s\n", static_cast<unsigned long long>(frames),
               dir.c_str());
  return status == CaptureReadStatus::end ? 0 : 1;
}

int run_repeat(std::span<const std::string_view> args) {
  if ((args.size() != 4 && args.size() != 6) || args[2] != "--frames" ||
      (args.size() == 6 && args[4] != "--first-seq")) {
    std::fputs("usage: jetstream-frames repeat FILE OUT --frames N [--first-seq S]\n", stderr);
    return 2;
  }
  std::uint64_t count = 0;
  std::uint64_t first_seq = 1;
  try {
    count = std::stoull(std::string(args[3]));
    if (args.size() == 6) first_seq = std::stoull(std::string(args[5]));
  } catch (const std::exception&) {
    std::fputs("jetstream-frames repeat: --frames and --first-seq need a number\n", stderr);
    return 2;
  }
  std::ifstream file;
  std::istream* in = open_input(args[0], file);
  if (in == nullptr) return 1;
  std::vector<std::vector<std::uint8_t>> frames;
  CaptureReader reader(*in);
  CaptureReadStatus status;
  while ((status = reader.next()) == CaptureReadStatus::frame) {
    frames.emplace_back(reader.frame().begin(), reader.frame().end());
  }
  if (status != CaptureReadStatus::end || frames.empty()) {
    std::fputs("jetstream-frames repeat: the input capture is empty or corrupt\n", stderr);
    return 1;
  }
  std::ofstream out{std::string(args[1]), std::ios::binary};
  if (!out) {
    std::fputs("jetstream-frames repeat: cannot write the output file\n", stderr);
    return 1;
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    std::vector<std::uint8_t> frame = frames[i % frames.size()];
    if (!firehose::rewrite_frame_seq(frame, first_seq + i)) {
      std::fprintf(stderr, "jetstream-frames repeat: frame %llu has no uint64 seq to rewrite\n",
                   static_cast<unsigned long long>(i % frames.size()));
      return 1;
    }
    firehose::write_capture_frame(out, frame);
    if ((i + 1) % 100000 == 0) {
      std::fprintf(stderr, "%llu frames written\n", static_cast<unsigned long long>(i + 1));
    }
  }
  std::fprintf(stderr, "wrote %llu frames to %.*s\n", static_cast<unsigned long long>(count),
               static_cast<int>(args[1].size()), args[1].data());
  return 0;
}

}  // namespace jetstream::tools
