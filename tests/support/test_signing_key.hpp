// Test-only signing keys for both atproto curves: tests sign commits (valid, high-S, by the wrong
// key) to check what --verify accepts. Production code never signs.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <secp256k1.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/codec/sha256.hpp"
#include "common/crypto/public_key.hpp"
#include "tests/support/cbor_builder.hpp"

namespace jetstream::testing {

class TestSigningKey {
 public:
  /// A key from its 32-byte private scalar.
  TestSigningKey(crypto::Curve curve, const std::array<std::uint8_t, 32>& secret)
      : curve_(curve), secret_(secret) {}

  /// A key derived deterministically from `seed` (tests want stable DIDs and keys).
  static TestSigningKey from_seed(crypto::Curve curve, std::uint32_t seed) {
    std::array<std::uint8_t, 4> seed_bytes = {
        static_cast<std::uint8_t>(seed >> 24), static_cast<std::uint8_t>(seed >> 16),
        static_cast<std::uint8_t>(seed >> 8), static_cast<std::uint8_t>(seed)};
    const auto digest = codec::sha256(seed_bytes);
    std::array<std::uint8_t, 32> secret{};
    std::copy(digest.begin(), digest.end(), secret.begin());
    return TestSigningKey(curve, secret);
  }

  crypto::Curve curve() const { return curve_; }

  /// The compressed public point.
  std::vector<std::uint8_t> compressed_public() const {
    if (curve_ == crypto::Curve::k256) {
      secp256k1_pubkey key;
      if (secp256k1_ec_pubkey_create(k256(), &key, secret_.data()) != 1) {
        throw std::runtime_error("bad secp256k1 secret");
      }
      std::vector<std::uint8_t> out(33);
      std::size_t size = out.size();
      secp256k1_ec_pubkey_serialize(k256(), out.data(), &size, &key, SECP256K1_EC_COMPRESSED);
      return out;
    }
    EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BIGNUM* scalar = BN_bin2bn(secret_.data(), 32, nullptr);
    EC_POINT* point = EC_POINT_new(group);
    EC_POINT_mul(group, point, scalar, nullptr, nullptr, nullptr);
    std::vector<std::uint8_t> out(33);
    EC_POINT_point2oct(group, point, POINT_CONVERSION_COMPRESSED, out.data(), out.size(), nullptr);
    EC_POINT_free(point);
    BN_free(scalar);
    EC_GROUP_free(group);
    return out;
  }

  /// The uncompressed public point (0x04 ‖ x ‖ y).
  std::vector<std::uint8_t> uncompressed_public() const {
    const std::vector<std::uint8_t> compressed = compressed_public();
    std::vector<std::uint8_t> out(65);
    if (curve_ == crypto::Curve::k256) {
      secp256k1_pubkey key;
      if (secp256k1_ec_pubkey_parse(k256(), &key, compressed.data(), compressed.size()) != 1) {
        throw std::runtime_error("bad secp256k1 point");
      }
      std::size_t size = out.size();
      secp256k1_ec_pubkey_serialize(k256(), out.data(), &size, &key, SECP256K1_EC_UNCOMPRESSED);
      return out;
    }
    EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT* point = EC_POINT_new(group);
    EC_POINT_oct2point(group, point, compressed.data(), compressed.size(), nullptr);
    EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, out.data(), out.size(),
                       nullptr);
    EC_POINT_free(point);
    EC_GROUP_free(group);
    return out;
  }

  crypto::PublicKey public_key() const {
    auto parsed = crypto::PublicKey::from_compressed(curve_, compressed_public());
    return std::get<crypto::PublicKey>(parsed);
  }
  std::string did_key() const { return public_key().did_key(); }

  /// A low-S r‖s signature over SHA-256(message), as atproto requires.
  std::vector<std::uint8_t> sign(const std::vector<std::uint8_t>& message) const {
    return sign_digest(codec::sha256(message), false);
  }
  /// The same signature with s replaced by n − s: valid curve math, invalid in atproto.
  std::vector<std::uint8_t> sign_high_s(const std::vector<std::uint8_t>& message) const {
    return sign_digest(codec::sha256(message), true);
  }

 private:
  static const secp256k1_context* k256() {
    static secp256k1_context* const context = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    return context;
  }

