// Flags with environment fallback: command line > JETSTREAM_* environment > default, every
// error a single line naming the flag (and the variable), Go durations, listen addresses.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/config/flags.hpp"
#include "common/config/listen_address.hpp"

namespace {

namespace config = jetstream::config;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

/// An environment that holds exactly `vars`.
config::EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

/// Runs `flags.parse` over `args` (the program name is prepended).
config::ParseOutcome parse(config::FlagSet& flags, const std::vector<std::string>& args,
                           const config::EnvLookup& env = fake_env({})) {
  std::vector<const char*> argv{"prog"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return flags.parse(static_cast<int>(argv.size()), argv.data(), env);
}

/// The flags of a typical service, with v1's defaults.
struct ServiceFlags {
  std::string ws_url = "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos";
  config::ListenAddress listen{"", 6008};
  std::int64_t max_sub_rate = 5000;
  bool override_cursor = false;
  microseconds event_ttl = hours(24);
  double ratio = 0.5;
  config::FlagSet flags{"jetstream-test", "A service under test."};

  ServiceFlags() {
    flags.add_string("ws-url", &ws_url, "upstream subscribeRepos URL");
    flags.add_listen_address("listen-addr", &listen, "where clients connect");
    flags.add_int64("max-sub-rate", &max_sub_rate, "events per second per client IP");
    flags.add_bool("override-relay-cursor", &override_cursor, "ignore the stored cursor");
    flags.add_duration("event-ttl", &event_ttl, "how long events are kept");
    flags.add_double("ratio", &ratio, "a fraction");
  }
};

TEST(ConfigEnvName, IsPrefixedUpperCaseWithUnderscores) {
  EXPECT_EQ(config::env_var_name("ws-url"), "JETSTREAM_WS_URL");
  EXPECT_EQ(config::env_var_name("metrics-listen-addr"), "JETSTREAM_METRICS_LISTEN_ADDR");
}

TEST(ConfigFlags, DefaultIsWhatTheTargetHeldWhenNothingIsGiven) {
  ServiceFlags s;
  const auto outcome = parse(s.flags, {});
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(s.ws_url, "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos");
  EXPECT_EQ(s.listen, (config::ListenAddress{"", 6008}));
  EXPECT_EQ(s.max_sub_rate, 5000);
  EXPECT_FALSE(s.override_cursor);
  EXPECT_EQ(s.event_ttl, hours(24));
  EXPECT_DOUBLE_EQ(s.ratio, 0.5);
}

TEST(ConfigFlags, EnvironmentOverridesDefault) {
  ServiceFlags s;
  const auto outcome = parse(s.flags, {},
                             fake_env({{"JETSTREAM_WS_URL", "ws://localhost:2470"},
                                       {"JETSTREAM_MAX_SUB_RATE", "10"},
                                       {"JETSTREAM_OVERRIDE_RELAY_CURSOR", "true"},
                                       {"JETSTREAM_EVENT_TTL", "1h30m"},
                                       {"JETSTREAM_LISTEN_ADDR", "127.0.0.1:7000"},
                                       {"JETSTREAM_RATIO", "0.25"}}));
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(s.ws_url, "ws://localhost:2470");
  EXPECT_EQ(s.max_sub_rate, 10);
  EXPECT_TRUE(s.override_cursor);
  EXPECT_EQ(s.event_ttl, minutes(90));
  EXPECT_EQ(s.listen, (config::ListenAddress{"127.0.0.1", 7000}));
  EXPECT_DOUBLE_EQ(s.ratio, 0.25);
}

TEST(ConfigFlags, CommandLineOverridesEnvironment) {
  ServiceFlags s;
  const auto outcome =
      parse(s.flags, {"--ws-url", "ws://argv", "--max-sub-rate=7", "--event-ttl", "15s"},
            fake_env({{"JETSTREAM_WS_URL", "ws://env"},
                      {"JETSTREAM_MAX_SUB_RATE", "10"},
                      {"JETSTREAM_EVENT_TTL", "1h"},
                      {"JETSTREAM_RATIO", "0.75"}}));
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(s.ws_url, "ws://argv");
  EXPECT_EQ(s.max_sub_rate, 7);
  EXPECT_EQ(s.event_ttl, seconds(15));
  EXPECT_DOUBLE_EQ(s.ratio, 0.75);  // not on the command line: the environment still applies
}

TEST(ConfigFlags, EmptyEnvironmentValueCountsAsUnset) {
  ServiceFlags s;
  const auto outcome = parse(s.flags, {}, fake_env({{"JETSTREAM_MAX_SUB_RATE", ""}}));
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(s.max_sub_rate, 5000);
}

TEST(ConfigFlags, BoolFlagAloneIsTrueAndTakesAnExplicitFalse) {
  ServiceFlags s;
  ASSERT_TRUE(parse(s.flags, {"--override-relay-cursor"}).ok());
  EXPECT_TRUE(s.override_cursor);
  ASSERT_TRUE(parse(s.flags, {"--override-relay-cursor=false"},
                    fake_env({{"JETSTREAM_OVERRIDE_RELAY_CURSOR", "true"}}))
                  .ok());
  EXPECT_FALSE(s.override_cursor);
}

TEST(ConfigFlags, BoolFlagDoesNotSwallowTheNextArgument) {
  ServiceFlags s;
  const auto outcome = parse(s.flags, {"--override-relay-cursor", "capture.frames"});
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_TRUE(s.override_cursor);
  EXPECT_EQ(outcome.positional, std::vector<std::string>{"capture.frames"});
}

TEST(ConfigFlags, CollectsPositionalArgumentsAndEverythingAfterDoubleDash) {
  ServiceFlags s;
  const auto outcome =
      parse(s.flags, {"in.frames", "--max-sub-rate", "3", "out", "-", "--", "--ws-url", "x"});
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(s.max_sub_rate, 3);
  EXPECT_EQ(s.ws_url, "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos");
  EXPECT_EQ(outcome.positional,
            (std::vector<std::string>{"in.frames", "out", "-", "--ws-url", "x"}));
}

TEST(ConfigFlags, SingleDashLongNameWorksLikeGo) {
  ServiceFlags s;
  ASSERT_TRUE(parse(s.flags, {"-max-sub-rate", "9", "-ws-url=ws://x"}).ok());
  EXPECT_EQ(s.max_sub_rate, 9);
  EXPECT_EQ(s.ws_url, "ws://x");
}

TEST(ConfigFlags, LastOccurrenceWinsAndNegativeNumbersAreValues) {
  ServiceFlags s;
  ASSERT_TRUE(parse(s.flags, {"--max-sub-rate", "1", "--max-sub-rate", "-2"}).ok());
  EXPECT_EQ(s.max_sub_rate, -2);
  ASSERT_TRUE(parse(s.flags, {"--ws-url="}).ok());
  EXPECT_EQ(s.ws_url, "");
}

TEST(ConfigFlags, HelpIsReportedAndWinsOverErrors) {
  for (const char* help : {"--help", "-h", "-help", "--h"}) {
    ServiceFlags s;
    const auto outcome = parse(s.flags, {"--max-sub-rate=oops", help, "--bogus"});
    EXPECT_TRUE(outcome.help_requested()) << help;
    EXPECT_TRUE(outcome.error.empty());
    EXPECT_EQ(s.max_sub_rate, 5000) << "help must not touch targets";
  }
}

TEST(ConfigFlags, HelpTextListsEveryFlagWithEnvDefaultAndHelpAligned) {
  ServiceFlags s;
  s.flags.set_positional_usage("<capture>");
  const std::string help = s.flags.help_text();
  EXPECT_NE(help.find("Usage: jetstream-test [flags] <capture>\n"), std::string::npos) << help;
  EXPECT_NE(help.find("A service under test."), std::string::npos);
  std::istringstream lines(help);
  std::vector<std::string> flag_lines;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("  -", 0) == 0) flag_lines.push_back(line);
  }
  ASSERT_EQ(flag_lines.size(), 7u) << help;  // six flags + help
  const std::size_t env_column = flag_lines[0].find("JETSTREAM_WS_URL");
  ASSERT_NE(env_column, std::string::npos);
  const struct {
    const char* name;
    const char* env;
    const char* text;
  } expected[] = {
      {"--ws-url string", "JETSTREAM_WS_URL",
       "upstream subscribeRepos URL (default \"wss://bsky.network/xrpc/"
       "com.atproto.sync.subscribeRepos\")"},
      {"--listen-addr host:port", "JETSTREAM_LISTEN_ADDR",
       "where clients connect (default \":6008\")"},
      {"--max-sub-rate int", "JETSTREAM_MAX_SUB_RATE",
       "events per second per client IP (default 5000)"},
      {"--override-relay-cursor", "JETSTREAM_OVERRIDE_RELAY_CURSOR",
       "ignore the stored cursor (default false)"},
      {"--event-ttl duration", "JETSTREAM_EVENT_TTL", "how long events are kept (default 24h)"},
      {"--ratio float", "JETSTREAM_RATIO", "a fraction (default 0.5)"},
  };
  std::size_t help_column = std::string::npos;
  for (std::size_t i = 0; i < std::size(expected); ++i) {
    const std::string& line = flag_lines[i];
    EXPECT_EQ(line.find(expected[i].name), 2u) << line;
    EXPECT_EQ(line.find(expected[i].env), env_column) << line;
    const std::size_t text_at = line.find(expected[i].text);
    ASSERT_NE(text_at, std::string::npos) << line;
    if (help_column == std::string::npos) help_column = text_at;
    EXPECT_EQ(text_at, help_column) << line;
    EXPECT_EQ(text_at + std::string_view(expected[i].text).size(), line.size()) << line;
  }
  EXPECT_EQ(flag_lines[6].find("-h, --help"), 2u);
  EXPECT_EQ(flag_lines[6].find("show this help"), help_column);
}

