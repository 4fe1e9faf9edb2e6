#include "common/metrics/process_metrics.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <prometheus/gauge.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <memory>
#include <optional>
#include <string>

#include "common/metrics/exposition.hpp"

#ifndef JETSTREAM_VERSION
// CMake defines it from the project version; a build outside CMake still compiles.
#define JETSTREAM_VERSION "0.0.0-unknown"
#endif

namespace jetstream::metrics {
namespace {

std::optional<std::string> read_small_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
    if (out.size() > (1u << 20)) break;  // /proc/self/stat is ~300 bytes, /proc/stat a few KB
  }
  ::close(fd);
  return out;
}

std::optional<double> to_number(std::string_view text) {
  unsigned long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return static_cast<double>(value);
}

/// Fields of /proc/self/stat after the command name, so `fields[i]` is stat field i + 3
/// (proc(5) numbering): utime is field 14, i.e. fields[11].
std::vector<std::string_view> stat_fields(std::string_view stat) {
  std::vector<std::string_view> fields;
  const std::size_t close = stat.rfind(')');  // the command name may hold spaces and ')'
  if (close == std::string_view::npos) return fields;
  std::string_view rest = stat.substr(close + 1);
  while (!rest.empty()) {
    const std::size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const std::size_t end = rest.find_first_of(" \n");
    fields.push_back(rest.substr(0, end));
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  return fields;
}

std::optional<double> boot_time_seconds() {
  const auto stat = read_small_file("/proc/stat");
  if (!stat) return std::nullopt;
  const std::string_view text = *stat;
  const std::size_t at = text.find("\nbtime ");
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view rest = text.substr(at + 7);
  return to_number(rest.substr(0, rest.find('\n')));
}

std::optional<double> open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const int own = ::dirfd(dir);
  double count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (name == std::to_string(own)) continue;  // the descriptor doing the listing
    ++count;
  }
  ::closedir(dir);
  return count;
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily out;
  out.name = std::move(name);
  out.help = std::move(help);
  out.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  out.metric.push_back(std::move(metric));
  return out;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page_size = static_cast<double>(::sysconf(_SC_PAGESIZE));

  if (const auto stat = read_small_file("/proc/self/stat")) {
    const auto fields = stat_fields(*stat);
    if (fields.size() > 21 && ticks > 0) {
      const auto utime = to_number(fields[11]);
      const auto stime = to_number(fields[12]);
      const auto start = to_number(fields[19]);
      const auto virtual_bytes = to_number(fields[20]);
      const auto resident_pages = to_number(fields[21]);
      if (utime && stime) {
        out.push_back(family("process_cpu_seconds_total",
                             "Total user and system CPU time spent in seconds.",
                             MetricType::Counter, (*utime + *stime) / ticks));
      }
      if (virtual_bytes) {
        out.push_back(family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                             MetricType::Gauge, *virtual_bytes));
      }
      if (resident_pages) {
        out.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.",
                             MetricType::Gauge, *resident_pages * page_size));
      }
      if (start) {
        if (const auto boot = boot_time_seconds()) {
          out.push_back(family("process_start_time_seconds",
                               "Start time of the process since unix epoch in seconds.",
                               MetricType::Gauge, *boot + *start / ticks));
        }
      }
    }
  }
  if (const auto fds = open_fds()) {
    out.push_back(
        family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, *fds));
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.push_back(family("process_max_fds", "Maximum number of open file descriptors.",
                         MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return out;
}

void register_process_metrics(prometheus::Registry& registry) {
  for (const auto& collectable : attached_collectables(registry)) {
    if (dynamic_cast<const ProcessCollector*>(collectable.get()) != nullptr) return;
  }
  attach_collectable(registry, std::make_shared<ProcessCollector>());
}

std::string_view version() { return JETSTREAM_VERSION; }

void register_build_info(prometheus::Registry& registry, std::string_view service,
                         std::string_view version) {
  prometheus::BuildGauge()
      .Name("jetstream_build_info")
      .Help("Always 1; its labels name the service and the version it was built from.")
      .Register(registry)
      .Add({{"service", std::string(service)}, {"version", std::string(version)}})
      .Set(1);
}

}  // namespace jetstream::metrics
