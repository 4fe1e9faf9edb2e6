// Checks that a service binary refuses out-of-range flag values at start: it must exit on its
// own with code 1 and name the flag in its output, before it serves anything.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/child_process.hpp"

namespace jetstream::testing {

/// One refused case: the extra arguments, and the flag name the error must contain.
using RefusedFlag = std::pair<std::vector<std::string>, std::string>;

inline void expect_refused_at_start(const std::string& binary,
                                    const std::vector<std::string>& base_args,
                                    const std::vector<RefusedFlag>& cases) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("jetstream-refused-flags-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  int index = 0;
  for (const auto& [args, flag] : cases) {
    std::vector<std::string> argv = base_args;
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess process;
    const auto log = (dir / ("case" + std::to_string(index++) + ".log")).string();
    ASSERT_TRUE(process.start(binary, argv, log)) << binary;
    const auto status = process.stop(0, std::chrono::seconds(10));  // signal 0: wait for the exit
    ASSERT_TRUE(status.has_value()) << flag << ": still running";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << flag << ": " << process.log();
    EXPECT_NE(process.log().find(flag), std::string::npos) << process.log();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace jetstream::testing
