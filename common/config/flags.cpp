#include "common/config/flags.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <type_traits>

namespace jetstream::config {
namespace {

using std::chrono::microseconds;

/// Longest part of an offending value quoted back in an error line.
constexpr std::size_t kMaxQuotedValue = 64;

/// A value made safe for a one-line message: quoted, `"` `\\` and control bytes escaped, and cut
/// after `limit` bytes (marked `..."`).
std::string quote(std::string_view value, std::size_t limit = kMaxQuotedValue) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  const std::size_t shown = std::min(value.size(), limit);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto byte = static_cast<unsigned char>(value[i]);
    if (byte == '"' || byte == '\\') {
      out += '\\';
      out += static_cast<char>(byte);
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += static_cast<char>(byte);
    }
  }
  if (shown < value.size()) out += "...";
  out += '"';
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::optional<bool> parse_bool(std::string_view text) {
  // Go's strconv.ParseBool.
  if (text == "1" || text == "t" || text == "T" || text == "true" || text == "TRUE" ||
      text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "false" || text == "FALSE" ||
      text == "False") {
    return false;
  }
  return std::nullopt;
}

/// Drops one leading '+' when a digit follows (strconv accepts "+5"; from_chars does not).
std::string_view strip_plus(std::string_view text) {
  if (text.size() >= 2 && text[0] == '+' && (is_digit(text[1]) || text[1] == '.')) {
    return text.substr(1);
  }
  return text;
}

template <typename T>
std::optional<T> convert(std::string_view text, std::string& why);

template <>
std::optional<std::string> convert<std::string>(std::string_view text, std::string&) {
  return std::string(text);
}

template <>
std::optional<std::int64_t> convert<std::int64_t>(std::string_view text, std::string& why) {
  const std::string_view digits = strip_plus(text);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec == std::errc::result_out_of_range) {
    why = "integer out of range";
    return std::nullopt;
  }
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) {
    why = "not an integer";
    return std::nullopt;
  }
  return value;
}

template <>
std::optional<bool> convert<bool>(std::string_view text, std::string& why) {
  auto value = parse_bool(text);
  if (!value) why = "not a boolean (true or false)";
  return value;
}

template <>
std::optional<double> convert<double>(std::string_view text, std::string& why) {
  const std::string_view digits = strip_plus(text);
  double value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
      !std::isfinite(value)) {
    why = "not a number";
    return std::nullopt;
  }
  return value;
}

template <>
std::optional<microseconds> convert<microseconds>(std::string_view text, std::string& why) {
  return parse_duration(text, &why);
}

template <>
std::optional<ListenAddress> convert<ListenAddress>(std::string_view text, std::string& why) {
  return parse_listen_address(text, &why);
}

