#include "common/firehose/frame.hpp"

namespace jetstream::firehose {

using codec::CborDocument;
using codec::CborKind;
using codec::CborNode;

std::string_view to_string(FrameType type) {
  switch (type) {
    case FrameType::commit: return "commit";
    case FrameType::identity: return "identity";
    case FrameType::account: return "account";
    case FrameType::sync: return "sync";
    case FrameType::info: return "info";
    case FrameType::handle: return "handle";
    case FrameType::tombstone: return "tombstone";
    case FrameType::migrate: return "migrate";
    case FrameType::labels: return "labels";
    case FrameType::error: return "error";
    case FrameType::unknown: return "unknown";
  }
  return "unknown";
}

std::string_view to_string(FrameError error) {
  switch (error) {
    case FrameError::malformed_header: return "malformed_header";
    case FrameError::unknown_op: return "unknown_op";
    case FrameError::malformed_body: return "malformed_body";
  }
  return "unknown";
}

namespace {

FrameType type_from_name(std::string_view name) {
  if (name == "#commit") return FrameType::commit;
  if (name == "#identity") return FrameType::identity;
  if (name == "#account") return FrameType::account;
  if (name == "#sync") return FrameType::sync;
  if (name == "#info") return FrameType::info;
  if (name == "#handle") return FrameType::handle;
  if (name == "#tombstone") return FrameType::tombstone;
  if (name == "#migrate") return FrameType::migrate;
  if (name == "#labels") return FrameType::labels;
  return FrameType::unknown;
}

/// Typed field access on a parsed map; every accessor checks presence and kind.
struct MapReader {
  const CborDocument& document;
  std::uint32_t map;

