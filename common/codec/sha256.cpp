#include "common/codec/sha256.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

namespace jetstream::codec {

Sha256Digest sha256(byte_view data) {
  Sha256Digest digest{};
  unsigned int length = 0;
  // EVP_Digest with a fetched-once algorithm avoids a per-call provider lookup.
  static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (algorithm == nullptr ||
      EVP_Digest(data.data(), data.size(), digest.data(), &length, algorithm, nullptr) != 1 ||
      length != digest.size()) {
    // Not untrusted input: libcrypto itself is broken. Nothing downstream can be trusted.
    std::fputs("fatal: OpenSSL SHA-256 unavailable\n", stderr);
    std::abort();
  }
  return digest;
}

}  // namespace jetstream::codec
