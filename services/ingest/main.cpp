#include "services/ingest/ingest_service.hpp"

int main(int argc, char** argv) { return jetstream::ingest::run_ingest(argc, argv); }
