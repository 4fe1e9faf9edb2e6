// Contracts of common/crypto: did:key and multikey parsing for P-256 and secp256k1, and the
// atproto signature rule (64-byte r‖s over SHA-256, low-S only), on the atproto interop fixtures
// in ../shared/interop/crypto and on keys the tests sign with.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <variant>
#include <vector>

#include "common/codec/multibase.hpp"
#include "common/crypto/public_key.hpp"
#include "tests/support/atproto_json.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/test_signing_key.hpp"

namespace jetstream::crypto {
namespace {

using testing::Bytes;
using testing::TestSigningKey;

rapidjson::Document read_json(const std::filesystem::path& path) {
  rapidjson::Document document;
  document.Parse(testing::read_text_file(path).c_str());
  EXPECT_FALSE(document.HasParseError()) << path;
  return document;
}

Bytes base64(const rapidjson::Value& value) {
  auto bytes = testing::detail::decode_base64(value.GetString());
  EXPECT_TRUE(bytes.has_value()) << value.GetString();
  return bytes.value_or(Bytes{});
}

PublicKey parse_did_key(std::string_view text) {
  auto parsed = PublicKey::from_did_key(text);
  if (const auto* error = std::get_if<KeyError>(&parsed)) {
    ADD_FAILURE() << text << ": " << to_string(*error);
    return TestSigningKey::from_seed(Curve::k256, 0).public_key();
  }
  return std::get<PublicKey>(parsed);
}

TEST(SignatureFixtures, EachFixtureIsJudgedAsTheInteropSuiteSays) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/crypto/signature-fixtures.json");
  const auto fixtures = read_json(path);
  ASSERT_TRUE(fixtures.IsArray());
  ASSERT_EQ(fixtures.Size(), 6u);
  int valid = 0;
  int high_s = 0;
  int der = 0;
  for (const auto& fixture : fixtures.GetArray()) {
    const std::string comment = fixture["comment"].GetString();
    const std::string algorithm = fixture["algorithm"].GetString();
    const PublicKey key = parse_did_key(fixture["publicKeyDid"].GetString());
    EXPECT_EQ(key.curve(), algorithm == "ES256" ? Curve::p256 : Curve::k256) << comment;
    EXPECT_EQ(key.did_key(), fixture["publicKeyDid"].GetString()) << comment;

    // The same key in the legacy DID document form (bare compressed point, curve named by type).
    const std::string suite = fixture["didDocSuite"].GetString();
    const Curve suite_curve =
        suite == "EcdsaSecp256r1VerificationKey2019" ? Curve::p256 : Curve::k256;
    auto legacy =
        PublicKey::from_legacy_multibase(suite_curve, fixture["publicKeyMultibase"].GetString());
    ASSERT_TRUE(std::holds_alternative<PublicKey>(legacy)) << comment;
    EXPECT_TRUE(std::get<PublicKey>(legacy) == key) << comment;

    const SignatureCheck check =
        key.verify(base64(fixture["messageBase64"]), base64(fixture["signatureBase64"]));
    const bool expected_valid = fixture["validSignature"].GetBool();
    EXPECT_EQ(check == SignatureCheck::valid, expected_valid)
        << comment << ": " << to_string(check);
    std::vector<std::string> tags;
    for (const auto& tag : fixture["tags"].GetArray()) tags.emplace_back(tag.GetString());
    if (expected_valid) ++valid;
    if (std::find(tags.begin(), tags.end(), "high-s") != tags.end()) {
      EXPECT_EQ(check, SignatureCheck::high_s) << comment;
      ++high_s;
    }
    if (std::find(tags.begin(), tags.end(), "der-encoded") != tags.end()) {
      EXPECT_EQ(check, SignatureCheck::wrong_length) << comment;
      ++der;
    }
  }
  EXPECT_EQ(valid, 2);
  EXPECT_EQ(high_s, 2);
  EXPECT_EQ(der, 2);
}

TEST(SignatureFixtures, AValidSignatureFailsOnAnyOtherMessageOrAFlippedBit) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/crypto/signature-fixtures.json");
  const auto fixtures = read_json(path);
  for (const auto& fixture : fixtures.GetArray()) {
    if (!fixture["validSignature"].GetBool()) continue;
    const PublicKey key = parse_did_key(fixture["publicKeyDid"].GetString());
    Bytes message = base64(fixture["messageBase64"]);
    Bytes signature = base64(fixture["signatureBase64"]);
    ASSERT_EQ(key.verify(message, signature), SignatureCheck::valid);
    message.push_back(0);
    EXPECT_EQ(key.verify(message, signature), SignatureCheck::mismatch);
    message.pop_back();
    signature[5] ^= 0x01;
    EXPECT_EQ(key.verify(message, signature), SignatureCheck::mismatch);
  }
}

