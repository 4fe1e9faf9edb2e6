// Contracts of common/identity: reading the atproto parts of DID documents (written by
// strangers), locating a DID's document, and the bounded identity cache.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "common/codec/car.hpp"
#include "common/codec/dag_cbor_writer.hpp"
#include "common/codec/multibase.hpp"
#include "common/firehose/capture.hpp"
#include "common/firehose/frame.hpp"
#include "common/identity/commit_signature.hpp"
#include "common/identity/did_document.hpp"
#include "common/identity/identity_cache.hpp"
#include "tests/support/shared_data.hpp"
#include "tests/support/test_signing_key.hpp"

namespace jetstream::identity {
namespace {

using testing::TestSigningKey;

constexpr std::string_view kDid = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

std::string multikey_of(const crypto::PublicKey& key) { return key.did_key().substr(8); }

std::string document_json(std::string_view id, std::string_view method_id,
                          std::string_view method_type, std::string_view multibase,
                          std::string_view service_id = "#atproto_pds",
                          std::string_view endpoint = "https://pds.example.com") {
  std::string json = R"({"@context":["https://www.w3.org/ns/did/v1"],"id":")";
  json.append(id).append(R"(","alsoKnownAs":["https://x.example","at://alice.example.com"],)");
  json.append(R"("verificationMethod":[{"id":")").append(method_id);
  json.append(R"(","type":")").append(method_type);
  json.append(R"(","controller":")").append(id);
  json.append(R"(","publicKeyMultibase":")").append(multibase).append(R"("}],)");
  json.append(R"("service":[{"id":")").append(service_id);
  json.append(R"(","type":"AtprotoPersonalDataServer","serviceEndpoint":")").append(endpoint);
  json.append(R"("}]})");
  return json;
}

DidDocument parsed(std::string_view did, const std::string& json) {
  auto result = parse_did_document(did, json);
  if (const auto* error = std::get_if<DocumentError>(&result)) {
    ADD_FAILURE() << to_string(*error) << " for " << json;
    return {};
  }
  return std::get<DidDocument>(result);
}

TEST(DidDocument, ReadsTheMultikeySigningKeyThePdsAndTheHandle) {
  const auto key = TestSigningKey::from_seed(crypto::Curve::k256, 1).public_key();
  const auto document = parsed(
      kDid, document_json(kDid, std::string(kDid) + "#atproto", "Multikey", multikey_of(key)));
  EXPECT_EQ(document.did, kDid);
  ASSERT_TRUE(document.signing_key.has_value());
  EXPECT_TRUE(*document.signing_key == key);
  EXPECT_EQ(document.pds_endpoint, "https://pds.example.com");
  EXPECT_EQ(document.handle, "alice.example.com");
}

TEST(DidDocument, ReadsRelativeIdsAndTheLegacyKeyTypes) {
  for (const auto curve : {crypto::Curve::p256, crypto::Curve::k256}) {
    const auto key = TestSigningKey::from_seed(curve, 2).public_key();
    std::string legacy = "z";
    codec::append_base58btc(legacy, key.compressed());
    const auto document = parsed(
        kDid, document_json(kDid, "#atproto",
                            curve == crypto::Curve::p256 ? "EcdsaSecp256r1VerificationKey2019"
                                                         : "EcdsaSecp256k1VerificationKey2019",
                            legacy));
    ASSERT_TRUE(document.signing_key.has_value()) << to_string(curve);
    EXPECT_TRUE(*document.signing_key == key);
  }
}

