#include "services/fanout/fanout_service.hpp"

int main(int argc, char** argv) { return jetstream::fanout::run_fanout(argc, argv); }
