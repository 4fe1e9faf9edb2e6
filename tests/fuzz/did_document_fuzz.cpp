// Fuzzes what strangers write into identities: DID documents (JSON), did:key and multikey text,
// DID strings turned into document URLs. Any crash, hang or sanitizer report is a bug, and a key
// that parses must round-trip through its did:key form.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "common/crypto/public_key.hpp"
#include "common/identity/did_document.hpp"

namespace {

void check_key(const std::variant<jetstream::crypto::PublicKey, jetstream::crypto::KeyError>& key) {
  const auto* parsed = std::get_if<jetstream::crypto::PublicKey>(&key);
  if (parsed == nullptr) return;
  const auto again = jetstream::crypto::PublicKey::from_did_key(parsed->did_key());
  const auto* reparsed = std::get_if<jetstream::crypto::PublicKey>(&again);
  if (reparsed == nullptr || !(*reparsed == *parsed)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kDid = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
  const auto document = jetstream::identity::parse_did_document(kDid, text);
  if (const auto* parsed = std::get_if<jetstream::identity::DidDocument>(&document)) {
    if (parsed->did != kDid) std::abort();
    if (parsed->signing_key && parsed->signing_key_error) std::abort();
  }
  if (size <= 256) {
    check_key(jetstream::crypto::PublicKey::from_did_key(text));
    check_key(jetstream::crypto::PublicKey::from_multikey(text));
    check_key(
        jetstream::crypto::PublicKey::from_legacy_multibase(jetstream::crypto::Curve::k256, text));
    (void)jetstream::identity::locate_did_document(text, "https://plc.directory", size % 2 == 0);
  }
  return 0;
}