TEST(DidDocument, AnUnusableOrAbsentKeyOrServiceLeavesThoseFieldsEmpty) {
  const auto key = TestSigningKey::from_seed(crypto::Curve::k256, 3).public_key();
  auto document = parsed(kDid, document_json(kDid, "#atproto", "Multikey", "zBADBAD"));
  EXPECT_FALSE(document.signing_key.has_value());
  EXPECT_EQ(document.signing_key_error, crypto::KeyError::unknown_key_type);
  document = parsed(kDid, document_json(kDid, "#atproto", "Multikey", "z0OIl"));
  EXPECT_EQ(document.signing_key_error, crypto::KeyError::bad_multibase);

  document = parsed(kDid, document_json(kDid, "#other", "Multikey", multikey_of(key)));
  EXPECT_FALSE(document.signing_key.has_value());
  EXPECT_FALSE(document.signing_key_error.has_value());

  // A method id naming another DID's fragment is not this document's key.
  document = parsed(kDid, document_json(kDid, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#atproto",
                                        "Multikey", multikey_of(key)));
  EXPECT_FALSE(document.signing_key.has_value());

  document =
      parsed(kDid, document_json(kDid, "#atproto", "Ed25519VerificationKey2020", multikey_of(key)));
  EXPECT_EQ(document.signing_key_error, crypto::KeyError::unknown_key_type);

  document = parsed(kDid, document_json(kDid, "#atproto", "Multikey", multikey_of(key),
                                        "#atproto_pds", "ftp://pds.example.com"));
  EXPECT_FALSE(document.pds_endpoint.has_value());
  document = parsed(kDid, document_json(kDid, "#atproto", "Multikey", multikey_of(key),
                                        "#atproto_labeler", "https://pds.example.com"));
  EXPECT_FALSE(document.pds_endpoint.has_value());

  document = parsed(kDid, R"({"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","verificationMethod":7,)"
                          R"("service":{"a":1},"alsoKnownAs":"at://x.com"})");
  EXPECT_FALSE(document.signing_key.has_value());
  EXPECT_FALSE(document.pds_endpoint.has_value());
  EXPECT_FALSE(document.handle.has_value());
}

DocumentError document_error(std::string_view did, std::string_view json) {
  auto result = parse_did_document(did, json);
  const auto* error = std::get_if<DocumentError>(&result);
  return error != nullptr ? *error : static_cast<DocumentError>(255);
}

TEST(DidDocument, RejectsNonJsonTheWrongIdAndOversizedDocuments) {
  EXPECT_EQ(document_error(kDid, ""), DocumentError::not_json);
  EXPECT_EQ(document_error(kDid, "[1,2]"), DocumentError::not_json);
  EXPECT_EQ(document_error(kDid, R"({"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz"} x)"),
            DocumentError::not_json);
  EXPECT_EQ(document_error(kDid, R"({"id":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"})"),
            DocumentError::wrong_id);
  EXPECT_EQ(document_error(kDid, R"({"id":7})"), DocumentError::wrong_id);
  EXPECT_EQ(document_error(kDid, R"({})"), DocumentError::wrong_id);
  std::string large = R"({"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","x":")";
  large.append(kMaxDocumentBytes, 'a').append("\"}");
  EXPECT_EQ(document_error(kDid, large), DocumentError::too_large);
  // Deep nesting inside the size cap is parsed without recursion.
  std::string deep = R"({"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","x":)";
  deep.append(20000, '[').append(20000, ']').append("}");
  EXPECT_TRUE(std::holds_alternative<DidDocument>(parse_did_document(kDid, deep)));
}

DocumentLocation located(std::string_view did, bool insecure = false) {
  auto result = locate_did_document(did, "https://plc.directory/", insecure);
  if (const auto* error = std::get_if<DidError>(&result)) {
    ADD_FAILURE() << did << ": " << to_string(*error);
    return {};
  }
  return std::get<DocumentLocation>(result);
}

DidError location_error(std::string_view did, bool insecure = false) {
  auto result = locate_did_document(did, "https://plc.directory", insecure);
  const auto* error = std::get_if<DidError>(&result);
  return error != nullptr ? *error : static_cast<DidError>(255);
}

TEST(DidLocation, PlcDidsAreFetchedFromTheDirectoryAndWebDidsFromTheirHost) {
  auto location = located(kDid);
  EXPECT_EQ(location.method, DidMethod::plc);
  EXPECT_EQ(location.url, "https://plc.directory/did:plc:ewvi7nxzyoun6zhxrhs64oiz");
  EXPECT_EQ(location.host, "plc.directory");
  location = located("did:web:alice.example.com");
  EXPECT_EQ(location.method, DidMethod::web);
  EXPECT_EQ(location.url, "https://alice.example.com/.well-known/did.json");
  EXPECT_EQ(location.host, "alice.example.com");
  location = located("did:web:localhost%3A2583", true);
  EXPECT_EQ(location.url, "http://localhost:2583/.well-known/did.json");
  EXPECT_EQ(location.host, "localhost");
}

