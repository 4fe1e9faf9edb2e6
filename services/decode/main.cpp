#include "services/decode/decode_service.hpp"

int main(int argc, char** argv) { return jetstream::decode::run_decode(argc, argv); }
