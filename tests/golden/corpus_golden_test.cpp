// `jetstream-frames decode` over the real relay capture reproduces production v1 output.
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/shared_data.hpp"

namespace {

/// Runs `command`, returning its stdout; `status` receives the exit status.
std::string run_command(const std::string& command, int& status) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    status = -1;
    return output;
  }
  char buffer[65536];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  status = ::pclose(pipe);
  return output;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// Replaces the digits of the envelope's time_us (the sequencer's, not reproducible) with 0.
std::string blank_time_us(const std::string& line) {
  static const std::regex time_us(R"("time_us":\d+)");
  return std::regex_replace(line, time_us, R"("time_us":0)",
                            std::regex_constants::format_first_only);
}

TEST(CorpusGolden, DecodeOfDevFramesEqualsProductionV1OutputByteForByte) {
  JETSTREAM_REQUIRE_SHARED_FILE(frames, "corpus/dev.frames");
  JETSTREAM_REQUIRE_SHARED_FILE(expected_path, "corpus/dev.expected.jsonl");
  int status = 0;
  const std::string output = run_command(
      std::string(JETSTREAM_FRAMES_BINARY) + " decode '" + frames.string() + "' 2>/dev/null",
      status);
  ASSERT_EQ(status, 0);
  const auto got = lines_of(output);
  const auto expected = lines_of(jetstream::testing::read_text_file(expected_path));
  ASSERT_EQ(got.size(), expected.size()) << "event count differs from v1";
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(blank_time_us(got[i]), blank_time_us(expected[i])) << "event " << i;
  }
}

TEST(CorpusGolden, DecodeNumbersTimeUsFromOneInOrder) {
  JETSTREAM_REQUIRE_SHARED_FILE(frames, "corpus/dev.frames");
  int status = 0;
  const std::string output = run_command(
      std::string(JETSTREAM_FRAMES_BINARY) + " decode - < '" + frames.string() + "' 2>/dev/null",
      status);
  ASSERT_EQ(status, 0);
  const auto got = lines_of(output);
  ASSERT_FALSE(got.empty());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::string expected_prefix = "\"time_us\":" + std::to_string(i + 1) + ",";
    EXPECT_NE(got[i].find(expected_prefix), std::string::npos) << got[i].substr(0, 120);
  }
}

TEST(CorpusGolden, DecodeReportsFramesEventsAndDropsOnStderr) {
  JETSTREAM_REQUIRE_SHARED_FILE(frames, "corpus/dev.frames");
  int status = 0;
  const std::string summary = run_command(
      std::string(JETSTREAM_FRAMES_BINARY) + " decode '" + frames.string() + "' 2>&1 >/dev/null",
      status);
  ASSERT_EQ(status, 0);
  EXPECT_NE(summary.find("frames: 75"), std::string::npos) << summary;
  EXPECT_NE(summary.find("events: 77"), std::string::npos) << summary;
  EXPECT_NE(summary.find("drops: 0"), std::string::npos) << summary;
}

TEST(CorpusGolden, DecodeOfATruncatedCaptureFailsWithAMessage) {
  JETSTREAM_REQUIRE_SHARED_FILE(frames, "corpus/dev.frames");
  int status = 0;
  const std::string summary =
      run_command("head -c 5000 '" + frames.string() + "' | " +
                      std::string(JETSTREAM_FRAMES_BINARY) + " decode - 2>&1 >/dev/null",
                  status);
  EXPECT_NE(status, 0);
  EXPECT_NE(summary.find("truncated"), std::string::npos) << summary;
}

}  // namespace