TEST(DidLocation, HostsAndIdentifiersFromStrangersAreCheckedBeforeAnyLookup) {
  EXPECT_EQ(location_error("not-a-did"), DidError::bad_syntax);
  EXPECT_EQ(location_error("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"),
            DidError::unsupported_method);
  EXPECT_EQ(location_error("did:plc:short"), DidError::bad_plc_identifier);
  EXPECT_EQ(location_error("did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ"), DidError::bad_plc_identifier);
  EXPECT_EQ(location_error("did:plc:ewvi7nxzyoun6zhxrhs64oi1"), DidError::bad_plc_identifier);
  for (const std::string_view did :
       {"did:web:127.0.0.1", "did:web:10.0.0.1", "did:web:example.com:path", "did:web:-a.com",
        "did:web:a-.com", "did:web:com", "did:web:a..com", "did:web:a_b.com",
        "did:web:example.com%3A8080", "did:web:example.com%2Fx", "did:web:169.254.169.254"}) {
    EXPECT_EQ(location_error(did), DidError::bad_web_host) << did;
  }
  EXPECT_EQ(location_error("did:web:example.com%3Axyz", true), DidError::bad_web_host);
  EXPECT_EQ(location_error("did:web:example.com%3A123456", true), DidError::bad_web_host);
}

ResolutionPtr resolution_for(std::string_view did) {
  auto resolution = std::make_shared<Resolution>();
  resolution->document.emplace();
  resolution->document->did.assign(did);
  return resolution;
}

TEST(IdentityCache, ReturnsWhatWasPutUntilItExpires) {
  IdentityCache cache(10);
  EXPECT_EQ(cache.find(kDid, 0), nullptr);
  cache.put(kDid, resolution_for(kDid), 1000);
  const auto found = cache.find(kDid, 999);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->document->did, kDid);
  EXPECT_EQ(cache.find(kDid, 1000), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.counters().hits.load(), 1u);
  EXPECT_EQ(cache.counters().misses.load(), 2u);
  EXPECT_EQ(cache.counters().expired.load(), 1u);
}

TEST(IdentityCache, EvictsTheLeastRecentlyUsedBeyondItsCapacity) {
  IdentityCache cache(3);
  for (const std::string did : {"did:a:1", "did:a:2", "did:a:3"}) {
    cache.put(did, resolution_for(did), 100);
  }
  ASSERT_NE(cache.find("did:a:1", 0), nullptr);  // 1 is now the most recent; 2 the least
  cache.put("did:a:4", resolution_for("did:a:4"), 100);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.find("did:a:2", 0), nullptr);
  EXPECT_NE(cache.find("did:a:1", 0), nullptr);
  EXPECT_NE(cache.find("did:a:3", 0), nullptr);
  EXPECT_NE(cache.find("did:a:4", 0), nullptr);
  EXPECT_EQ(cache.counters().evicted.load(), 1u);
}

TEST(IdentityCache, ReplacingAnEntryKeepsOneAndInvalidateForgetsIt) {
  IdentityCache cache(3);
  cache.put(kDid, resolution_for("first"), 100);
  cache.put(kDid, resolution_for("second"), 200);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find(kDid, 150)->document->did, "second");
  EXPECT_TRUE(cache.invalidate(kDid));
  EXPECT_FALSE(cache.invalidate(kDid));
  EXPECT_EQ(cache.find(kDid, 0), nullptr);
  EXPECT_EQ(cache.counters().invalidated.load(), 1u);
}

const testing::Bytes kDataCid = testing::cid_of(codec::kCodecDagCbor, {0xa0});

class CommitSignatures : public ::testing::TestWithParam<crypto::Curve> {};

TEST_P(CommitSignatures, ACommitSignedByTheRepositoryKeyIsValid) {
  const auto signer = TestSigningKey::from_seed(GetParam(), 10);
  const auto block = testing::make_signed_commit(kDid, "3kabc", kDataCid, signer);
  CommitSignatureChecker checker;
  EXPECT_EQ(checker.check(block, kDid, "3kabc", signer.public_key()), CommitSignature::valid);
  const auto prev = testing::cid_of(codec::kCodecDagCbor, {0xa1, 0x61, 0x61, 0x01});
  const auto with_prev = testing::make_signed_commit(kDid, "3kabd", kDataCid, signer, false, &prev);
  EXPECT_EQ(checker.check(with_prev, kDid, "3kabd", signer.public_key()), CommitSignature::valid);
}

