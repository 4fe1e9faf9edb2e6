#include "services/backfill/backfill_service.hpp"

int main(int argc, char** argv) { return jetstream::backfill::run_backfill(argc, argv); }