TEST(ConfigFlags, HelpShowsTheDefaultEvenAfterParse) {
  ServiceFlags s;
  ASSERT_TRUE(parse(s.flags, {"--max-sub-rate", "1"}).ok());
  EXPECT_NE(s.flags.help_text().find("(default 5000)"), std::string::npos);
}

/// The one-line error for `args` (and `env`), checking nothing was written.
std::string error_of(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  ServiceFlags s;
  const auto outcome = parse(s.flags, std::move(args), fake_env(std::move(env)));
  EXPECT_EQ(outcome.status, config::ParseOutcome::Status::kError);
  EXPECT_EQ(outcome.error.find('\n'), std::string::npos) << "one line: " << outcome.error;
  EXPECT_EQ(s.max_sub_rate, 5000) << "an error must not touch targets";
  EXPECT_EQ(s.ws_url, "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos");
  return outcome.error;
}

TEST(ConfigFlagErrors, UnknownFlagIsNamed) {
  EXPECT_EQ(error_of({"--bogus=1"}), "unknown flag \"--bogus\"");
  EXPECT_EQ(error_of({"-x"}), "unknown flag \"-x\"");
}

TEST(ConfigFlagErrors, MissingValueIsNamed) {
  EXPECT_EQ(error_of({"--ws-url"}), "flag --ws-url needs a value");
  EXPECT_EQ(error_of({"--ws-url", "--max-sub-rate", "3"}), "flag --ws-url needs a value");
}

