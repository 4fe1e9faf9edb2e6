// The signature of an atproto repository commit: `sig` over the canonical DAG-CBOR of the commit
// object without `sig`, by the `#atproto` key of the repository's DID.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/dag_cbor.hpp"
#include "common/crypto/public_key.hpp"

namespace jetstream::identity {

enum class CommitSignature : std::uint8_t {
  valid,
  bad_commit,     ///< not a commit object {did, version: 2 or 3, rev, sig: bytes, ...}
  wrong_repo,     ///< signed for another DID than the repository it arrived as
  wrong_rev,      ///< signed with another rev than the one the frame carries
  bad_signature,  ///< `sig` is not a valid low-S signature by the key over the unsigned bytes
};
std::string_view to_string(CommitSignature result);

/// Checks commit blocks. Holds reusable parse and encode buffers: one instance per thread.
class CommitSignatureChecker {
 public:
  /// Checks the commit object `block` of repository `repo` at revision `rev` against `key`;
  /// `signature_check` (when given) receives the curve check's own verdict for bad_signature.
  CommitSignature check(byte_view block, std::string_view repo, std::string_view rev,
                        const crypto::PublicKey& key,
                        crypto::SignatureCheck* signature_check = nullptr);

 private:
  codec::CborDocument document_;
  std::vector<std::uint8_t> unsigned_bytes_;
};

}  // namespace jetstream::identity