  std::vector<std::uint8_t> sign_digest(const codec::Sha256Digest& digest, bool high_s) const {
    std::vector<std::uint8_t> out(64);
    BIGNUM* order = BN_new();
    BIGNUM* s = nullptr;
    if (curve_ == crypto::Curve::k256) {
      secp256k1_ecdsa_signature signature;
      if (secp256k1_ecdsa_sign(k256(), &signature, digest.data(), secret_.data(), nullptr,
                               nullptr) != 1) {
        throw std::runtime_error("secp256k1 signing failed");
      }
      secp256k1_ecdsa_signature_serialize_compact(k256(), out.data(), &signature);
      EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_secp256k1);
      EC_GROUP_get_order(group, order, nullptr);
      EC_GROUP_free(group);
      s = BN_bin2bn(out.data() + 32, 32, nullptr);
    } else {
      const std::vector<std::uint8_t> point = compressed_public();
      BIGNUM* scalar = BN_bin2bn(secret_.data(), 32, nullptr);
      OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
      OSSL_PARAM_BLD_push_utf8_string(builder, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
      OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_PRIV_KEY, scalar);
      OSSL_PARAM_BLD_push_octet_string(builder, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size());
      OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(builder);
      EVP_PKEY_CTX* build = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
      EVP_PKEY* key = nullptr;
      EVP_PKEY_fromdata_init(build);
      if (EVP_PKEY_fromdata(build, &key, EVP_PKEY_KEYPAIR, params) != 1) {
        throw std::runtime_error("bad P-256 secret");
      }
      EVP_PKEY_CTX* signer = EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr);
      std::array<std::uint8_t, 80> der{};
      std::size_t der_size = der.size();
      EVP_PKEY_sign_init(signer);
      if (EVP_PKEY_sign(signer, der.data(), &der_size, digest.data(), digest.size()) != 1) {
        throw std::runtime_error("P-256 signing failed");
      }
      const std::uint8_t* der_cursor = der.data();
      ECDSA_SIG* signature = d2i_ECDSA_SIG(nullptr, &der_cursor, static_cast<long>(der_size));
      BN_bn2binpad(ECDSA_SIG_get0_r(signature), out.data(), 32);
      s = BN_dup(ECDSA_SIG_get0_s(signature));
      EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
      EC_GROUP_get_order(group, order, nullptr);
      EC_GROUP_free(group);
      ECDSA_SIG_free(signature);
      EVP_PKEY_CTX_free(signer);
      EVP_PKEY_free(key);
      EVP_PKEY_CTX_free(build);
      OSSL_PARAM_free(params);
      OSSL_PARAM_BLD_free(builder);
      BN_free(scalar);
    }
    // Normalise s to low (s <= n/2), then flip it when a high-S signature is wanted.
    BIGNUM* half = BN_dup(order);
    BN_rshift1(half, half);
    const bool is_high = BN_cmp(s, half) > 0;
    if (is_high != high_s) BN_sub(s, order, s);
    BN_bn2binpad(s, out.data() + 32, 32);
    BN_free(half);
    BN_free(s);
    BN_free(order);
    return out;
  }

  crypto::Curve curve_;
  std::array<std::uint8_t, 32> secret_;
};

/// A version-3 commit object for `did` at `rev` over the MST root `data_cid`, signed by `signer`
/// (canonical DAG-CBOR: keys by length, then bytewise). `high_s` signs with the malleable twin.
inline Bytes make_signed_commit(std::string_view did, std::string_view rev, const Bytes& data_cid,
                                const TestSigningKey& signer, bool high_s = false,
                                const Bytes* prev = nullptr) {
  auto build = [&](const Bytes* sig) {
    CborBuilder commit;
    commit.map(sig != nullptr ? 6 : 5).text("did").text(did).text("rev").text(rev);
    if (sig != nullptr) commit.text("sig").bytes(*sig);
    commit.text("data").link(data_cid).text("prev");
    if (prev != nullptr) {
      commit.link(*prev);
    } else {
      commit.null();
    }
    commit.text("version").uint(3);
    return commit.take();
  };
  const Bytes unsigned_bytes = build(nullptr);
  const Bytes sig = high_s ? signer.sign_high_s(unsigned_bytes) : signer.sign(unsigned_bytes);
  return build(&sig);
}

}  // namespace jetstream::testing
