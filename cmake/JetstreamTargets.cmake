# The one helper every folder uses: a library with the shared warning flags, plus its tests.
#
#   jetstream_library(NAME <name> SOURCES ... [DEPS ...] [PRIVATE_DEPS ...])
#   jetstream_test(NAME <name> SOURCES ... [DEPS ...] [LABELS ...])
#   jetstream_executable(NAME <name> SOURCES ... [DEPS ...])
#
# Test binaries are GoogleTest executables whose cases are registered one by one with CTest,
# so `ctest -R` selects single contracts and the output names the contract that failed.

set(JETSTREAM_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)
if(JETSTREAM_WERROR)
  list(APPEND JETSTREAM_WARNING_FLAGS -Werror)
endif()

if(JETSTREAM_SANITIZE)
  # CAF 0.17's init_fun_factory binds a reference through a null pointer in its own header, so the
  # null check is left out (research/cpp-stack.md, pitfall 15); everything else is on and fatal.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize=null -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(JETSTREAM_FUZZ)
  # Coverage instrumentation for every library the fuzz targets link, so libFuzzer is guided by
  # the decoder's branches and not only by the target's own few lines.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

function(jetstream_apply_flags target)
  target_compile_options(${target} PRIVATE ${JETSTREAM_WARNING_FLAGS})
endfunction()

function(jetstream_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SOURCES})
  target_include_directories(${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  jetstream_apply_flags(${ARG_NAME})
endfunction()

function(jetstream_executable)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  jetstream_apply_flags(${ARG_NAME})
endfunction()

function(jetstream_test)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest_main GTest::gmock)
  target_compile_definitions(${ARG_NAME} PRIVATE
    JETSTREAM_SHARED_DIR="${JETSTREAM_SHARED_DIR}"
    JETSTREAM_BINARY_DIR="${PROJECT_BINARY_DIR}")
  jetstream_apply_flags(${ARG_NAME})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" DISCOVERY_TIMEOUT 60)
endfunction()
