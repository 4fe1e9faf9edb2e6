#include "common/crypto/public_key.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <secp256k1.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/codec/multibase.hpp"

namespace jetstream::crypto {

std::string_view to_string(Curve curve) {
  switch (curve) {
    case Curve::p256: return "p256";
    case Curve::k256: return "k256";
  }
  return "unknown";
}

std::string_view to_string(KeyError error) {
  switch (error) {
    case KeyError::not_did_key: return "not_did_key";
    case KeyError::bad_multibase: return "bad_multibase";
    case KeyError::unknown_key_type: return "unknown_key_type";
    case KeyError::bad_point: return "bad_point";
  }
  return "unknown";
}

std::string_view to_string(SignatureCheck check) {
  switch (check) {
    case SignatureCheck::valid: return "valid";
    case SignatureCheck::wrong_length: return "wrong_length";
    case SignatureCheck::out_of_range: return "out_of_range";
    case SignatureCheck::high_s: return "high_s";
    case SignatureCheck::mismatch: return "mismatch";
  }
  return "unknown";
}

namespace {

using Scalar = std::array<std::uint8_t, 32>;  // big-endian

// The group orders n, and n/2 rounded down: a low-S signature has s <= n/2.
constexpr Scalar kP256Order = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
                               0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
constexpr Scalar kP256HalfOrder = {0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b,
                                   0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};
constexpr Scalar kK256Order = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                               0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
constexpr Scalar kK256HalfOrder = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4,
                                   0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};

// Multicodec varints of the two key types (p256-pub 0x1200, secp256k1-pub 0xe7).
constexpr std::array<std::uint8_t, 2> kP256Codec = {0x80, 0x24};
constexpr std::array<std::uint8_t, 2> kK256Codec = {0xe7, 0x01};

/// Big-endian comparison of a 32-byte scalar with a constant: <0, 0 or >0.
int compare(byte_view a, const Scalar& b) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

bool is_zero(byte_view a) {
  return std::all_of(a.begin(), a.end(), [](std::uint8_t b) { return b == 0; });
}

[[noreturn]] void crypto_library_broken(const char* what) {
  // Not untrusted input: the curve library itself failed. Nothing it says can be trusted.
  std::fprintf(stderr, "fatal: %s\n", what);
  std::abort();
}

const secp256k1_context* k256_context() {
  // Created once: verification only reads it, from any thread (libsecp256k1's contract).
  static secp256k1_context* const context = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  if (context == nullptr) crypto_library_broken("secp256k1_context_create failed");
  return context;
}

}  // namespace

struct PublicKey::Prepared {
  secp256k1_pubkey k256{};
  EVP_PKEY* p256 = nullptr;  // shared read-only: OpenSSL allows concurrent verifies with one key

  Prepared() = default;
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;
  ~Prepared() { EVP_PKEY_free(p256); }
};

PublicKey::PublicKey(Curve curve, const std::array<std::uint8_t, kCompressedBytes>& compressed,
                     std::shared_ptr<const Prepared> prepared)
    : curve_(curve), compressed_(compressed), prepared_(std::move(prepared)) {}

std::variant<PublicKey, KeyError> PublicKey::from_compressed(Curve curve, byte_view point) {
  if (point.size() != kCompressedBytes || (point[0] != 0x02 && point[0] != 0x03)) {
    return KeyError::bad_point;
  }
  std::array<std::uint8_t, kCompressedBytes> compressed{};
  std::copy(point.begin(), point.end(), compressed.begin());
  auto prepared = std::make_shared<Prepared>();
  if (curve == Curve::k256) {
    if (secp256k1_ec_pubkey_parse(k256_context(), &prepared->k256, compressed.data(),
                                  compressed.size()) != 1) {
      return KeyError::bad_point;
    }
  } else {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                         const_cast<char*>("prime256v1"), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, compressed.data(),
                                          compressed.size()),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    if (context == nullptr) crypto_library_broken("EVP_PKEY_CTX_new_from_name(EC) failed");
    EVP_PKEY* key = nullptr;
    const bool built = EVP_PKEY_fromdata_init(context) == 1 &&
                       EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
    EVP_PKEY_CTX_free(context);
    if (!built) return KeyError::bad_point;
    prepared->p256 = key;
    // fromdata decompresses x; the check makes sure the point is on the curve and not infinity.
    EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr);
    if (check == nullptr) crypto_library_broken("EVP_PKEY_CTX_new_from_pkey failed");
    const bool on_curve = EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!on_curve) return KeyError::bad_point;
  }
  return PublicKey(curve, compressed, std::move(prepared));
}

std::variant<PublicKey, KeyError> PublicKey::from_multikey(std::string_view multibase) {
  if (multibase.empty() || multibase.front() != 'z') return KeyError::bad_multibase;
  const auto bytes = codec::decode_base58btc(multibase.substr(1), 96);
  if (!bytes) return KeyError::bad_multibase;
  if (bytes->size() < 2) return KeyError::unknown_key_type;
  const byte_view prefix(bytes->data(), 2);
  const byte_view point(bytes->data() + 2, bytes->size() - 2);
  if (std::equal(prefix.begin(), prefix.end(), kP256Codec.begin())) {
    return from_compressed(Curve::p256, point);
  }
  if (std::equal(prefix.begin(), prefix.end(), kK256Codec.begin())) {
    return from_compressed(Curve::k256, point);
  }
  return KeyError::unknown_key_type;
}

std::variant<PublicKey, KeyError> PublicKey::from_did_key(std::string_view did_key) {
  constexpr std::string_view kPrefix = "did:key:";
  if (did_key.substr(0, kPrefix.size()) != kPrefix) return KeyError::not_did_key;
  return from_multikey(did_key.substr(kPrefix.size()));
}

