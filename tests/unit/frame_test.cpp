// Contracts of common/firehose/frame: firehose frames ({op, t} header + body) decoded zero-copy:
// frame types, `seq`, typed body readers and the errors for malformed headers and bodies.
#include "common/firehose/frame.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/cid.hpp"
#include "common/codec/dag_cbor.hpp"
#include "tests/support/cbor_builder.hpp"

namespace jetstream::firehose {

/// Prints names in assertion messages (found by GoogleTest through ADL).
[[maybe_unused]] static void PrintTo(FrameError error, std::ostream* os) {
  *os << to_string(error);
}
[[maybe_unused]] static void PrintTo(FrameType type, std::ostream* os) { *os << to_string(type); }

namespace {

using testing::Bytes;
using testing::CborBuilder;
using testing::cid_of;
using testing::make_car;
using testing::make_commit_frame;
using testing::TestOp;

using FieldWriter = std::function<void(CborBuilder&)>;
using Fields = std::vector<std::pair<std::string, FieldWriter>>;

Bytes map_of(const Fields& fields) {
  CborBuilder b;
  b.map(fields.size());
  for (const auto& [key, write] : fields) {
    b.text(key);
    write(b);
  }
  return b.take();
}

Fields without(Fields fields, std::string_view key) {
  std::erase_if(fields, [&](const auto& field) { return field.first == key; });
  return fields;
}

Fields with(Fields fields, const std::string& key, FieldWriter write) {
  for (auto& field : fields) {
    if (field.first == key) {
      field.second = std::move(write);
      return fields;
    }
  }
  fields.emplace_back(key, std::move(write));
  return fields;
}

FieldWriter text(std::string value) {
  return [value = std::move(value)](CborBuilder& b) { b.text(value); };
}
FieldWriter integer(std::int64_t value) {
  return [value](CborBuilder& b) { b.integer(value); };
}
FieldWriter boolean(bool value) {
  return [value](CborBuilder& b) { b.boolean(value); };
}
FieldWriter null() {
  return [](CborBuilder& b) { b.null(); };
}
FieldWriter bytes(Bytes value) {
  return [value = std::move(value)](CborBuilder& b) { b.bytes(value); };
}

Bytes header(std::string_view type) {
  return CborBuilder().map(2).text("t").text(type).text("op").uint(1).take();
}

Bytes concat(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes frame(std::string_view type, const Fields& body) {
  return concat(header(type), map_of(body));
}

const Bytes& record_cid() {
  static const Bytes cid = cid_of(codec::kCodecDagCbor, CborBuilder().map(0).take());
  return cid;
}

Fields op_fields() {
  return {{"cid", [](CborBuilder& b) { b.link(record_cid()); }},
          {"path", text("app.bsky.feed.post/3k2a")},
          {"action", text("create")}};
}

Fields commit_fields(const Fields& op = op_fields()) {
  const Bytes op_map = map_of(op);
  return {
      {"ops", [op_map](CborBuilder& b) { b.array(1).raw(op_map); }},
      {"rev", text("3kabc")},
      {"seq", integer(42)},
      {"repo", text("did:plc:abc")},
      {"time", text("2026-07-04T14:38:08.999Z")},
      {"blobs", [](CborBuilder& b) { b.array(0); }},
      {"since", null()},
      {"blocks", bytes(make_car({}, {}))},
      {"commit", [](CborBuilder& b) { b.link(record_cid()); }},
      {"rebase", boolean(false)},
      {"tooBig", boolean(false)},
  };
}

Fields identity_fields() {
  return {{"seq", integer(7)},
          {"did", text("did:plc:abc")},
          {"time", text("2026-07-04T14:38:08.999Z")},
          {"handle", text("alice.test")}};
}

Fields account_fields() {
  return {{"seq", integer(8)},
          {"did", text("did:plc:abc")},
          {"time", text("2026-07-04T14:38:08.999Z")},
          {"active", boolean(false)},
          {"status", text("takendown")}};
}

Bytes error_frame(const Fields& body) {
  return concat(CborBuilder().map(1).text("op").integer(-1).take(), map_of(body));
}

/// A FrameDecoder that keeps the bytes of the frame it decoded alive: the decoder's views point
/// into the frame, so a test that decodes a temporary must not read them after it is gone.
class KeepingDecoder : public FrameDecoder {
 public:
  std::optional<FrameError> decode(Bytes frame) {
    input_ = std::move(frame);
    return FrameDecoder::decode(input_);
  }

 private:
  Bytes input_;
};

// ---- commits ---------------------------------------------------------------------------------

TEST(Frame, DecodesACommitFrame) {
  const Bytes record = CborBuilder().map(1).text("text").text("hi").take();
  const Bytes cid = cid_of(codec::kCodecDagCbor, record);
  const Bytes car = make_car({cid}, {{cid, record}});
  const Bytes input = make_commit_frame(
      42, "did:plc:abc", "3kabc", car,
      {{"create", "app.bsky.feed.post/1", cid}, {"delete", "app.bsky.feed.like/2", {}}});
  FrameDecoder decoder;
  ASSERT_EQ(decoder.decode(input), std::nullopt);
  EXPECT_EQ(decoder.type(), FrameType::commit);
  EXPECT_EQ(decoder.type_name(), "#commit");
  EXPECT_EQ(decoder.seq(), 42);
  CommitBody body;
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  EXPECT_EQ(body.seq, 42);
  EXPECT_EQ(body.repo, "did:plc:abc");
  EXPECT_EQ(body.rev, "3kabc");
  EXPECT_EQ(body.time, "2026-07-04T14:38:08.999Z");
  EXPECT_FALSE(body.too_big);
  EXPECT_EQ(Bytes(body.blocks.begin(), body.blocks.end()), car);
  // Zero-copy: the CAR view points into the frame.
  EXPECT_GE(body.blocks.data(), input.data());
  EXPECT_LE(body.blocks.data() + body.blocks.size(), input.data() + input.size());
  ASSERT_EQ(body.ops.size(), 2u);
  EXPECT_EQ(body.ops[0].action, "create");
  EXPECT_EQ(body.ops[0].path, "app.bsky.feed.post/1");
  ASSERT_TRUE(body.ops[0].cid.has_value());
  EXPECT_EQ(Bytes(body.ops[0].cid->begin(), body.ops[0].cid->end()), cid);
  EXPECT_EQ(body.ops[1].action, "delete");
  EXPECT_EQ(body.ops[1].path, "app.bsky.feed.like/2");
  EXPECT_FALSE(body.ops[1].cid.has_value()) << "a null cid is absent";
}

TEST(Frame, ReadsTooBigAndNegativeOrLargeSeq) {
  KeepingDecoder decoder;
  CommitBody body;
  ASSERT_EQ(decoder.decode(make_commit_frame(5, "did:plc:a", "r", make_car({}, {}), {},
                                             "2026-01-01T00:00:00Z", true)),
            std::nullopt);
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  EXPECT_TRUE(body.too_big);
  EXPECT_TRUE(body.ops.empty());
  ASSERT_EQ(decoder.decode(make_commit_frame(INT64_MAX, "d", "r", {}, {})), std::nullopt);
  EXPECT_EQ(decoder.seq(), INT64_MAX);
  ASSERT_EQ(decoder.decode(make_commit_frame(-3, "d", "r", {}, {})), std::nullopt);
  EXPECT_EQ(decoder.seq(), -3);
}

TEST(Frame, CommitWithoutTooBigDefaultsToFalse) {
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(frame("#commit", without(commit_fields(), "tooBig"))), std::nullopt);
  CommitBody body;
  body.too_big = true;
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  EXPECT_FALSE(body.too_big);
}

TEST(Frame, OpsWithAbsentOrNullCidHaveNoCid) {
  KeepingDecoder decoder;
  CommitBody body;
  ASSERT_EQ(decoder.decode(frame("#commit", commit_fields(without(op_fields(), "cid")))),
            std::nullopt);
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  ASSERT_EQ(body.ops.size(), 1u);
  EXPECT_FALSE(body.ops[0].cid.has_value());
  ASSERT_EQ(decoder.decode(frame("#commit", commit_fields(with(op_fields(), "cid", null())))),
            std::nullopt);
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  ASSERT_EQ(body.ops.size(), 1u);
  EXPECT_FALSE(body.ops[0].cid.has_value());
}

TEST(Frame, ReadCommitReplacesOpsOfAPreviousRead) {
  KeepingDecoder decoder;
  CommitBody body;
  ASSERT_EQ(decoder.decode(frame("#commit", commit_fields())), std::nullopt);
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  EXPECT_EQ(body.ops.size(), 1u);
}

TEST(Frame, CommitMissingARequiredFieldIsMalformedBody) {
  for (const std::string_view field : {"seq", "repo", "rev", "time", "blocks", "ops"}) {
    KeepingDecoder decoder;
    ASSERT_EQ(decoder.decode(frame("#commit", without(commit_fields(), field))), std::nullopt)
        << field;
    CommitBody body;
    EXPECT_EQ(decoder.read_commit(body), FrameError::malformed_body) << "without " << field;
  }
}

TEST(Frame, CommitWithMistypedFieldsIsMalformedBody) {
  const std::vector<std::pair<std::string, FieldWriter>> mistyped{
      {"seq", text("42")},     {"seq", null()},        {"repo", integer(1)},
      {"repo", null()},        {"rev", bytes({'r'})},  {"time", integer(0)},
      {"blocks", text("car")}, {"blocks", null()},     {"ops", [](CborBuilder& b) { b.map(0); }},
      {"ops", null()},         {"tooBig", integer(1)}, {"tooBig", null()},
  };
  for (const auto& [field, write] : mistyped) {
    KeepingDecoder decoder;
    ASSERT_EQ(decoder.decode(frame("#commit", with(commit_fields(), field, write))), std::nullopt);
    CommitBody body;
    EXPECT_EQ(decoder.read_commit(body), FrameError::malformed_body) << "mistyped " << field;
  }
}

TEST(Frame, CommitWithMalformedOpsIsMalformedBody) {
  const std::vector<std::pair<std::string, Fields>> bad_ops{
      {"no action", without(op_fields(), "action")},
      {"no path", without(op_fields(), "path")},
      {"action int", with(op_fields(), "action", integer(1))},
      {"path null", with(op_fields(), "path", null())},
      {"cid as text", with(op_fields(), "cid", text("bafy"))},
      {"cid as bytes", with(op_fields(), "cid", bytes(record_cid()))},
  };
  for (const auto& [name, op] : bad_ops) {
    KeepingDecoder decoder;
    ASSERT_EQ(decoder.decode(frame("#commit", commit_fields(op))), std::nullopt) << name;
    CommitBody body;
    EXPECT_EQ(decoder.read_commit(body), FrameError::malformed_body) << name;
  }
  // An op that is not a map at all.
  KeepingDecoder decoder;
  ASSERT_EQ(
      decoder.decode(frame("#commit", with(commit_fields(), "ops",
                                           [](CborBuilder& b) { b.array(1).text("create"); }))),
      std::nullopt);
  CommitBody body;
  EXPECT_EQ(decoder.read_commit(body), FrameError::malformed_body);
}

TEST(Frame, KeepsUnknownOpActionsForTheCallerToDrop) {
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(
                frame("#commit", commit_fields(with(op_fields(), "action", text("resurrect"))))),
            std::nullopt);
  CommitBody body;
  ASSERT_EQ(decoder.read_commit(body), std::nullopt);
  ASSERT_EQ(body.ops.size(), 1u);
  EXPECT_EQ(body.ops[0].action, "resurrect");
}

// ---- identity, account, error ----------------------------------------------------------------

TEST(Frame, DecodesAnIdentityFrame) {
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(frame("#identity", identity_fields())), std::nullopt);
  EXPECT_EQ(decoder.type(), FrameType::identity);
  EXPECT_EQ(decoder.seq(), 7);
  IdentityBody body;
  ASSERT_EQ(decoder.read_identity(body), std::nullopt);
  EXPECT_EQ(body.seq, 7);
  EXPECT_EQ(body.did, "did:plc:abc");
  EXPECT_EQ(body.time, "2026-07-04T14:38:08.999Z");
  EXPECT_EQ(body.handle, std::optional<std::string_view>("alice.test"));
}