// The W3C did:key vectors give private keys: the public key derived from each must be the one its
// did:key names, in both directions.
TEST(DidKeyVectors, Secp256k1KeysRoundTripAndMatchTheirPrivateKeys) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/crypto/w3c_didkey_K256.json");
  const auto vectors = read_json(path);
  ASSERT_GE(vectors.Size(), 1u);
  for (const auto& vector : vectors.GetArray()) {
    const std::string did_key = vector["publicDidKey"].GetString();
    const std::string hex = vector["privateKeyBytesHex"].GetString();
    std::array<std::uint8_t, 32> secret{};
    ASSERT_EQ(hex.size(), 64u);
    for (std::size_t i = 0; i < 32; ++i) {
      secret[i] = static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    }
    const TestSigningKey signer(Curve::k256, secret);
    const PublicKey key = parse_did_key(did_key);
    EXPECT_EQ(key.curve(), Curve::k256);
    EXPECT_TRUE(key == signer.public_key()) << did_key;
    EXPECT_EQ(signer.did_key(), did_key);
  }
}

TEST(DidKeyVectors, P256KeysRoundTripAndMatchTheirPrivateKeys) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "interop/crypto/w3c_didkey_P256.json");
  const auto vectors = read_json(path);
  ASSERT_GE(vectors.Size(), 1u);
  for (const auto& vector : vectors.GetArray()) {
    const std::string did_key = vector["publicDidKey"].GetString();
    const auto secret_bytes = codec::decode_base58btc(vector["privateKeyBytesBase58"].GetString());
    ASSERT_TRUE(secret_bytes.has_value());
    ASSERT_EQ(secret_bytes->size(), 32u);
    std::array<std::uint8_t, 32> secret{};
    std::copy(secret_bytes->begin(), secret_bytes->end(), secret.begin());
    const TestSigningKey signer(Curve::p256, secret);
    const PublicKey key = parse_did_key(did_key);
    EXPECT_EQ(key.curve(), Curve::p256);
    EXPECT_TRUE(key == signer.public_key()) << did_key;
    EXPECT_EQ(signer.did_key(), did_key);
  }
}

class BothCurves : public ::testing::TestWithParam<Curve> {};

TEST_P(BothCurves, SignaturesOfAKeyPassAndThoseOfAnotherKeyDoNot) {
  const auto signer = TestSigningKey::from_seed(GetParam(), 1);
  const auto stranger = TestSigningKey::from_seed(GetParam(), 2);
  const PublicKey key = signer.public_key();
  for (int i = 0; i < 20; ++i) {
    const Bytes message(static_cast<std::size_t>(i * 7), static_cast<std::uint8_t>(i));
    EXPECT_EQ(key.verify(message, signer.sign(message)), SignatureCheck::valid) << i;
    EXPECT_EQ(key.verify(message, stranger.sign(message)), SignatureCheck::mismatch) << i;
    EXPECT_EQ(key.verify(message, signer.sign_high_s(message)), SignatureCheck::high_s) << i;
  }
}

TEST_P(BothCurves, SignaturesOutsideTheScalarRangeAreRejectedBeforeTheCurveMath) {
  const PublicKey key = TestSigningKey::from_seed(GetParam(), 3).public_key();
  const Bytes message = {1, 2, 3};
  EXPECT_EQ(key.verify(message, Bytes(64, 0)), SignatureCheck::out_of_range);
  Bytes zero_s(64, 0x11);
  std::fill(zero_s.begin() + 32, zero_s.end(), 0);
  EXPECT_EQ(key.verify(message, zero_s), SignatureCheck::out_of_range);
  Bytes r_too_big(64, 0x11);
  std::fill(r_too_big.begin(), r_too_big.begin() + 32, 0xff);
  EXPECT_EQ(key.verify(message, r_too_big), SignatureCheck::out_of_range);
  EXPECT_EQ(key.verify(message, Bytes(63, 0x11)), SignatureCheck::wrong_length);
  EXPECT_EQ(key.verify(message, Bytes{}), SignatureCheck::wrong_length);
}

TEST_P(BothCurves, AKeyRoundTripsThroughItsDidKeyAndMultikeyForms) {
  const PublicKey key = TestSigningKey::from_seed(GetParam(), 4).public_key();
  const std::string did_key = key.did_key();
  EXPECT_TRUE(parse_did_key(did_key) == key);
  auto multikey = PublicKey::from_multikey(did_key.substr(8));
  ASSERT_TRUE(std::holds_alternative<PublicKey>(multikey));
  EXPECT_TRUE(std::get<PublicKey>(multikey) == key);
}

INSTANTIATE_TEST_SUITE_P(Curves, BothCurves, ::testing::Values(Curve::p256, Curve::k256),
                         [](const auto& param_info) {
                           return std::string(to_string(param_info.param));
                         });