TEST(ConfigFlagErrors, BadNumbersAreNamedWithTheValue) {
  EXPECT_EQ(error_of({"--ws-url=ok", "--max-sub-rate", "12x"}),
            "invalid value \"12x\" for flag --max-sub-rate: not an integer");
  EXPECT_EQ(error_of({"--max-sub-rate="}),
            "invalid value \"\" for flag --max-sub-rate: not an integer");
  EXPECT_EQ(error_of({"--max-sub-rate=99999999999999999999"}),
            "invalid value \"99999999999999999999\" for flag --max-sub-rate: integer out of range");
  EXPECT_EQ(error_of({"--ratio=abc"}), "invalid value \"abc\" for flag --ratio: not a number");
  EXPECT_EQ(error_of({"--ratio=nan"}), "invalid value \"nan\" for flag --ratio: not a number");
  EXPECT_EQ(error_of({"--override-relay-cursor=maybe"}),
            "invalid value \"maybe\" for flag --override-relay-cursor: not a boolean (true or "
            "false)");
}

TEST(ConfigFlagErrors, BadDurationsAreNamed) {
  EXPECT_EQ(
      error_of({"--event-ttl", "24"}),
      "invalid value \"24\" for flag --event-ttl: missing unit in duration (d, h, m, s, ms, us)");
  EXPECT_EQ(
      error_of({"--event-ttl", "1w"}),
      "invalid value \"1w\" for flag --event-ttl: unknown unit in duration (d, h, m, s, ms, us)");
  EXPECT_EQ(error_of({"--event-ttl=-5s"}),
            "invalid value \"-5s\" for flag --event-ttl: negative durations are not allowed");
}

