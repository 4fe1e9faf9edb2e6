#include "services/backfill/repo_reader.hpp"

#include "proto/backfill.hpp"

namespace jetstream::backfill {

std::string_view to_string(RepoFailure failure) {
  switch (failure) {
    case RepoFailure::truncated: return "truncated";
    case RepoFailure::bad_car: return "bad_car";
    case RepoFailure::block_too_large: return "block_too_large";
    case RepoFailure::cid_mismatch: return "cid_mismatch";
    case RepoFailure::bad_repo: return "bad_repo";
    case RepoFailure::wrong_repo: return "wrong_repo";
    case RepoFailure::too_large: return "too_large";
    case RepoFailure::spill_failed: return "spill_failed";
    case RepoFailure::bad_signature: return "bad_signature";
  }
  return "unknown";
}

namespace {

codec::RepoRecordStream::Options stream_options(const RepoReader::Options& options,
                                                identity::CommitSignatureChecker& signatures) {
  codec::RepoRecordStream::Options out;
  if (options.signing_key) {
    const RepoReader::Options* checked = &options;
    identity::CommitSignatureChecker* checker = &signatures;
    out.accept_commit = [checked, checker](byte_view block, const codec::RepoCommit& commit) {
      return checker->check(block, checked->did, commit.rev, *checked->signing_key) ==
             identity::CommitSignature::valid;
    };
  }
  const syntax::CollectionSet* collections = &options.collections;
  out.wanted = [collections](std::string_view collection) {
    return collections->matches(collection);
  };
  out.max_node_bytes = options.max_node_bytes;
  out.spill_directory = options.spill_directory;
  return out;
}

}  // namespace

RepoReader::RepoReader(Options options, BatchSink sink)
    : options_(std::move(options)),
      collections_text_(options_.collections.canonical()),
      sink_(std::move(sink)),
      car_(codec::CarStreamReader::Limits{64 * 1024, options_.max_block_bytes}),
      stream_(stream_options(options_, signatures_),
              [this](std::string_view path, byte_view cid, byte_view record) {
                on_record(path, cid, record);
              }) {}

bool RepoReader::fail(RepoFailure failure, std::string detail) {
  if (!failure_) {
    failure_ = failure;
    if (detail.size() > 256) detail.resize(256);
    detail_ = std::move(detail);
  }
  return false;
}

bool RepoReader::fail_mst(codec::MstError error) {
  switch (error) {
    case codec::MstError::too_large: return fail(RepoFailure::too_large, "the tree's nodes");
    case codec::MstError::spill_failed: return fail(RepoFailure::spill_failed, "spill file");
    case codec::MstError::commit_refused:
      return fail(RepoFailure::bad_signature,
                  "the commit is not signed by the DID's #atproto key (or is another DID's)");
    default: return fail(RepoFailure::bad_repo, std::string(codec::to_string(error)));
  }
}

bool RepoReader::feed(std::span<const std::uint8_t> chunk) {
  if (failure_) return false;
  std::optional<codec::MstError> tree_error;
  const auto error = car_.feed(chunk, [&](const codec::CidView& cid, byte_view data) {
    if (tree_error || failure_) return;
    if (!root_set_) {
      if (car_.roots().size() != 1) {
        fail(RepoFailure::bad_repo, "a repository CAR has exactly one root");
        return;
      }
      stream_.set_root(car_.roots().front().bytes);
      root_set_ = true;
    }
    tree_error = stream_.add_block(cid.bytes, data);
  });
  if (error) {
    switch (*error) {
      case codec::CarError::truncated: return fail(RepoFailure::truncated, "CAR");
      case codec::CarError::block_too_large:
        return fail(RepoFailure::block_too_large, "a block over the limit");
      case codec::CarError::cid_mismatch:
        return fail(RepoFailure::cid_mismatch, "a block's bytes are not its CID's");
      default: return fail(RepoFailure::bad_car, std::string(codec::to_string(*error)));
    }
  }
  if (tree_error) return fail_mst(*tree_error);
  return !failure_;
}

bool RepoReader::finish() {
  if (failure_) return false;
  if (const auto error = car_.finish()) {
    return fail(
        *error == codec::CarError::truncated ? RepoFailure::truncated : RepoFailure::bad_car,
        std::string(codec::to_string(*error)));
  }
  if (!root_set_) return fail(RepoFailure::bad_repo, "a CAR without blocks");
  if (const auto error = stream_.finish()) return fail_mst(*error);
  if (failure_) return false;
  if (stream_.commit().did != options_.did) {
    return fail(RepoFailure::wrong_repo, "the commit is " + stream_.commit().did + "'s");
  }
  flush(false);
  flush(true);
  return true;
}

void RepoReader::on_record(std::string_view path, byte_view cid, byte_view record) {
  if (failure_) return;
  // Records are reached through the commit: it is known by now.
  if (stream_.commit().did != options_.did) {
    fail(RepoFailure::wrong_repo, "the commit is " + stream_.commit().did + "'s");
    return;
  }
  const std::size_t slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == path.size()) return;
  if (cid.empty() || cid.size() > proto::kMaxCidBytes || record.empty() ||
      record.size() > proto::kMaxPayloadBytes) {
    return;  // not a record decode could take; the tree's own checks passed
  }
  Record& out = pending_.emplace_back();
  out.collection.assign(path.substr(0, slash));
  out.rkey.assign(path.substr(slash + 1));
  out.cid.assign(cid.begin(), cid.end());
  out.record.assign(record.begin(), record.end());
  pending_bytes_ += path.size() + cid.size() + record.size();
  if (pending_.size() >= options_.batch_records || pending_bytes_ >= options_.batch_bytes) {
    flush(false);
  }
}

void RepoReader::flush(bool last) {
  if (pending_.empty() && !last) return;
  proto::RepoBatchView view;
  view.batch_id = options_.next_batch_id();
  view.last = last;
  view.did = options_.did;
  view.rev = stream_.commit().rev;
  view.collections = collections_text_;
  view.records.reserve(pending_.size());
  for (const Record& record : pending_) {
    view.records.push_back({record.collection, record.rkey, record.cid, record.record});
  }
  if (const auto invalid = proto::validate(view)) {
    // A DID or rev no batch may carry (the commit's own fields): the repository is unusable.
    fail(RepoFailure::bad_repo, "the commit's did or rev cannot travel to decode");
    pending_.clear();
    return;
  }
  OutgoingBatch batch;
  batch.id = view.batch_id;
  batch.last = last;
  batch.records = pending_.size();
  batch.bytes = proto::encode_repo_batch(view);
  records_sent_ += pending_.size();
  ++batches_sent_;
  pending_.clear();
  pending_bytes_ = 0;
  sink_(std::move(batch));
}

}  // namespace jetstream::backfill