TEST(Frame, IdentityHandleIsOptionalAndNullable) {
  KeepingDecoder decoder;
  IdentityBody body;
  ASSERT_EQ(decoder.decode(frame("#identity", without(identity_fields(), "handle"))), std::nullopt);
  ASSERT_EQ(decoder.read_identity(body), std::nullopt);
  EXPECT_FALSE(body.handle.has_value());
  body.handle = "stale";
  ASSERT_EQ(decoder.decode(frame("#identity", with(identity_fields(), "handle", null()))),
            std::nullopt);
  ASSERT_EQ(decoder.read_identity(body), std::nullopt);
  EXPECT_FALSE(body.handle.has_value());
  ASSERT_EQ(decoder.decode(frame("#identity", with(identity_fields(), "handle", integer(1)))),
            std::nullopt);
  EXPECT_EQ(decoder.read_identity(body), FrameError::malformed_body);
}

TEST(Frame, IdentityMissingOrMistypedRequiredFieldIsMalformedBody) {
  for (const std::string_view field : {"seq", "did", "time"}) {
    KeepingDecoder decoder;
    IdentityBody body;
    ASSERT_EQ(decoder.decode(frame("#identity", without(identity_fields(), field))), std::nullopt);
    EXPECT_EQ(decoder.read_identity(body), FrameError::malformed_body) << "without " << field;
    ASSERT_EQ(decoder.decode(
                  frame("#identity", with(identity_fields(), std::string(field), boolean(true)))),
              std::nullopt);
    EXPECT_EQ(decoder.read_identity(body), FrameError::malformed_body) << "mistyped " << field;
  }
}