TEST(ConfigFlagErrors, BadListenAddressIsNamed) {
  EXPECT_EQ(error_of({"--listen-addr", "6008"}),
            "invalid value \"6008\" for flag --listen-addr: missing port (expected host:port, "
            "e.g. :6008)");
}

TEST(ConfigFlagErrors, ValueFromEnvironmentNamesTheVariable) {
  EXPECT_EQ(error_of({}, {{"JETSTREAM_MAX_SUB_RATE", "lots"}}),
            "invalid value \"lots\" in environment variable JETSTREAM_MAX_SUB_RATE (flag "
            "--max-sub-rate): not an integer");
  EXPECT_EQ(error_of({}, {{"JETSTREAM_EVENT_TTL", "forever"}}),
            "invalid value \"forever\" in environment variable JETSTREAM_EVENT_TTL (flag "
            "--event-ttl): not a duration (examples: 24h, 15s, 500ms, 1h30m)");
}

TEST(ConfigFlagErrors, BadEnvironmentValueIsIgnoredWhenTheCommandLineSetsTheFlag) {
  ServiceFlags s;
  const auto outcome =
      parse(s.flags, {"--max-sub-rate=1"}, fake_env({{"JETSTREAM_MAX_SUB_RATE", "lots"}}));
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(s.max_sub_rate, 1);
}

TEST(ConfigFlagErrors, CommandLineErrorIsReportedBeforeEnvironmentError) {
  EXPECT_EQ(error_of({"--nope"}, {{"JETSTREAM_MAX_SUB_RATE", "lots"}}), "unknown flag \"--nope\"");
}

TEST(ConfigFlagErrors, HostileValueIsQuotedEscapedAndBounded) {
  const std::string error = error_of({"--max-sub-rate=" + std::string(1000, '9') + "\n\x1b"});
  EXPECT_LT(error.size(), 160u);
  EXPECT_NE(error.find("...\" for flag --max-sub-rate"), std::string::npos) << error;
  const std::string escaped = error_of({std::string("--max-sub-rate=1\n\"2")});
  EXPECT_EQ(escaped, "invalid value \"1\\x0a\\\"2\" for flag --max-sub-rate: not an integer");
}

TEST(ConfigFlags, ReportPrintsHelpToStdoutOrErrorAndHintToStderr) {
  ServiceFlags s;
  std::ostringstream out, err;
  EXPECT_EQ(s.flags.report(parse(s.flags, {}), out, err), std::nullopt);
  EXPECT_EQ(s.flags.report(parse(s.flags, {"-h"}), out, err), 0);
  EXPECT_EQ(out.str(), s.flags.help_text());
  EXPECT_TRUE(err.str().empty());
  out.str("");
  EXPECT_EQ(s.flags.report(parse(s.flags, {"--bogus"}), out, err), 2);
  EXPECT_TRUE(out.str().empty());
  EXPECT_EQ(err.str(),
            "jetstream-test: unknown flag \"--bogus\"\n"
            "Run 'jetstream-test --help' for the list of flags.\n");
}

TEST(ConfigFlags, DefiningAFlagTwiceOrWithABadNameIsAProgrammingError) {
  config::FlagSet flags("p", "");
  std::string a, b;
  flags.add_string("name", &a, "");
  EXPECT_THROW(flags.add_string("name", &b, ""), std::logic_error);
  EXPECT_THROW(flags.add_string("Upper", &b, ""), std::logic_error);
  EXPECT_THROW(flags.add_string("help", &b, ""), std::logic_error);
  EXPECT_THROW(flags.add_string("under_score", &b, ""), std::logic_error);
  EXPECT_THROW(flags.add_string("ok", nullptr, ""), std::logic_error);
}

TEST(ConfigFlags, ReadsTheRealProcessEnvironmentByDefault) {
  ::setenv("JETSTREAM_CONFIG_TEST_PROBE", "42", 1);
  std::int64_t probe = 0;
  config::FlagSet flags("p", "");
  flags.add_int64("config-test-probe", &probe, "");
  const char* argv[] = {"p"};
  ASSERT_TRUE(flags.parse(1, argv).ok());
  ::unsetenv("JETSTREAM_CONFIG_TEST_PROBE");
  EXPECT_EQ(probe, 42);
}

