#include "common/firehose/v1_encoder.hpp"

#include <algorithm>

#include "common/codec/cid.hpp"
#include "common/codec/json_writer.hpp"
#include "common/firehose/rfc3339.hpp"
#include "common/text/utf8.hpp"

namespace jetstream::firehose {

using codec::append_json_int;
using codec::append_json_string;

std::string_view to_string(DropReason reason) {
  switch (reason) {
    case DropReason::malformed_frame: return "malformed_frame";
    case DropReason::error_frame: return "error_frame";
    case DropReason::unknown_type: return "unknown_type";
    case DropReason::too_big: return "too_big";
    case DropReason::bad_car: return "bad_car";
    case DropReason::bad_time: return "bad_time";
    case DropReason::bad_path: return "bad_path";
    case DropReason::unknown_action: return "unknown_action";
    case DropReason::missing_cid: return "missing_cid";
    case DropReason::unsupported_cid: return "unsupported_cid";
    case DropReason::missing_block: return "missing_block";
    case DropReason::cid_mismatch: return "cid_mismatch";
    case DropReason::invalid_record: return "invalid_record";
    case DropReason::bad_commit: return "bad_commit";
    case DropReason::bad_signature: return "bad_signature";
    case DropReason::unknown_key: return "unknown_key";
    case DropReason::unresolvable_did: return "unresolvable_did";
    case DropReason::ops_mismatch: return "ops_mismatch";
    case DropReason::mst_mismatch: return "mst_mismatch";
    case DropReason::rev_not_increasing: return "rev_not_increasing";
    case DropReason::rev_in_future: return "rev_in_future";
    case DropReason::no_prev_data: return "no_prev_data";
  }
  return "unknown";
}

void DecodeStats::add(const DecodeStats& other) {
  frames += other.frames;
  events += other.events;
  commits_verified += other.commits_verified;
  commits_unproven += other.commits_unproven;
  commits_passed_unverified += other.commits_passed_unverified;
  for (std::size_t i = 0; i < frames_by_type.size(); ++i)
    frames_by_type[i] += other.frames_by_type[i];
  for (std::size_t i = 0; i < drops.size(); ++i) drops[i] += other.drops[i];
  for (std::size_t i = 0; i < events_by_kind.size(); ++i)
    events_by_kind[i] += other.events_by_kind[i];
}

std::string PendingEvent::finalize(std::int64_t time_us) const {
  std::string out;
  append_finalized(out, time_us);
  return out;
}

void PendingEvent::append_finalized(std::string& out, std::int64_t time_us) const {
  out.reserve(out.size() + json.size() + 20);
  out.append(json, 0, time_us_offset);
  append_json_int(out, time_us);
  out.append(json, time_us_offset, std::string::npos);
}

V1Encoder::V1Encoder() = default;

namespace {
bool plausible_identifier(std::string_view value);
}  // namespace

FrameOutcome V1Encoder::events_from_frame(byte_view frame, std::vector<PendingEvent>& out) {
  FrameOutcome outcome;
  ++stats_.frames;
  if (auto error = decoder_.decode(frame)) {
    outcome.error = error;
    drop(DropReason::malformed_frame);
    return outcome;
  }
  outcome.type = decoder_.type();
  outcome.seq = decoder_.seq();
  ++stats_.frames_by_type[static_cast<std::size_t>(outcome.type)];
  switch (outcome.type) {
    case FrameType::commit: commit_events(out, outcome); break;
    case FrameType::identity: {
      const std::size_t before = out.size();
      identity_event(out);
      if (out.size() > before) {
        if (gate_ != nullptr) gate_->identity_changed(out.back().did);
        outcome.resync = FrameOutcome::Resync::identity;
        outcome.resync_did = out.back().did;
      }
      break;
    }
    case FrameType::account: {
      const std::size_t before = out.size();
      if (account_event(out) && out.size() > before) {
        outcome.resync = FrameOutcome::Resync::account_active;
        outcome.resync_did = out.back().did;
      }
      break;
    }
    case FrameType::sync: {
      SyncBody body;
      if (!decoder_.read_sync(body) && plausible_identifier(body.did)) {
        outcome.resync = FrameOutcome::Resync::sync;
        outcome.resync_did = body.did;
      }
      break;
    }
    case FrameType::error: {
      ErrorBody body;
      if (!decoder_.read_error(body)) {
        outcome.upstream_error.append(body.error.substr(0, 64));
        outcome.upstream_error.append(": ");
        outcome.upstream_error.append(body.message.substr(0, 190));
      }
      drop(DropReason::error_frame);
      break;
    }
    case FrameType::unknown: drop(DropReason::unknown_type); break;
    default: break;  // info, handle, tombstone, migrate, labels: no v1 event by design
  }
  return outcome;
}

PendingEvent& V1Encoder::start_event(std::vector<PendingEvent>& out, EventKind kind,
                                     std::int64_t seq, std::string_view did,
                                     std::int64_t upstream_time_us) {
  PendingEvent& event = out.emplace_back();
  event.kind = kind;
  event.upstream_seq = seq;
  event.upstream_time_us = upstream_time_us;
  event.did.assign(did);
  event.json.append(R"({"did":)");
  append_json_string(event.json, did);
  event.json.append(R"(,"time_us":)");
  event.time_us_offset = static_cast<std::uint32_t>(event.json.size());
  event.json.append(R"(,"kind":")");
  event.json.append(to_string(kind));
  event.json.append(R"(",")");
  event.json.append(to_string(kind));
  event.json.append(R"(":)");
  ++stats_.events;
  ++stats_.events_by_kind[static_cast<std::size_t>(kind)];
  return event;
}

namespace {

/// DIDs and collections travel between services as bounded strings (proto kMaxStringBytes); an
/// upstream value that is empty or longer cannot be a real identifier.
constexpr std::size_t kMaxIdentifierBytes = 8192;

bool plausible_identifier(std::string_view value) {
  return !value.empty() && value.size() <= kMaxIdentifierBytes;
}

}  // namespace

void V1Encoder::commit_events(std::vector<PendingEvent>& out, FrameOutcome& outcome) {
  if (decoder_.read_commit(commit_) || !plausible_identifier(commit_.repo)) {
    drop(DropReason::malformed_frame);
    return;
  }
  if (commit_.too_big) {
    drop(DropReason::too_big);
    return;
  }
  const auto commit_time_us = parse_rfc3339_us(commit_.time);
  if (!commit_time_us) {
    drop(DropReason::bad_time);
    return;
  }
  if (car_.open(commit_.blocks)) {
    drop(DropReason::bad_car);
    return;
  }
  if (gate_ != nullptr) {
    const CommitGate::Decision decision = gate_->check_commit(commit_, car_);
    if (decision.verdict == CommitGate::Verdict::drop) {
      drop(decision.reason);
      return;
    }
    if (decision.verdict == CommitGate::Verdict::hold) {
      outcome.held = true;
      outcome.repo = commit_.repo;
      return;
    }
    ++(decision.unverified ? stats_.commits_passed_unverified : stats_.commits_verified);
    if (decision.unproven) ++stats_.commits_unproven;
    outcome.gate_passed = true;
    outcome.gate_unverified = decision.unverified;
    outcome.gate_unproven = decision.unproven;
    outcome.repo = commit_.repo;
    outcome.rev = commit_.rev;
  }
  for (const CommitOp& op : commit_.ops) {
    const std::size_t slash = op.path.find('/');
    if (slash == std::string_view::npos || op.path.find('/', slash + 1) != std::string_view::npos ||
        !plausible_identifier(op.path.substr(0, slash))) {
      drop(DropReason::bad_path);
      continue;
    }
    const std::string_view collection = op.path.substr(0, slash);
    const std::string_view rkey = op.path.substr(slash + 1);
    const bool is_delete = op.action == "delete";
    if (!is_delete && op.action != "create" && op.action != "update") {
      drop(DropReason::unknown_action);
      continue;
    }

    const codec::CarBlock* block = nullptr;
    if (!is_delete) {
      if (!op.cid) {
        drop(DropReason::missing_cid);
        continue;
      }
      const auto cid = codec::parse_cid(*op.cid);
      if (!cid || cid->codec != codec::kCodecDagCbor || cid->hash_code != codec::kMultihashSha256) {
        drop(DropReason::unsupported_cid);
        continue;
      }
      block = car_.find(*op.cid);
      if (block == nullptr) {
        drop(DropReason::missing_block);
        continue;
      }
      if (!codec::cid_matches(*cid, block->data)) {
        drop(DropReason::cid_mismatch);
        continue;
      }
    }

    PendingEvent& event =
        start_event(out, EventKind::commit, commit_.seq, commit_.repo, *commit_time_us);
    if (!append_commit(event, commit_.rev, op.action, collection, rkey,
                       block != nullptr ? &block->data : nullptr, op.cid.value_or(byte_view{}))) {
      discard_last(out);
    }
  }
}

bool V1Encoder::append_commit(PendingEvent& event, std::string_view rev, std::string_view action,
                              std::string_view collection, std::string_view rkey,
                              const byte_view* record, byte_view cid) {
  event.collection.assign(collection);
  event.rkey.clear();
  text::append_replacing_invalid(event.rkey, rkey);
  event.rev.assign(rev);
  event.is_delete = action == "delete";
  std::string& json = event.json;
  // Go's omitempty: empty rev, collection or rkey are left out.
  json.push_back('{');
  bool first = true;
  auto field = [&](std::string_view key) {
    if (!first) json.push_back(',');
    first = false;
    json.push_back('"');
    json.append(key);
    json.append("\":");
  };
  if (!rev.empty()) {
    field("rev");
    append_json_string(json, rev);
  }
  field("operation");
  append_json_string(json, action);
  if (!collection.empty()) {
    field("collection");
    append_json_string(json, collection);
  }
  if (!rkey.empty()) {
    field("rkey");
    append_json_string(json, rkey);
  }
  if (record != nullptr) {
    field("record");
    if (records_.append_json(json, *record)) return false;
    field("cid");
    json.push_back('"');
    codec::append_cid_string(json, cid);
    json.push_back('"');
  }
  json.append("}}");
  return true;
}

void V1Encoder::discard_last(std::vector<PendingEvent>& out) {
  out.pop_back();
  --stats_.events;
  --stats_.events_by_kind[static_cast<std::size_t>(EventKind::commit)];
  drop(DropReason::invalid_record);
}

bool V1Encoder::record_event(std::string_view did, std::string_view rev,
                             std::string_view collection, std::string_view rkey, byte_view cid,
                             byte_view record, std::vector<PendingEvent>& out) {
  PendingEvent& event = start_event(out, EventKind::commit, 0, did, 0);
  event.backfill = true;
  const bool tombstone = record.empty();
  if (!append_commit(event, rev, tombstone ? "delete" : "create", collection, rkey,
                     tombstone ? nullptr : &record, cid)) {
    discard_last(out);
    return false;
  }
  return true;
}

std::optional<std::int64_t> V1Encoder::admit_identity_event(bool unreadable, std::string_view did,
                                                            std::string_view time) {
  if (unreadable || !plausible_identifier(did)) {
    drop(DropReason::malformed_frame);
    return std::nullopt;
  }
  const auto time_us = parse_rfc3339_us(time);
  if (!time_us) drop(DropReason::bad_time);
  return time_us;
}

void V1Encoder::identity_event(std::vector<PendingEvent>& out) {
  IdentityBody body;
  const auto time_us =
      admit_identity_event(decoder_.read_identity(body).has_value(), body.did, body.time);
  if (!time_us) return;
  PendingEvent& event = start_event(out, EventKind::identity, body.seq, body.did, *time_us);
  std::string& json = event.json;
  json.append(R"({"did":)");
  append_json_string(json, body.did);
  if (body.handle) {
    json.append(R"(,"handle":)");
    append_json_string(json, *body.handle);
  }
  json.append(R"(,"seq":)");
  append_json_int(json, body.seq);
  json.append(R"(,"time":)");
  append_json_string(json, body.time);
  json.append("}}");
}

bool V1Encoder::account_event(std::vector<PendingEvent>& out) {
  AccountBody body;
  const auto time_us =
      admit_identity_event(decoder_.read_account(body).has_value(), body.did, body.time);
  if (!time_us) return false;
  PendingEvent& event = start_event(out, EventKind::account, body.seq, body.did, *time_us);
  std::string& json = event.json;
  json.append(body.active ? R"({"active":true,"did":)" : R"({"active":false,"did":)");
  append_json_string(json, body.did);
  json.append(R"(,"seq":)");
  append_json_int(json, body.seq);
  if (body.status) {
    json.append(R"(,"status":)");
    append_json_string(json, *body.status);
  }
  json.append(R"(,"time":)");
  append_json_string(json, body.time);
  json.append("}}");
  return body.active;
}

}  // namespace jetstream::firehose
