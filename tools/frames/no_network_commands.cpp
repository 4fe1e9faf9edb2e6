// serve and record need jetstream_websocket (Boost); this build has neither.
#include <cstdio>

#include "tools/frames/subcommands.hpp"

namespace jetstream::tools {

int run_serve(std::span<const std::string_view>) {
  std::fputs("jetstream-frames serve: built without Boost (no websocket support)\n", stderr);
  return 1;
}

int run_record(std::span<const std::string_view>) {
  std::fputs("jetstream-frames record: built without Boost (no websocket support)\n", stderr);
  return 1;
}

}  // namespace jetstream::tools
