// Every wire contract between ingest, decode and fanout. proto/README.md is the written spec.
#pragma once

#include "proto/backfill.hpp"  // IWYU pragma: export
#include "proto/events.hpp"    // IWYU pragma: export
#include "proto/ingest.hpp"    // IWYU pragma: export
#include "proto/replay.hpp"    // IWYU pragma: export
#include "proto/wire.hpp"      // IWYU pragma: export