std::string format_double(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string default_text_of(const std::string& v) { return quote(v, std::string::npos); }
std::string default_text_of(std::int64_t v) { return std::to_string(v); }
std::string default_text_of(bool v) { return v ? "true" : "false"; }
std::string default_text_of(microseconds v) { return format_duration(v); }
std::string default_text_of(double v) { return format_double(v); }
std::string default_text_of(const ListenAddress& v) {
  return quote(format_listen_address(v), std::string::npos);
}

const char* kind_of(const std::string*) { return "string"; }
const char* kind_of(const std::int64_t*) { return "int"; }
const char* kind_of(const bool*) { return ""; }
const char* kind_of(const microseconds*) { return "duration"; }
const char* kind_of(const double*) { return "float"; }
const char* kind_of(const ListenAddress*) { return "host:port"; }

bool valid_flag_name(std::string_view name) {
  if (name.empty() || name.front() < 'a' || name.front() > 'z' || name.back() == '-') return false;
  if (name.find("--") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-'; });
}

}  // namespace

std::optional<std::string> process_env(std::string_view name) {
  const std::string key(name);
  const char* value = std::getenv(key.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::string env_var_name(std::string_view flag_name) {
  std::string out = "JETSTREAM_";
  for (const char c : flag_name) {
    if (c == '-') {
      out += '_';
    } else if (c >= 'a' && c <= 'z') {
      out += static_cast<char>(c - 'a' + 'A');
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<microseconds> parse_duration(std::string_view text, std::string* error) {
  const auto fail = [error](const char* why) -> std::optional<microseconds> {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  constexpr const char* kNotADuration = "not a duration (examples: 24h, 15s, 500ms, 1h30m)";
  constexpr std::uint64_t kMax =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

  std::string_view rest = text;
  bool negative = false;
  if (!rest.empty() && (rest.front() == '-' || rest.front() == '+')) {
    negative = rest.front() == '-';
    rest.remove_prefix(1);
  }
  if (rest == "0") return microseconds{0};
  if (rest.empty()) return fail(kNotADuration);

  std::uint64_t total_ns = 0;
  while (!rest.empty()) {
    // The number: digits, optionally '.' and more digits; at least one digit in all.
    std::uint64_t whole = 0;
    bool whole_digits = false;
    bool overflow = false;
    while (!rest.empty() && is_digit(rest.front())) {
      const auto digit = static_cast<std::uint64_t>(rest.front() - '0');
      if (whole > (kMax - digit) / 10) overflow = true;
      if (!overflow) whole = whole * 10 + digit;
      whole_digits = true;
      rest.remove_prefix(1);
    }
    std::uint64_t fraction = 0;
    std::uint64_t scale = 1;
    bool fraction_digits = false;
    if (!rest.empty() && rest.front() == '.') {
      rest.remove_prefix(1);
      while (!rest.empty() && is_digit(rest.front())) {
        if (scale <= 100'000'000'000'000'000ULL) {  // keep 18 digits; the rest are below 1 ns
          fraction = fraction * 10 + static_cast<std::uint64_t>(rest.front() - '0');
          scale *= 10;
        }
        fraction_digits = true;
        rest.remove_prefix(1);
      }
    }
    if (!whole_digits && !fraction_digits) return fail(kNotADuration);

    std::size_t unit_length = 0;
    while (unit_length < rest.size() && !is_digit(rest[unit_length]) && rest[unit_length] != '.') {
      ++unit_length;
    }
    const std::string_view unit = rest.substr(0, unit_length);
    rest.remove_prefix(unit_length);
    std::uint64_t unit_ns = 0;
    if (unit == "ns") {
      unit_ns = 1;
    } else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") {  // µs (U+00B5, U+03BC)
      unit_ns = 1'000;
    } else if (unit == "ms") {
      unit_ns = 1'000'000;
    } else if (unit == "s") {
      unit_ns = 1'000'000'000;
    } else if (unit == "m") {
      unit_ns = 60'000'000'000;
    } else if (unit == "h") {
      unit_ns = 3'600'000'000'000;
    } else if (unit == "d") {  // ours, not Go's: retention-style flags read better in days
      unit_ns = 86'400'000'000'000;
    } else if (unit.empty()) {
      return fail("missing unit in duration (d, h, m, s, ms, us)");
    } else {
      return fail("unknown unit in duration (d, h, m, s, ms, us)");
    }

    if (overflow || whole > kMax / unit_ns) return fail("duration out of range");
    std::uint64_t part = whole * unit_ns;
    if (fraction != 0) {
      part += static_cast<std::uint64_t>(static_cast<long double>(fraction) *
                                         static_cast<long double>(unit_ns) /
                                         static_cast<long double>(scale));
    }
    if (part > kMax - total_ns) return fail("duration out of range");
    total_ns += part;
  }
  if (negative && total_ns != 0) return fail("negative durations are not allowed");
  return microseconds{static_cast<std::int64_t>(total_ns / 1'000)};
}

std::string format_duration(microseconds value) {
  std::int64_t left = value.count();
  if (left == 0) return "0s";
  std::string out;
  if (left < 0) {
    out += '-';
    left = -left;
  }
  static constexpr std::pair<std::int64_t, const char*> kUnits[] = {
      {3'600'000'000, "h"}, {60'000'000, "m"}, {1'000'000, "s"}, {1'000, "ms"}, {1, "us"}};
  for (const auto& [size, name] : kUnits) {
    if (left >= size) {
      out += std::to_string(left / size);
      out += name;
      left %= size;
    }
  }
  return out;
}

FlagSet::FlagSet(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagSet::add(std::string name, Target target, std::string help) {
  if (!valid_flag_name(name) || name == "help" || name == "h") {
    throw std::logic_error("invalid flag name: " + quote(name));
  }
  if (find(name) != nullptr) throw std::logic_error("flag defined twice: --" + name);
  std::visit(
      [](auto* pointer) {
        if (pointer == nullptr) throw std::logic_error("flag target is null");
      },
      target);
  Flag flag;
  flag.env = env_var_name(name);
  flag.name = std::move(name);
  flag.help = std::move(help);
  flag.default_text = std::visit([](auto* pointer) { return default_text_of(*pointer); }, target);
  flag.target = target;
  flags_.push_back(std::move(flag));
}

void FlagSet::add_string(std::string name, std::string* target, std::string help) {
  add(std::move(name), target, std::move(help));
}
void FlagSet::add_int64(std::string name, std::int64_t* target, std::string help) {
  add(std::move(name), target, std::move(help));
}
void FlagSet::add_bool(std::string name, bool* target, std::string help) {
  add(std::move(name), target, std::move(help));
}
void FlagSet::add_duration(std::string name, microseconds* target, std::string help) {
  add(std::move(name), target, std::move(help));
}
void FlagSet::add_double(std::string name, double* target, std::string help) {
  add(std::move(name), target, std::move(help));
}
void FlagSet::add_listen_address(std::string name, ListenAddress* target, std::string help) {
  add(std::move(name), target, std::move(help));
}

const FlagSet::Flag* FlagSet::find(std::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

ParseOutcome FlagSet::parse(int argc, const char* const* argv, const EnvLookup& env) {
  using Value = std::variant<std::string, std::int64_t, bool, microseconds, double, ListenAddress>;
  static_assert(std::variant_size_v<Value> == std::variant_size_v<Target>);

  ParseOutcome outcome;
  const auto set_error = [&outcome](std::string message) {
    if (outcome.error.empty()) outcome.error = std::move(message);
  };

  // 1. The command line: which flags it sets (last one wins), positional arguments, help.
  std::vector<std::optional<std::string>> from_argv(flags_.size());
  bool help = false;
  bool flags_ended = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i] != nullptr ? argv[i] : "";
    if (flags_ended || arg.size() < 2 || arg.front() != '-') {
      outcome.positional.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    const std::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
    const std::size_t equals = body.find('=');
    const std::string_view name = body.substr(0, equals);
    if (name == "help" || name == "h") {
      help = true;
      continue;
    }
    const Flag* flag = find(name);
    if (flag == nullptr) {
      set_error("unknown flag " + quote(arg.substr(0, arg.size() - body.size() + name.size())));
      continue;
    }
    const auto index = static_cast<std::size_t>(flag - flags_.data());
    if (equals != std::string_view::npos) {
      from_argv[index] = std::string(body.substr(equals + 1));
    } else if (std::holds_alternative<bool*>(flag->target)) {
      from_argv[index] = "true";
    } else if (i + 1 < argc && argv[i + 1] != nullptr &&
               std::string_view(argv[i + 1]).substr(0, 2) != "--") {
      from_argv[index] = argv[++i];
    } else {
      set_error("flag --" + flag->name + " needs a value");
    }
  }
  if (help) {
    outcome.status = ParseOutcome::Status::kHelp;
    outcome.error.clear();
    return outcome;
  }

  // 2. Each flag's value: command line, else environment (unset or empty = absent), else keep
  // the default. Everything is converted before any target is written.
  std::vector<std::optional<Value>> values(flags_.size());
  for (std::size_t i = 0; i < flags_.size(); ++i) {
    const Flag& flag = flags_[i];
    std::optional<std::string> text = from_argv[i];
    bool from_env = false;
    if (!text) {
      text = env ? env(flag.env) : std::nullopt;
      if (!text || text->empty()) continue;
      from_env = true;
    }
    std::string why;
    values[i] = std::visit(
        [&](auto* pointer) -> std::optional<Value> {
          using T = std::remove_pointer_t<decltype(pointer)>;
          auto converted = convert<T>(*text, why);
          if (!converted) return std::nullopt;
          return Value(std::in_place_type<T>, std::move(*converted));
        },
        flag.target);
    if (!values[i]) {
      if (from_env) {
        set_error("invalid value " + quote(*text) + " in environment variable " + flag.env +
                  " (flag --" + flag.name + "): " + why);
      } else {
        set_error("invalid value " + quote(*text) + " for flag --" + flag.name + ": " + why);
      }
    }
  }
  if (!outcome.error.empty()) {
    outcome.status = ParseOutcome::Status::kError;
    return outcome;
  }

  // 3. Commit.
  for (std::size_t i = 0; i < flags_.size(); ++i) {
    if (!values[i]) continue;
    std::visit(
        [&](auto* pointer) {
          using T = std::remove_pointer_t<decltype(pointer)>;
          *pointer = std::get<T>(std::move(*values[i]));
        },
        flags_[i].target);
  }
  return outcome;
}

std::string FlagSet::help_text() const {
  struct Row {
    std::string left;
    std::string env;
    std::string help;
  };
  std::vector<Row> rows;
  rows.reserve(flags_.size() + 1);
  for (const Flag& flag : flags_) {
    std::string left = "--" + flag.name;
    const char* kind = std::visit([](auto* pointer) { return kind_of(pointer); }, flag.target);
    if (*kind != '\0') {
      left += ' ';
      left += kind;
    }
    rows.push_back({std::move(left), flag.env, flag.help + " (default " + flag.default_text + ")"});
  }
  rows.push_back({"-h, --help", "", "show this help and exit"});

  std::size_t left_width = 0;
  std::size_t env_width = 0;
  for (const Row& row : rows) {
    left_width = std::max(left_width, row.left.size());
    env_width = std::max(env_width, row.env.size());
  }

  std::string out = "Usage: " + program_ + " [flags]";
  if (!positional_usage_.empty()) out += " " + positional_usage_;
  out += "\n\n";
  if (!summary_.empty()) out += summary_ + "\n\n";
  out += "Flags (command line > environment > default):\n";
  const std::string continuation(2 + left_width + 2 + env_width + 2, ' ');
  for (const Row& row : rows) {
    std::string line = "  " + row.left + std::string(left_width - row.left.size() + 2, ' ') +
                       row.env + std::string(env_width - row.env.size() + 2, ' ');
    for (const char c : row.help) {
      line += c;
      if (c == '\n') line += continuation;
    }
    out += line + "\n";
  }
  return out;
}

void FlagSet::set_positional_usage(std::string usage) { positional_usage_ = std::move(usage); }

std::optional<int> FlagSet::report(const ParseOutcome& outcome, std::ostream& out,
                                   std::ostream& err) const {
  switch (outcome.status) {
    case ParseOutcome::Status::kOk: return std::nullopt;
    case ParseOutcome::Status::kHelp: out << help_text(); return 0;
    case ParseOutcome::Status::kError:
      err << program_ << ": " << outcome.error << "\n"
          << "Run '" << program_ << " --help' for the list of flags.\n";
      return 2;
  }
  return 2;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return items;
}

}  // namespace jetstream::config
