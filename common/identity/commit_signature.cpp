#include "common/identity/commit_signature.hpp"

#include "common/codec/dag_cbor_writer.hpp"

namespace jetstream::identity {

std::string_view to_string(CommitSignature result) {
  switch (result) {
    case CommitSignature::valid: return "valid";
    case CommitSignature::bad_commit: return "bad_commit";
    case CommitSignature::wrong_repo: return "wrong_repo";
    case CommitSignature::wrong_rev: return "wrong_rev";
    case CommitSignature::bad_signature: return "bad_signature";
  }
  return "unknown";
}

CommitSignature CommitSignatureChecker::check(byte_view block, std::string_view repo,
                                              std::string_view rev, const crypto::PublicKey& key,
                                              crypto::SignatureCheck* signature_check) {
  if (document_.parse(block, codec::CborLimits{}) ||
      document_.root().kind != codec::CborKind::map) {
    return CommitSignature::bad_commit;
  }
  const auto did_node = document_.find(0, "did");
  const auto rev_node = document_.find(0, "rev");
  const auto version_node = document_.find(0, "version");
  const auto sig_node = document_.find(0, "sig");
  if (!did_node || !rev_node || !version_node || !sig_node ||
      document_.node(*did_node).kind != codec::CborKind::text ||
      document_.node(*rev_node).kind != codec::CborKind::text ||
      document_.node(*version_node).kind != codec::CborKind::unsigned_integer ||
      (document_.node(*version_node).integer != 3 && document_.node(*version_node).integer != 2) ||
      document_.node(*sig_node).kind != codec::CborKind::bytes) {
    return CommitSignature::bad_commit;
  }
  if (document_.node(*did_node).text() != repo) return CommitSignature::wrong_repo;
  if (document_.node(*rev_node).text() != rev) return CommitSignature::wrong_rev;
  unsigned_bytes_.clear();
  codec::append_canonical_cbor(document_, 0, unsigned_bytes_, "sig");
  const crypto::SignatureCheck result =
      key.verify(unsigned_bytes_, document_.node(*sig_node).bytes());
  if (signature_check != nullptr) *signature_check = result;
  return result == crypto::SignatureCheck::valid ? CommitSignature::valid
                                                 : CommitSignature::bad_signature;
}

}  // namespace jetstream::identity
