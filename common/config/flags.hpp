// Command-line flags with a JETSTREAM_* environment fallback, as every service and tool reads
// its configuration: `--ws-url wss://...` on the command line, else `JETSTREAM_WS_URL` in the
// environment, else the value the target held when the flag was added.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/config/listen_address.hpp"

namespace jetstream::config {

/// Looks up one environment variable; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

/// The real process environment (getenv). The default for `FlagSet::parse`.
std::optional<std::string> process_env(std::string_view name);

/// `JETSTREAM_` + the flag name upper-cased with `-` turned into `_`: `ws-url` →
/// `JETSTREAM_WS_URL`.
std::string env_var_name(std::string_view flag_name);

/// Parses a Go duration (`time.ParseDuration` syntax): a sequence of decimal numbers, each with
/// an optional fraction and a unit `h`, `m`, `s`, `ms`, `us` (or `µs`), `ns`; a bare `0` is zero.
/// One unit beyond Go's: `d`, 24 hours (`--tombstone-ttl 7d`).
/// Nanoseconds are truncated to whole microseconds. Negative durations and values over Go's range
/// (~292 years) are rejected; `error` (when given) says why.
std::optional<std::chrono::microseconds> parse_duration(std::string_view text,
                                                        std::string* error = nullptr);

/// The shortest form `parse_duration` reads back to the same value: `24h`, `1h30m`, `1s500ms`,
/// `250us`, `0s`.
std::string format_duration(std::chrono::microseconds value);

/// What `FlagSet::parse` found. Exactly one of: ok, help requested, error.
struct ParseOutcome {
  enum class Status : std::uint8_t {
    kOk,    ///< every flag is set; `positional` holds the other arguments
    kHelp,  ///< `--help` or `-h` was given: print `help_text()` to stdout and exit 0
    kError  ///< `error` says what is wrong: print it and a hint to stderr and exit 2
  };
  Status status = Status::kOk;
  /// One line naming the flag (and the environment variable when the value came from there).
  std::string error;
  /// Arguments that are not flags, in order (everything after `--` included).
  std::vector<std::string> positional;

  bool ok() const { return status == Status::kOk; }
  bool help_requested() const { return status == Status::kHelp; }
};

/// The flags of one program. Targets are raw pointers owned by the caller and must outlive the
/// FlagSet; a flag's default is the value its target holds when the flag is added. Adding a flag
/// with an invalid or duplicate name throws `std::logic_error` (a programming error). Not
/// thread-safe: build and parse it on the main thread at startup.
class FlagSet {
 public:
  /// `program` is the executable name used in the usage line, `summary` one sentence about it.
  FlagSet(std::string program, std::string summary);

  /// Names are lower-case `[a-z0-9-]`, start with a letter, and are not `help`.
  void add_string(std::string name, std::string* target, std::string help);
  void add_int64(std::string name, std::int64_t* target, std::string help);
  /// `--name` sets true; `--name=false` (any Go `strconv.ParseBool` spelling) sets false. A bool
  /// flag never takes the next argument as its value.
  void add_bool(std::string name, bool* target, std::string help);
  /// Go duration syntax (see `parse_duration`).
  void add_duration(std::string name, std::chrono::microseconds* target, std::string help);
  /// A finite decimal number.
  void add_double(std::string name, double* target, std::string help);
  /// A listen address (see `parse_listen_address`): `:6008`, `127.0.0.1:6008`, `[::1]:6008`.
  void add_listen_address(std::string name, ListenAddress* target, std::string help);

  /// Reads `argv[1..argc)` then, for flags not on the command line, the environment. Accepts
  /// `--name value`, `--name=value`, `-name` as `--name`, and `--` to end the flags. A value that
  /// starts with `--` must be written `--name=--value`. The same flag twice: the last wins.
  /// Targets are written only when the outcome is ok; on help or error none is touched. Help wins
  /// over errors; otherwise the first error (command line before environment) is reported.
  ParseOutcome parse(int argc, const char* const* argv, const EnvLookup& env = process_env);

  /// Usage line, summary, and one aligned line per flag: name, value kind, environment variable,
  /// help and default.
  std::string help_text() const;

  /// The usual end of argument handling in `main`: prints help to `out` (returns 0) or the error
  /// and a `--help` hint to `err` (returns 2); returns nullopt when the outcome is ok.
  std::optional<int> report(const ParseOutcome& outcome, std::ostream& out,
                            std::ostream& err) const;

  /// What follows `[flags]` in the usage line, e.g. `<capture> <out-dir>`.
  void set_positional_usage(std::string usage);

  const std::string& program() const { return program_; }

 private:
  using Target = std::variant<std::string*, std::int64_t*, bool*, std::chrono::microseconds*,
                              double*, ListenAddress*>;
  struct Flag {
    std::string name;
    std::string env;
    std::string help;
    std::string default_text;
    Target target;
  };

  void add(std::string name, Target target, std::string help);
  const Flag* find(std::string_view name) const;

  std::string program_;
  std::string summary_;
  std::string positional_usage_;
  std::vector<Flag> flags_;
};

/// The items of a comma-separated flag value (`a, b,,c` → a, b, c): spaces around an item and
/// empty items are dropped.
std::vector<std::string> split_list(std::string_view text);

}  // namespace jetstream::config