KeyError key_error(const std::variant<PublicKey, KeyError>& parsed) {
  const auto* error = std::get_if<KeyError>(&parsed);
  return error != nullptr ? *error : static_cast<KeyError>(255);
}

TEST(MalformedKeys, EachIsRejectedWithItsReason) {
  EXPECT_EQ(key_error(PublicKey::from_did_key("did:plc:abc")), KeyError::not_did_key);
  EXPECT_EQ(key_error(PublicKey::from_did_key("")), KeyError::not_did_key);
  EXPECT_EQ(key_error(PublicKey::from_did_key("did:key:")), KeyError::bad_multibase);
  EXPECT_EQ(key_error(PublicKey::from_did_key("did:key:m123")), KeyError::bad_multibase);
  EXPECT_EQ(key_error(PublicKey::from_did_key("did:key:z0OIl")), KeyError::bad_multibase);
  EXPECT_EQ(key_error(PublicKey::from_did_key("did:key:z" + std::string(300, 'z'))),
            KeyError::bad_multibase);
  EXPECT_EQ(key_error(PublicKey::from_did_key("did:key:z2")), KeyError::unknown_key_type);

  const Bytes point = TestSigningKey::from_seed(Curve::k256, 5).compressed_public();
  auto multikey = [](Bytes prefix, const Bytes& body) {
    prefix.insert(prefix.end(), body.begin(), body.end());
    std::string text = "did:key:z";
    codec::append_base58btc(text, prefix);
    return text;
  };
  // An ed25519 key (multicodec 0xed): a valid did:key, but not an atproto signing key.
  EXPECT_EQ(key_error(PublicKey::from_did_key(multikey({0xed, 0x01}, Bytes(32, 7)))),
            KeyError::unknown_key_type);
  // Right codec, wrong point: uncompressed form, truncated, bad prefix, x not on the curve.
  Bytes uncompressed = point;
  uncompressed[0] = 0x04;
  uncompressed.resize(65, 0x01);
  EXPECT_EQ(key_error(PublicKey::from_did_key(multikey({0xe7, 0x01}, uncompressed))),
            KeyError::bad_point);
  EXPECT_EQ(key_error(PublicKey::from_did_key(
                multikey({0xe7, 0x01}, Bytes(point.begin(), point.end() - 1)))),
            KeyError::bad_point);
  Bytes bad_prefix = point;
  bad_prefix[0] = 0x05;
  EXPECT_EQ(key_error(PublicKey::from_did_key(multikey({0xe7, 0x01}, bad_prefix))),
            KeyError::bad_point);
  // x = 0xff…ff is above the field prime of both curves.
  Bytes off_field(33, 0xff);
  off_field[0] = 0x02;
  EXPECT_EQ(key_error(PublicKey::from_did_key(multikey({0xe7, 0x01}, off_field))),
            KeyError::bad_point);
  EXPECT_EQ(key_error(PublicKey::from_did_key(multikey({0x80, 0x24}, off_field))),
            KeyError::bad_point);
  EXPECT_EQ(key_error(PublicKey::from_legacy_multibase(Curve::p256, "xyz")),
            KeyError::bad_multibase);
}

TEST(MalformedKeys, AP256XWithNoPointOnTheCurveIsRejected) {
  // About half of all x have no y on the curve; find one by trying, so the test needs no table.
  int rejected = 0;
  for (std::uint8_t last = 0; last < 16; ++last) {
    Bytes point(33, 0x00);
    point[0] = 0x02;
    point[32] = last;
    point[31] = 0x01;
    if (std::holds_alternative<KeyError>(PublicKey::from_compressed(Curve::p256, point))) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_LT(rejected, 16);
}

// did-method-plc writes legacy verification methods with the uncompressed point.
TEST(LegacyKeys, TheUncompressedPointIsTheSameKeyAndOneOffTheCurveIsRefused) {
  for (const auto curve : {Curve::p256, Curve::k256}) {
    const auto signer = TestSigningKey::from_seed(curve, 6);
    const Bytes uncompressed = signer.uncompressed_public();
    ASSERT_EQ(uncompressed.size(), 65u);
    std::string text = "z";
    codec::append_base58btc(text, uncompressed);
    auto legacy = PublicKey::from_legacy_multibase(curve, text);
    ASSERT_TRUE(std::holds_alternative<PublicKey>(legacy)) << to_string(curve);
    EXPECT_TRUE(std::get<PublicKey>(legacy) == signer.public_key());
    Bytes off_curve = uncompressed;
    off_curve[64] ^= 0x01;
    text = "z";
    codec::append_base58btc(text, off_curve);
    EXPECT_EQ(key_error(PublicKey::from_legacy_multibase(curve, text)), KeyError::bad_point);
  }
}

}  // namespace
}  // namespace jetstream::crypto