TEST(ConfigDuration, ParsesGoSyntax) {
  const struct {
    const char* text;
    microseconds value;
  } cases[] = {
      {"0", microseconds(0)},
      {"0s", microseconds(0)},
      {"-0", microseconds(0)},
      {"24h", hours(24)},
      {"15s", seconds(15)},
      {"500ms", milliseconds(500)},
      {"1h30m", minutes(90)},
      {"90s", seconds(90)},
      {"250us", microseconds(250)},
      {"250\xc2\xb5s", microseconds(250)},
      {"250\xce\xbcs", microseconds(250)},
      {"1.5h", minutes(90)},
      {".5s", milliseconds(500)},
      {"1.s", seconds(1)},
      {"+2m", minutes(2)},
      {"1h2m3s4ms5us", hours(1) + minutes(2) + seconds(3) + milliseconds(4) + microseconds(5)},
      {"1500ns", microseconds(1)},
      {"2562047h", hours(2562047)},
  };
  for (const auto& c : cases) {
    std::string error;
    const auto value = config::parse_duration(c.text, &error);
    ASSERT_TRUE(value.has_value()) << c.text << ": " << error;
    EXPECT_EQ(*value, c.value) << c.text;
  }
}

TEST(ConfigDuration, DaysAreTwentyFourHours) {
  EXPECT_EQ(config::parse_duration("7d"), std::chrono::hours(168));
  EXPECT_EQ(config::parse_duration("1d12h"), std::chrono::hours(36));
}

TEST(ConfigDuration, RejectsMalformedNegativeAndOutOfRange) {
  for (const char* text : {"", "s", "1", "10", "1x", "1w", "1 h", "h1", ".s", "1..5s", "-1s",
                           "-1h30m", "2562048h", "9999999999999999999s", "1h-2m", "+", "-"}) {
    std::string error;
    EXPECT_FALSE(config::parse_duration(text, &error).has_value()) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

TEST(ConfigDuration, FormatsTheShortestFormThatParsesBack) {
  EXPECT_EQ(config::format_duration(microseconds(0)), "0s");
  EXPECT_EQ(config::format_duration(hours(24)), "24h");
  EXPECT_EQ(config::format_duration(minutes(90)), "1h30m");
  EXPECT_EQ(config::format_duration(milliseconds(1500)), "1s500ms");
  EXPECT_EQ(config::format_duration(microseconds(250)), "250us");
  for (const microseconds value :
       {microseconds(1), microseconds(1'234'567'890), microseconds(hours(100) + seconds(1))}) {
    EXPECT_EQ(config::parse_duration(config::format_duration(value)), value);
  }
}

TEST(ConfigListenAddress, AcceptsGoHostPortForms) {
  const struct {
    const char* text;
    config::ListenAddress address;
  } cases[] = {
      {":6008", {"", 6008}},
      {"127.0.0.1:6008", {"127.0.0.1", 6008}},
      {"[::1]:6008", {"::1", 6008}},
      {"[::]:0", {"::", 0}},
      {"[fe80::1%eth0]:80", {"fe80::1%eth0", 80}},
      {"localhost:0", {"localhost", 0}},
      {"jetstream-decode.default.svc:6013", {"jetstream-decode.default.svc", 6013}},
      {"0.0.0.0:65535", {"0.0.0.0", 65535}},
  };
  for (const auto& c : cases) {
    std::string error;
    const auto address = config::parse_listen_address(c.text, &error);
    ASSERT_TRUE(address.has_value()) << c.text << ": " << error;
    EXPECT_EQ(*address, c.address) << c.text;
    EXPECT_EQ(config::format_listen_address(*address), c.text);
  }
}

TEST(ConfigListenAddress, RejectsEverythingElseWithAReason) {
  for (const char* text : {"",          "6008",         ":",         "localhost", "localhost:",
                           ":65536",    ":99999999",    ":-1",       ":+1",       ":60 08",
                           "::1:6008",  "[::1]",        "[::1:6008", "[]:6008",   "[127.0.0.1]:80",
                           "[::1%]:80", "host name:80", "a/b:80",    "[::1]x:80", "h\n:80"}) {
    std::string error;
    EXPECT_FALSE(config::parse_listen_address(text, &error).has_value()) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

}  // namespace
