// Firehose (`com.atproto.sync.subscribeRepos`) frames: a DAG-CBOR header {op, t} followed by a
// DAG-CBOR body. Decoded zero-copy: every view points into the frame buffer, which must outlive
// the decoded frame.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/codec/bytes.hpp"
#include "common/codec/dag_cbor.hpp"

namespace jetstream::firehose {

enum class FrameType : std::uint8_t {
  commit,
  identity,
  account,
  sync,
  info,
  handle,
  tombstone,
  migrate,
  labels,
  error,    ///< op = -1
  unknown,  ///< op = 1 with a type this code does not know
};
inline constexpr std::size_t kFrameTypeCount = 11;
std::string_view to_string(FrameType type);

enum class FrameError : std::uint8_t {
  malformed_header,  ///< header is not DAG-CBOR {op: int, t?: text}
  unknown_op,        ///< op is neither 1 nor -1
  malformed_body,    ///< body is not DAG-CBOR, or a required field is missing or mistyped
};
std::string_view to_string(FrameError error);

struct CommitOp {
  std::string_view action;       ///< "create" | "update" | "delete" (others are kept, then dropped)
  std::string_view path;         ///< "collection/rkey"
  std::optional<byte_view> cid;  ///< binary CID; absent or null for deletes
  std::optional<byte_view> prev;  ///< Sync 1.1: the record's CID before this op (updates, deletes)
};

struct CommitBody {
  std::int64_t seq = 0;
  std::string_view repo;
  std::string_view rev;
  std::string_view time;
  byte_view blocks;  ///< CAR v1 bytes
  bool too_big = false;
  /// The signed commit object's CID (its block is in `blocks`); read by --verify only, so a
  /// frame without one is still a v1 event.
  std::optional<byte_view> commit;
  /// Sync 1.1: the MST root before this commit; absent or null on frames older than Sync 1.1.
  std::optional<byte_view> prev_data;
  std::vector<CommitOp> ops;
};

struct IdentityBody {
  std::int64_t seq = 0;
  std::string_view did;
  std::string_view time;
  std::optional<std::string_view> handle;
};

struct AccountBody {
  std::int64_t seq = 0;
  std::string_view did;
  std::string_view time;
  bool active = false;
  std::optional<std::string_view> status;
};

/// `#sync` (Sync 1.1): the repository's state was reset; its current commit is in `blocks`.
struct SyncBody {
  std::int64_t seq = 0;
  std::string_view did;
  std::string_view rev;
  std::string_view time;
};

struct ErrorBody {
  std::string_view error;
  std::string_view message;
};

/// Decodes frames. Holds reusable parse buffers: one instance per thread.
class FrameDecoder {
 public:
  FrameDecoder();

  /// Reads the header and parses the body; the typed accessors below then read fields. After a
  /// failed decode every accessor reports nothing (seq() is nullopt, read_* fail).
  std::optional<FrameError> decode(byte_view frame);

  FrameType type() const { return type_; }
  std::string_view type_name() const { return type_name_; }
  /// The body's `seq` when it has an integer one (every sequenced type does), else nullopt.
  std::optional<std::int64_t> seq() const;

  std::optional<FrameError> read_commit(CommitBody& out) const;
  std::optional<FrameError> read_identity(IdentityBody& out) const;
  std::optional<FrameError> read_account(AccountBody& out) const;
  std::optional<FrameError> read_sync(SyncBody& out) const;
  std::optional<FrameError> read_error(ErrorBody& out) const;

  /// The CBOR error that made the last decode fail with malformed_header/malformed_body.
  std::optional<codec::CborError> last_cbor_error() const { return last_cbor_error_; }

 private:
  codec::CborLimits header_limits_;
  codec::CborLimits body_limits_;
  codec::CborDocument header_;
  codec::CborDocument body_;
  bool decoded_ = false;  ///< the last decode succeeded: accessors may read body_
  FrameType type_ = FrameType::unknown;
  std::string_view type_name_;
  std::optional<codec::CborError> last_cbor_error_;
};

/// Reads the upstream `seq` of a frame without decoding more than needed (ingest uses this).
std::optional<std::int64_t> peek_frame_seq(byte_view frame);

}  // namespace jetstream::firehose