TEST(Frame, DecodesAnAccountFrame) {
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(frame("#account", account_fields())), std::nullopt);
  EXPECT_EQ(decoder.type(), FrameType::account);
  EXPECT_EQ(decoder.seq(), 8);
  AccountBody body;
  body.active = true;
  ASSERT_EQ(decoder.read_account(body), std::nullopt);
  EXPECT_EQ(body.seq, 8);
  EXPECT_EQ(body.did, "did:plc:abc");
  EXPECT_FALSE(body.active);
  EXPECT_EQ(body.status, std::optional<std::string_view>("takendown"));

  ASSERT_EQ(decoder.decode(frame(
                "#account", with(without(account_fields(), "status"), "active", boolean(true)))),
            std::nullopt);
  ASSERT_EQ(decoder.read_account(body), std::nullopt);
  EXPECT_TRUE(body.active);
  EXPECT_FALSE(body.status.has_value());
}

TEST(Frame, AccountNeedsABooleanActive) {
  KeepingDecoder decoder;
  AccountBody body;
  ASSERT_EQ(decoder.decode(frame("#account", without(account_fields(), "active"))), std::nullopt);
  EXPECT_EQ(decoder.read_account(body), FrameError::malformed_body);
  ASSERT_EQ(decoder.decode(frame("#account", with(account_fields(), "active", integer(1)))),
            std::nullopt);
  EXPECT_EQ(decoder.read_account(body), FrameError::malformed_body);
  ASSERT_EQ(decoder.decode(frame("#account", with(account_fields(), "status", integer(1)))),
            std::nullopt);
  EXPECT_EQ(decoder.read_account(body), FrameError::malformed_body);
  for (const std::string_view field : {"seq", "did", "time"}) {
    ASSERT_EQ(decoder.decode(frame("#account", without(account_fields(), field))), std::nullopt);
    EXPECT_EQ(decoder.read_account(body), FrameError::malformed_body) << "without " << field;
  }
}