TEST_P(CommitSignatures, AnotherKeyAHighSSignatureOrAnEditedCommitIsRejected) {
  const auto signer = TestSigningKey::from_seed(GetParam(), 11);
  const auto stranger = TestSigningKey::from_seed(GetParam(), 12);
  CommitSignatureChecker checker;
  crypto::SignatureCheck detail = crypto::SignatureCheck::valid;
  auto block = testing::make_signed_commit(kDid, "3kabc", kDataCid, stranger);
  EXPECT_EQ(checker.check(block, kDid, "3kabc", signer.public_key(), &detail),
            CommitSignature::bad_signature);
  EXPECT_EQ(detail, crypto::SignatureCheck::mismatch);

  block = testing::make_signed_commit(kDid, "3kabc", kDataCid, signer, true);
  EXPECT_EQ(checker.check(block, kDid, "3kabc", signer.public_key(), &detail),
            CommitSignature::bad_signature);
  EXPECT_EQ(detail, crypto::SignatureCheck::high_s);

  // The signature of one commit does not carry over to another data root.
  block = testing::make_signed_commit(kDid, "3kabc", kDataCid, signer);
  codec::CborDocument parsed_block;
  ASSERT_FALSE(parsed_block.parse(block, codec::CborLimits{}).has_value());
  const auto sig = parsed_block.node(*parsed_block.find(0, "sig")).bytes();
  const auto other_root = testing::cid_of(codec::kCodecDagCbor, {0xa1, 0x61, 0x62, 0x02});
  testing::CborBuilder edited;
  edited.map(6).text("did").text(kDid).text("rev").text("3kabc");
  edited.text("sig").bytes(testing::Bytes(sig.begin(), sig.end()));
  edited.text("data").link(other_root).text("prev").null().text("version").uint(3);
  EXPECT_EQ(checker.check(edited.take(), kDid, "3kabc", signer.public_key()),
            CommitSignature::bad_signature);
}

INSTANTIATE_TEST_SUITE_P(Curves, CommitSignatures,
                         ::testing::Values(crypto::Curve::p256, crypto::Curve::k256),
                         [](const auto& param_info) {
                           return std::string(crypto::to_string(param_info.param));
                         });

TEST(CommitSignatures, ACommitOfAnotherRepositoryOrRevOrNotACommitIsRejected) {
  const auto signer = TestSigningKey::from_seed(crypto::Curve::k256, 13);
  const auto key = signer.public_key();
  const auto block = testing::make_signed_commit(kDid, "3kabc", kDataCid, signer);
  CommitSignatureChecker checker;
  EXPECT_EQ(checker.check(block, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "3kabc", key),
            CommitSignature::wrong_repo);
  EXPECT_EQ(checker.check(block, kDid, "3kabd", key), CommitSignature::wrong_rev);
  EXPECT_EQ(checker.check(testing::Bytes{0xa0}, kDid, "3kabc", key), CommitSignature::bad_commit);
  EXPECT_EQ(checker.check(testing::Bytes{0x01}, kDid, "3kabc", key), CommitSignature::bad_commit);
  EXPECT_EQ(checker.check(testing::Bytes{}, kDid, "3kabc", key), CommitSignature::bad_commit);
  testing::CborBuilder unsigned_commit;
  unsigned_commit.map(4).text("did").text(kDid).text("rev").text("3kabc");
  unsigned_commit.text("data").link(kDataCid).text("version").uint(3);
  EXPECT_EQ(checker.check(unsigned_commit.take(), kDid, "3kabc", key), CommitSignature::bad_commit);
}

// What is signed is rebuilt canonically, never sliced out of the received bytes; on the real
// relay's commits the rebuilt commit (with its sig) is byte for byte the block it came in, so the
// unsigned bytes are those the PDS signed.
TEST(CommitSignatures, RealCommitBlocksAreCanonicalSoTheRebuiltUnsignedBytesAreTheSigned) {
  JETSTREAM_REQUIRE_SHARED_FILE(path, "corpus/dev.frames");
  const auto capture = testing::read_binary_file(path);
  firehose::FrameDecoder decoder;
  firehose::CommitBody commit;
  codec::CarFile car;
  codec::CborDocument document;
  int checked = 0;
  const auto frames = firehose::split_capture(capture);
  ASSERT_TRUE(frames.has_value());
  for (const byte_view frame : *frames) {
    if (decoder.decode(frame) || decoder.type() != firehose::FrameType::commit ||
        decoder.read_commit(commit) || car.open(commit.blocks) || !commit.commit) {
      continue;
    }
    const codec::CarBlock* block = car.find(*commit.commit);
    ASSERT_NE(block, nullptr);
    ASSERT_FALSE(document.parse(block->data, codec::CborLimits{}).has_value());
    std::vector<std::uint8_t> rebuilt;
    codec::append_canonical_cbor(document, 0, rebuilt);
    EXPECT_EQ(rebuilt, std::vector<std::uint8_t>(block->data.begin(), block->data.end()));
    ++checked;
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace jetstream::identity