  const CborNode* field(std::string_view key) const {
    const auto index = document.find(map, key);
    return index ? &document.node(*index) : nullptr;
  }
  bool text(std::string_view key, std::string_view& out) const {
    const CborNode* node = field(key);
    if (node == nullptr || node->kind != CborKind::text) return false;
    out = node->text();
    return true;
  }
  /// Absent or null → nullopt and true; text → value; anything else → false.
  bool optional_text(std::string_view key, std::optional<std::string_view>& out) const {
    const CborNode* node = field(key);
    if (node == nullptr || node->kind == CborKind::null) {
      out.reset();
      return true;
    }
    if (node->kind != CborKind::text) return false;
    out = node->text();
    return true;
  }
  bool integer(std::string_view key, std::int64_t& out) const {
    const CborNode* node = field(key);
    if (node == nullptr) return false;
    if (node->kind == CborKind::unsigned_integer) {
      out = static_cast<std::int64_t>(node->integer);
      return true;
    }
    if (node->kind == CborKind::negative_integer) {
      out = -1 - static_cast<std::int64_t>(node->integer);
      return true;
    }
    return false;
  }
  /// Absent → `fallback`; boolean → value; anything else → false.
  bool boolean(std::string_view key, bool& out, bool fallback) const {
    const CborNode* node = field(key);
    if (node == nullptr) {
      out = fallback;
      return true;
    }
    if (node->kind != CborKind::boolean) return false;
    out = node->integer != 0;
    return true;
  }
};

}  // namespace

FrameDecoder::FrameDecoder() {
  header_limits_.max_document_bytes = 1024;
  header_limits_.max_depth = 2;
  header_limits_.max_container_items = 16;
  // Bodies carry the CAR of a whole commit; relays cap frames well below this.
  body_limits_.max_document_bytes = 64u << 20;
  body_limits_.max_string_bytes = 64u << 20;
  body_limits_.max_depth = 32;
}

std::optional<FrameError> FrameDecoder::decode(byte_view frame) {
  decoded_ = false;
  type_ = FrameType::unknown;
  type_name_ = {};
  last_cbor_error_.reset();
  std::size_t header_size = 0;
  if (auto error = header_.parse_prefix(frame, header_limits_, header_size)) {
    last_cbor_error_ = error;
    return FrameError::malformed_header;
  }
  if (header_.root().kind != CborKind::map) return FrameError::malformed_header;
  const MapReader header{header_, 0};
  std::int64_t op = 0;
  if (!header.integer("op", op)) return FrameError::malformed_header;
  if (op == -1) {
    type_ = FrameType::error;
  } else if (op == 1) {
    if (!header.text("t", type_name_)) return FrameError::malformed_header;
    type_ = type_from_name(type_name_);
  } else {
    return FrameError::unknown_op;
  }
  if (auto error = body_.parse(frame.subspan(header_size), body_limits_)) {
    last_cbor_error_ = error;
    return FrameError::malformed_body;
  }
  if (body_.root().kind != CborKind::map) return FrameError::malformed_body;
  decoded_ = true;
  return std::nullopt;
}

std::optional<std::int64_t> FrameDecoder::seq() const {
  std::int64_t value = 0;
  if (!decoded_ || type_ == FrameType::error || !MapReader{body_, 0}.integer("seq", value)) {
    return std::nullopt;
  }
  return value;
}

std::optional<FrameError> FrameDecoder::read_commit(CommitBody& out) const {
  if (!decoded_) return FrameError::malformed_body;
  const MapReader body{body_, 0};
  const CborNode* blocks = body.field("blocks");
  const CborNode* ops = body.field("ops");
  if (!body.integer("seq", out.seq) || !body.text("repo", out.repo) || !body.text("rev", out.rev) ||
      !body.text("time", out.time) || !body.boolean("tooBig", out.too_big, false) ||
      blocks == nullptr || blocks->kind != CborKind::bytes || ops == nullptr ||
      ops->kind != CborKind::array) {
    return FrameError::malformed_body;
  }
  out.blocks = blocks->bytes();
  auto optional_link = [&body](std::string_view key) -> std::optional<byte_view> {
    const CborNode* node = body.field(key);
    if (node == nullptr || node->kind != CborKind::cid_link) return std::nullopt;
    return node->bytes();
  };
  out.commit = optional_link("commit");
  out.prev_data = optional_link("prevData");
  out.ops.clear();
  const auto ops_index = static_cast<std::uint32_t>(ops - body_.nodes().data());
  for (std::uint32_t op = CborDocument::first_child(ops_index); op < ops->end;
       op = body_.next_sibling(op)) {
    if (body_.node(op).kind != CborKind::map) return FrameError::malformed_body;
    const MapReader reader{body_, op};
    CommitOp parsed;
    if (!reader.text("action", parsed.action) || !reader.text("path", parsed.path)) {
      return FrameError::malformed_body;
    }
    const CborNode* cid = reader.field("cid");
    if (cid != nullptr && cid->kind == CborKind::cid_link) {
      parsed.cid = cid->bytes();
    } else if (cid != nullptr && cid->kind != CborKind::null) {
      return FrameError::malformed_body;
    }
    if (const CborNode* prev = reader.field("prev");
        prev != nullptr && prev->kind == CborKind::cid_link) {
      parsed.prev = prev->bytes();
    }
    out.ops.push_back(parsed);
  }
  return std::nullopt;
}

std::optional<FrameError> FrameDecoder::read_identity(IdentityBody& out) const {
  if (!decoded_) return FrameError::malformed_body;
  const MapReader body{body_, 0};
  if (!body.integer("seq", out.seq) || !body.text("did", out.did) || !body.text("time", out.time) ||
      !body.optional_text("handle", out.handle)) {
    return FrameError::malformed_body;
  }
  return std::nullopt;
}

std::optional<FrameError> FrameDecoder::read_account(AccountBody& out) const {
  if (!decoded_) return FrameError::malformed_body;
  const MapReader body{body_, 0};
  const CborNode* active = body.field("active");
  if (!body.integer("seq", out.seq) || !body.text("did", out.did) || !body.text("time", out.time) ||
      active == nullptr || active->kind != CborKind::boolean ||
      !body.optional_text("status", out.status)) {
    return FrameError::malformed_body;
  }
  out.active = active->integer != 0;
  return std::nullopt;
}

std::optional<FrameError> FrameDecoder::read_sync(SyncBody& out) const {
  if (!decoded_) return FrameError::malformed_body;
  const MapReader body{body_, 0};
  if (!body.integer("seq", out.seq) || !body.text("did", out.did) || !body.text("rev", out.rev) ||
      !body.text("time", out.time)) {
    return FrameError::malformed_body;
  }
  return std::nullopt;
}

std::optional<FrameError> FrameDecoder::read_error(ErrorBody& out) const {
  if (!decoded_) return FrameError::malformed_body;
  const MapReader body{body_, 0};
  std::optional<std::string_view> error;
  std::optional<std::string_view> message;
  if (!body.optional_text("error", error) || !body.optional_text("message", message)) {
    return FrameError::malformed_body;
  }
  out.error = error.value_or("");
  out.message = message.value_or("");
  return std::nullopt;
}

std::optional<std::int64_t> peek_frame_seq(byte_view frame) {
  thread_local FrameDecoder decoder;
  if (decoder.decode(frame)) return std::nullopt;
  return decoder.seq();
}

}  // namespace jetstream::firehose