TEST(Frame, DecodesAnErrorFrame) {
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(error_frame(
                {{"error", text("FutureCursor")}, {"message", text("Cursor in the future.")}})),
            std::nullopt);
  EXPECT_EQ(decoder.type(), FrameType::error);
  EXPECT_EQ(decoder.seq(), std::nullopt) << "error frames are not sequenced";
  ErrorBody body;
  ASSERT_EQ(decoder.read_error(body), std::nullopt);
  EXPECT_EQ(body.error, "FutureCursor");
  EXPECT_EQ(body.message, "Cursor in the future.");
}

TEST(Frame, ErrorFrameFieldsAreOptionalStrings) {
  KeepingDecoder decoder;
  ErrorBody body;
  body.error = "stale";
  body.message = "stale";
  ASSERT_EQ(decoder.decode(error_frame({})), std::nullopt);
  ASSERT_EQ(decoder.read_error(body), std::nullopt);
  EXPECT_EQ(body.error, "");
  EXPECT_EQ(body.message, "");
  ASSERT_EQ(decoder.decode(error_frame({{"error", integer(1)}})), std::nullopt);
  EXPECT_EQ(decoder.read_error(body), FrameError::malformed_body);
  ASSERT_EQ(decoder.decode(error_frame({{"message", bytes({'m'})}})), std::nullopt);
  EXPECT_EQ(decoder.read_error(body), FrameError::malformed_body);
}

