// jetstream-frames: tools for firehose capture files ([u32 LE length][frame]…).
#include <array>
#include <cstdio>
#include <string_view>
#include <vector>

#include "tools/frames/subcommands.hpp"

namespace {

using jetstream::tools::Subcommand;

constexpr std::array kSubcommands = {
    Subcommand{"decode", "FILE|-",
               "print one v1 JSON event per line (time_us 1, 2, 3, ...); summary on stderr",
               jetstream::tools::run_decode},
    Subcommand{"split", "FILE DIR", "write each frame to DIR/frame-NNNN.bin (fuzzing seeds)",
               jetstream::tools::run_split},
    Subcommand{"repeat", "FILE OUT --frames N [--first-seq S]",
               "write N frames cycling through FILE with fresh seqs S..S+N-1, S = 1 by default "
               "(long synthetic captures; S >= 2^32 keeps the seq canonical DAG-CBOR)",
               jetstream::tools::run_repeat},
    Subcommand{"serve", "FILE [--listen ADDR] [--rate N] [--keep-open] [--drop-after K]",
               "serve a capture over websocket like a relay's subscribeRepos (prints the URL)",
               jetstream::tools::run_serve},
    Subcommand{"record", "URL FILE [--max-frames N] [--duration D]",
               "record a live firehose into a capture file (progress on stderr every second)",
               jetstream::tools::run_record},
};

void print_usage(std::FILE* out) {
  std::fputs("usage: jetstream-frames SUBCOMMAND [ARGS]\n\nsubcommands:\n", out);
  for (const Subcommand& command : kSubcommands) {
    std::fprintf(out, "  %.*s %.*s\n      %.*s\n", static_cast<int>(command.name.size()),
                 command.name.data(), static_cast<int>(command.usage.size()), command.usage.data(),
                 static_cast<int>(command.summary.size()), command.summary.data());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string_view name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  std::vector<std::string_view> args(argv + 2, argv + argc);
  for (const Subcommand& command : kSubcommands) {
    if (command.name == name) return command.run(args);
  }
  std::fprintf(stderr, "jetstream-frames: unknown subcommand '%.*s'\n\n",
               static_cast<int>(name.size() > 64 ? 64 : name.size()), name.data());
  print_usage(stderr);
  return 2;
}
