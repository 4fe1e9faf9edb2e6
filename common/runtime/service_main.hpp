// The life of a service process, shared by jetstream-ingest, -decode and -fanout: parse flags
// (help → exit 0, a bad flag → message and exit 2), set up logging, route SIGINT/SIGTERM to one
// waiting thread, start, wait for the signal, stop cleanly.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/config/flags.hpp"

namespace jetstream::runtime {

/// Keeps memory the process frees in glibc's heaps for the next allocation instead of returning
/// it to the kernel at once: a service that receives, decodes and stores a stream at full speed
/// frees and reallocates the same megabytes every second (ZeroMQ receive buffers freed by the
/// workers, RocksDB memtable arenas), and each page handed back costs a page fault and a zeroed
/// page when it is taken again. Memory above `keep_bytes` is still returned. Measured in decode
/// (docs/decisions.md "Allocator").
void keep_freed_memory(std::size_t keep_bytes);

/// `start` builds the service (returning false with `error` set when it cannot) and `stop` ends
/// it. `log_level` is read after the flags are parsed (pass the option it is parsed into).
/// Returns the process exit code: 0 after a clean stop, 1 when the service failed to start,
/// 2 for bad flags.
int run_service(int argc, char** argv, config::FlagSet& flags, std::string_view service_name,
                const std::string& log_level, const std::function<bool(std::string& error)>& start,
                const std::function<void()>& stop);

/// The usual case: `Service::start(options, error)` returns a `std::unique_ptr<Service>` (null
/// with `error` set when it cannot start) and `stop()` ends it; `options.log_level` holds the
/// parsed --log-level.
template <class Service, class Options>
int run_service(int argc, char** argv, config::FlagSet& flags, std::string_view service_name,
                const Options& options) {
  std::unique_ptr<Service> service;
  return run_service(
      argc, argv, flags, service_name, options.log_level,
      [&](std::string& error) {
        service = Service::start(options, error);
        return service != nullptr;
      },
      [&] { service->stop(); });
}

}  // namespace jetstream::runtime