TEST(Frame, ErrorFrameIgnoresAnyTypeInTheHeader) {
  KeepingDecoder decoder;
  const Bytes input =
      concat(CborBuilder().map(2).text("op").integer(-1).text("t").text("#commit").take(),
             map_of({{"seq", integer(3)}}));
  ASSERT_EQ(decoder.decode(input), std::nullopt);
  EXPECT_EQ(decoder.type(), FrameType::error);
  EXPECT_EQ(decoder.seq(), std::nullopt);
}

// ---- other types -----------------------------------------------------------------------------

TEST(Frame, RecognisesEveryKnownTypeName) {
  const std::vector<std::pair<std::string_view, FrameType>> types{
      {"#commit", FrameType::commit},       {"#identity", FrameType::identity},
      {"#account", FrameType::account},     {"#sync", FrameType::sync},
      {"#info", FrameType::info},           {"#handle", FrameType::handle},
      {"#tombstone", FrameType::tombstone}, {"#migrate", FrameType::migrate},
      {"#labels", FrameType::labels},
  };
  for (const auto& [name, type] : types) {
    KeepingDecoder decoder;
    ASSERT_EQ(decoder.decode(frame(name, {{"seq", integer(11)}})), std::nullopt) << name;
    EXPECT_EQ(decoder.type(), type) << name;
    EXPECT_EQ(decoder.type_name(), name);
    EXPECT_EQ(decoder.seq(), 11) << name;
  }
}

TEST(Frame, UnknownTypeDecodesAndKeepsItsName) {
  for (const std::string_view name : {"#future", "commit", "", "#Commit"}) {
    KeepingDecoder decoder;
    ASSERT_EQ(decoder.decode(frame(name, {{"seq", integer(12)}})), std::nullopt) << name;
    EXPECT_EQ(decoder.type(), FrameType::unknown) << name;
    EXPECT_EQ(decoder.type_name(), name);
    EXPECT_EQ(decoder.seq(), 12) << name;
  }
}

TEST(Frame, SeqIsNulloptWhenMissingOrNotAnInteger) {
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(frame("#sync", {{"did", text("did:plc:a")}})), std::nullopt);
  EXPECT_EQ(decoder.seq(), std::nullopt);
  ASSERT_EQ(decoder.decode(frame("#sync", {{"seq", text("12")}})), std::nullopt);
  EXPECT_EQ(decoder.seq(), std::nullopt);
  ASSERT_EQ(decoder.decode(frame("#sync", {{"seq", null()}})), std::nullopt);
  EXPECT_EQ(decoder.seq(), std::nullopt);
}

TEST(Frame, DecoderIsReusableAcrossFrames) {
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(make_commit_frame(1, "d", "r", {}, {})), std::nullopt);
  EXPECT_EQ(decoder.type(), FrameType::commit);
  ASSERT_EQ(decoder.decode(frame("#identity", identity_fields())), std::nullopt);
  EXPECT_EQ(decoder.type(), FrameType::identity);
  EXPECT_EQ(decoder.seq(), 7);
  EXPECT_EQ(decoder.decode(Bytes{0x01}), FrameError::malformed_header);
  ASSERT_EQ(decoder.decode(make_commit_frame(2, "d", "r", {}, {})), std::nullopt);
  EXPECT_EQ(decoder.seq(), 2);
}

TEST(Frame, SeqIsNulloptAfterAFailedDecode) {
  // After a frame fails to decode, `seq()` must not report the previous frame's seq. (Both
  // buffers stay alive here, so the stale read is well-defined.)
  FrameDecoder decoder;
  const Bytes good = make_commit_frame(5, "d", "r", {}, {});
  ASSERT_EQ(decoder.decode(good), std::nullopt);
  ASSERT_EQ(decoder.seq(), 5);
  const Bytes bad_op =
      concat(CborBuilder().map(2).text("t").text("#commit").text("op").uint(2).take(),
             map_of({{"seq", integer(6)}}));
  EXPECT_EQ(decoder.decode(bad_op), FrameError::unknown_op);
  EXPECT_EQ(decoder.seq(), std::nullopt);
}

