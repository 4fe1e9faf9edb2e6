# Finds every third-party dependency from Debian 12 packages (see scripts/install-deps.sh).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED) # cppzmq's config needs it
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)
find_package(zstd CONFIG REQUIRED)
find_package(RapidJSON CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
if(JETSTREAM_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()

# RapidJSON's config exports no target; wrap its include dir so targets can link it by name.
if(NOT TARGET jetstream_rapidjson)
  add_library(jetstream_rapidjson INTERFACE)
  target_include_directories(jetstream_rapidjson SYSTEM INTERFACE ${RAPIDJSON_INCLUDE_DIRS})
  target_compile_definitions(jetstream_rapidjson INTERFACE RAPIDJSON_HAS_STDSTRING=1)
endif()

# Service dependencies are optional at configure time only so the codec core can be built alone;
# scripts/install-deps.sh always installs them.
find_package(cppzmq CONFIG QUIET)
find_package(prometheus-cpp CONFIG QUIET)
find_package(RocksDB CONFIG QUIET)
find_package(Boost 1.74 QUIET COMPONENTS system)

# CAF 0.17 (Debian's libcaf-dev) ships neither a CMake config nor a pkg-config file: build
# imported targets by hand, with the names CAF >= 0.18 exports, so an upgrade changes nothing here.
find_path(CAF_INCLUDE_DIR caf/all.hpp)
find_library(CAF_CORE_LIBRARY caf_core)
find_library(CAF_IO_LIBRARY caf_io)
if(CAF_INCLUDE_DIR AND CAF_CORE_LIBRARY AND NOT TARGET CAF::core)
  add_library(CAF::core SHARED IMPORTED)
  set_target_properties(CAF::core PROPERTIES
    IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  if(CAF_IO_LIBRARY)
    add_library(CAF::io SHARED IMPORTED)
    set_target_properties(CAF::io PROPERTIES
      IMPORTED_LOCATION "${CAF_IO_LIBRARY}" INTERFACE_LINK_LIBRARIES CAF::core)
  endif()
endif()
