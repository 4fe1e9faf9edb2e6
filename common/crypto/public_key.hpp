// atproto signing keys (P-256 and secp256k1) and the check of a signature made with one.
//
// Keys arrive as `did:key` strings or multikey text from DID documents written by strangers:
// parsing returns an error for anything that is not a valid compressed point on its curve. A
// parsed key is immutable and ready to verify (its curve library's form is built once), so one
// key is shared by every thread that checks commits of its DID.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/codec/bytes.hpp"
#include "common/codec/sha256.hpp"

namespace jetstream::crypto {

enum class Curve : std::uint8_t {
  p256,  ///< NIST P-256 (ES256); multicodec p256-pub 0x1200
  k256,  ///< secp256k1 (ES256K); multicodec secp256k1-pub 0xe7
};
std::string_view to_string(Curve curve);

enum class KeyError : std::uint8_t {
  not_did_key,       ///< a did:key string that does not start with "did:key:z"
  bad_multibase,     ///< not a base58btc ("z") multibase string
  unknown_key_type,  ///< a multicodec prefix other than p256-pub and secp256k1-pub
  bad_point,         ///< not a 33-byte compressed point on the curve
};
std::string_view to_string(KeyError error);

/// What a signature check found. Only `valid` passes.
enum class SignatureCheck : std::uint8_t {
  valid,
  wrong_length,  ///< not 64 bytes of r‖s (a DER-encoded signature is invalid in atproto)
  out_of_range,  ///< r or s is zero or not below the curve order
  high_s,        ///< s above half the order: malleable, rejected by atproto though the math holds
  mismatch,      ///< well-formed, but not made by this key over this message
};
std::string_view to_string(SignatureCheck check);

class PublicKey {
 public:
  static constexpr std::size_t kCompressedBytes = 33;
  static constexpr std::size_t kSignatureBytes = 64;

  /// "did:key:z…" (multikey with its multicodec prefix).
  static std::variant<PublicKey, KeyError> from_did_key(std::string_view did_key);
  /// A `Multikey` verification method's `publicKeyMultibase`: "z" + base58btc(multicodec ‖ point).
  static std::variant<PublicKey, KeyError> from_multikey(std::string_view multibase);
  /// The legacy verification method types (EcdsaSecp256r1VerificationKey2019 and
  /// EcdsaSecp256k1VerificationKey2019): "z" + base58btc(point), the curve named by the type.
  static std::variant<PublicKey, KeyError> from_legacy_multibase(Curve curve,
                                                                 std::string_view multibase);
  /// A compressed point (0x02/0x03 ‖ x).
  static std::variant<PublicKey, KeyError> from_compressed(Curve curve, byte_view point);

  Curve curve() const { return curve_; }
  const std::array<std::uint8_t, kCompressedBytes>& compressed() const { return compressed_; }
  /// "did:key:z…", the key's canonical text form.
  std::string did_key() const;

  /// Checks a 64-byte r‖s signature over SHA-256(`message`), low-S only.
  SignatureCheck verify(byte_view message, byte_view signature) const;
  SignatureCheck verify_digest(const codec::Sha256Digest& digest, byte_view signature) const;

  bool operator==(const PublicKey& other) const {
    return curve_ == other.curve_ && compressed_ == other.compressed_;
  }

 private:
  struct Prepared;  ///< the curve library's parsed form of the point
  PublicKey(Curve curve, const std::array<std::uint8_t, kCompressedBytes>& compressed,
            std::shared_ptr<const Prepared> prepared);

  Curve curve_;
  std::array<std::uint8_t, kCompressedBytes> compressed_;
  std::shared_ptr<const Prepared> prepared_;
};

}  // namespace jetstream::crypto