// ---- malformed headers -----------------------------------------------------------------------

TEST(Frame, OpOtherThanOneOrMinusOneIsUnknownOp) {
  for (const std::int64_t op :
       {std::int64_t{0}, std::int64_t{2}, std::int64_t{-2}, std::int64_t{100}, INT64_MIN}) {
    KeepingDecoder decoder;
    const Bytes input =
        concat(CborBuilder().map(2).text("t").text("#commit").text("op").integer(op).take(),
               map_of(commit_fields()));
    EXPECT_EQ(decoder.decode(input), FrameError::unknown_op) << "op " << op;
  }
}

TEST(Frame, HeaderThatIsNotAMapIsMalformed) {
  const Bytes body = map_of(commit_fields());
  for (const Bytes& bad_header :
       {CborBuilder().array(2).text("#commit").uint(1).take(), CborBuilder().uint(1).take(),
        CborBuilder().text("#commit").take(), CborBuilder().null().take()}) {
    KeepingDecoder decoder;
    EXPECT_EQ(decoder.decode(concat(bad_header, body)), FrameError::malformed_header);
  }
}

TEST(Frame, HeaderWithMissingOrMistypedFieldsIsMalformed) {
  const Bytes body = map_of(commit_fields());
  const Bytes headers[] = {
      CborBuilder().map(1).text("t").text("#commit").take(),                           // no op
      CborBuilder().map(2).text("t").text("#commit").text("op").text("1").take(),      // op text
      CborBuilder().map(2).text("t").text("#commit").text("op").boolean(true).take(),  // op bool
      CborBuilder().map(1).text("op").uint(1).take(),                                  // no t
      CborBuilder().map(2).text("t").uint(1).text("op").uint(1).take(),                // t int
      CborBuilder().map(2).text("t").null().text("op").uint(1).take(),                 // t null
      CborBuilder().map(2).text("t").bytes({'#'}).text("op").uint(1).take(),           // t bytes
  };
  for (std::size_t i = 0; i < std::size(headers); ++i) {
    KeepingDecoder decoder;
    EXPECT_EQ(decoder.decode(concat(headers[i], body)), FrameError::malformed_header)
        << "case " << i;
  }
}

TEST(Frame, HeaderThatIsNotDagCborIsMalformedWithItsCborError) {
  KeepingDecoder decoder;
  EXPECT_EQ(decoder.decode(Bytes{}), FrameError::malformed_header);
  EXPECT_EQ(decoder.last_cbor_error(), codec::CborError::truncated);
  EXPECT_EQ(decoder.decode(Bytes{0xbf, 0xff}), FrameError::malformed_header);
  EXPECT_EQ(decoder.last_cbor_error(), codec::CborError::indefinite_length);
  EXPECT_EQ(decoder.decode(Bytes{0xa1, 0x62, 'o', 'p', 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}),
            FrameError::malformed_header);
  EXPECT_EQ(decoder.last_cbor_error(), codec::CborError::float_value);
}

TEST(Frame, OversizedHeaderIsMalformed) {
  KeepingDecoder decoder;
  const Bytes big =
      CborBuilder().map(2).text("t").text(std::string(2000, 'x')).text("op").uint(1).take();
  EXPECT_EQ(decoder.decode(concat(big, map_of({{"seq", integer(1)}}))),
            FrameError::malformed_header);
}

// ---- malformed bodies ------------------------------------------------------------------------

TEST(Frame, MissingBodyIsMalformedBody) {
  KeepingDecoder decoder;
  EXPECT_EQ(decoder.decode(header("#commit")), FrameError::malformed_body);
  EXPECT_EQ(decoder.last_cbor_error(), codec::CborError::truncated);
}