namespace {

/// Whether a 65-byte uncompressed point (0x04 ‖ x ‖ y) lies on `curve`.
bool uncompressed_point_on_curve(Curve curve, byte_view point) {
  if (curve == Curve::k256) {
    secp256k1_pubkey parsed;
    return secp256k1_ec_pubkey_parse(k256_context(), &parsed, point.data(), point.size()) == 1;
  }
  std::vector<std::uint8_t> copy(point.begin(), point.end());
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("prime256v1"),
                                       0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, copy.data(), copy.size()),
      OSSL_PARAM_construct_end(),
  };
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  if (context == nullptr) crypto_library_broken("EVP_PKEY_CTX_new_from_name(EC) failed");
  EVP_PKEY* key = nullptr;
  bool on_curve = EVP_PKEY_fromdata_init(context) == 1 &&
                  EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(context);
  if (on_curve) {
    EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr);
    if (check == nullptr) crypto_library_broken("EVP_PKEY_CTX_new_from_pkey failed");
    on_curve = EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
  }
  EVP_PKEY_free(key);
  return on_curve;
}

}  // namespace

std::variant<PublicKey, KeyError> PublicKey::from_legacy_multibase(Curve curve,
                                                                   std::string_view multibase) {
  if (multibase.empty() || multibase.front() != 'z') return KeyError::bad_multibase;
  const auto bytes = codec::decode_base58btc(multibase.substr(1), 96);
  if (!bytes) return KeyError::bad_multibase;
  // The PLC directory writes legacy methods with the uncompressed point (did-method-plc formats
  // @atproto/crypto's decompressed key bytes); the interop fixtures use the compressed one.
  if (bytes->size() == 65 && (*bytes)[0] == 0x04) {
    if (!uncompressed_point_on_curve(curve, *bytes)) return KeyError::bad_point;
    std::array<std::uint8_t, kCompressedBytes> compressed{};
    compressed[0] = ((*bytes)[64] & 1) != 0 ? 0x03 : 0x02;
    std::copy(bytes->begin() + 1, bytes->begin() + 33, compressed.begin() + 1);
    return from_compressed(curve, compressed);
  }
  return from_compressed(curve, *bytes);
}

std::string PublicKey::did_key() const {
  std::vector<std::uint8_t> bytes;
  const auto& codec = curve_ == Curve::p256 ? kP256Codec : kK256Codec;
  bytes.insert(bytes.end(), codec.begin(), codec.end());
  bytes.insert(bytes.end(), compressed_.begin(), compressed_.end());
  std::string out = "did:key:z";
  codec::append_base58btc(out, bytes);
  return out;
}

SignatureCheck PublicKey::verify(byte_view message, byte_view signature) const {
  return verify_digest(codec::sha256(message), signature);
}

SignatureCheck PublicKey::verify_digest(const codec::Sha256Digest& digest,
                                        byte_view signature) const {
  if (signature.size() != kSignatureBytes) return SignatureCheck::wrong_length;
  const byte_view r = signature.first(32);
  const byte_view s = signature.last(32);
  const Scalar& order = curve_ == Curve::p256 ? kP256Order : kK256Order;
  const Scalar& half_order = curve_ == Curve::p256 ? kP256HalfOrder : kK256HalfOrder;
  if (is_zero(r) || is_zero(s) || compare(r, order) >= 0 || compare(s, order) >= 0) {
    return SignatureCheck::out_of_range;
  }
  if (compare(s, half_order) > 0) return SignatureCheck::high_s;

  if (curve_ == Curve::k256) {
    secp256k1_ecdsa_signature parsed;
    if (secp256k1_ecdsa_signature_parse_compact(k256_context(), &parsed, signature.data()) != 1) {
      return SignatureCheck::out_of_range;
    }
    return secp256k1_ecdsa_verify(k256_context(), &parsed, digest.data(), &prepared_->k256) == 1
               ? SignatureCheck::valid
               : SignatureCheck::mismatch;
  }

  // OpenSSL verifies DER: wrap r and s (already range-checked) in an ECDSA_SIG.
  ECDSA_SIG* parsed = ECDSA_SIG_new();
  BIGNUM* r_number = BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr);
  BIGNUM* s_number = BN_bin2bn(s.data(), static_cast<int>(s.size()), nullptr);
  if (parsed == nullptr || r_number == nullptr || s_number == nullptr ||
      ECDSA_SIG_set0(parsed, r_number, s_number) != 1) {
    crypto_library_broken("ECDSA_SIG allocation failed");
  }
  std::array<std::uint8_t, 80> der{};  // 2 × (2 + 33) + 2 bytes at most
  std::uint8_t* der_end = der.data();
  const int der_size = i2d_ECDSA_SIG(parsed, &der_end);
  ECDSA_SIG_free(parsed);
  if (der_size <= 0 || static_cast<std::size_t>(der_size) > der.size()) {
    crypto_library_broken("i2d_ECDSA_SIG failed");
  }
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_pkey(nullptr, prepared_->p256, nullptr);
  if (context == nullptr || EVP_PKEY_verify_init(context) != 1) {
    crypto_library_broken("EVP_PKEY_verify_init failed");
  }
  const int result = EVP_PKEY_verify(context, der.data(), static_cast<std::size_t>(der_size),
                                     digest.data(), digest.size());
  EVP_PKEY_CTX_free(context);
  return result == 1 ? SignatureCheck::valid : SignatureCheck::mismatch;
}

}  // namespace jetstream::crypto