TEST(Frame, BodyThatIsNotAMapIsMalformedBody) {
  KeepingDecoder decoder;
  EXPECT_EQ(decoder.decode(concat(header("#commit"), CborBuilder().array(0).take())),
            FrameError::malformed_body);
  EXPECT_EQ(decoder.decode(concat(header("#identity"), CborBuilder().uint(7).take())),
            FrameError::malformed_body);
  EXPECT_EQ(decoder.decode(concat(CborBuilder().map(1).text("op").integer(-1).take(),
                                  CborBuilder().text("oops").take())),
            FrameError::malformed_body);
}

TEST(Frame, BodyThatIsNotDagCborIsMalformedBodyWithItsCborError) {
  KeepingDecoder decoder;
  EXPECT_EQ(decoder.decode(concat(header("#commit"), Bytes{0xa1, 0x61, 'a', 0xf7})),
            FrameError::malformed_body);
  EXPECT_EQ(decoder.last_cbor_error(), codec::CborError::undefined_value);
  Bytes trailing = concat(header("#identity"), map_of(identity_fields()));
  trailing.push_back(0x00);
  EXPECT_EQ(decoder.decode(trailing), FrameError::malformed_body);
  EXPECT_EQ(decoder.last_cbor_error(), codec::CborError::trailing_bytes);
}

TEST(Frame, EveryTruncationOfACommitFrameFails) {
  const Bytes record = CborBuilder().map(1).text("text").text("hi").take();
  const Bytes cid = cid_of(codec::kCodecDagCbor, record);
  const Bytes full = make_commit_frame(9, "did:plc:abc", "3kabc", make_car({cid}, {{cid, record}}),
                                       {{"create", "app.bsky.feed.post/1", cid}});
  KeepingDecoder decoder;
  ASSERT_EQ(decoder.decode(full), std::nullopt);
  for (std::size_t length = 0; length < full.size(); ++length) {
    const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(length));
    const auto error = decoder.decode(prefix);
    EXPECT_TRUE(error == FrameError::malformed_header || error == FrameError::malformed_body)
        << "length " << length;
    EXPECT_EQ(peek_frame_seq(prefix), std::nullopt) << "length " << length;
  }
}

// ---- peek_frame_seq --------------------------------------------------------------------------

TEST(Frame, PeekFrameSeqReadsTheSeqOfSequencedFrames) {
  EXPECT_EQ(peek_frame_seq(make_commit_frame(123456789, "d", "r", {}, {})), 123456789);
  EXPECT_EQ(peek_frame_seq(frame("#identity", identity_fields())), 7);
  EXPECT_EQ(peek_frame_seq(frame("#account", account_fields())), 8);
  EXPECT_EQ(peek_frame_seq(frame("#future", {{"seq", integer(99)}})), 99);
}

TEST(Frame, PeekFrameSeqIsNulloptForUnsequencedOrMalformedFrames) {
  EXPECT_EQ(peek_frame_seq(error_frame({{"error", text("ConsumerTooSlow")}})), std::nullopt);
  EXPECT_EQ(peek_frame_seq(Bytes{}), std::nullopt);
  EXPECT_EQ(peek_frame_seq(header("#commit")), std::nullopt);
  EXPECT_EQ(peek_frame_seq(frame("#sync", {{"did", text("d")}})), std::nullopt);
  const Bytes bad_op =
      concat(CborBuilder().map(2).text("t").text("#commit").text("op").uint(3).take(),
             map_of({{"seq", integer(6)}}));
  EXPECT_EQ(peek_frame_seq(bad_op), std::nullopt);
}

// ---- names -----------------------------------------------------------------------------------

TEST(Frame, TypeAndErrorNamesAreDistinct) {
  std::set<std::string_view> types;
  for (std::size_t t = 0; t < kFrameTypeCount; ++t) {
    types.insert(to_string(static_cast<FrameType>(t)));
  }
  EXPECT_EQ(types.size(), kFrameTypeCount);
  EXPECT_EQ(to_string(FrameType::commit), "commit");
  EXPECT_EQ(to_string(FrameType::sync), "sync");
  std::set<std::string_view> errors;
  for (int e = 0; e <= static_cast<int>(FrameError::malformed_body); ++e) {
    const std::string_view name = to_string(static_cast<FrameError>(e));
    EXPECT_NE(name, "unknown");
    errors.insert(name);
  }
  EXPECT_EQ(errors.size(), 3u);
}

}  // namespace
}  // namespace jetstream::firehose
