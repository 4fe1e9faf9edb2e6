// Walking an atproto repository: the signed commit and its Merkle Search Tree (MST).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/car.hpp"

namespace jetstream::codec {

enum class MstError : std::uint8_t {
  missing_block,  ///< a commit or tree node the walk needs is not in the CAR
  bad_commit,     ///< the commit block is not {did, version: 3, data: link, rev, ...}
  bad_node,       ///< a tree node is not {l: link|null, e: [{p, k, v, t}]}
  bad_key,        ///< a key prefix longer than the previous key, or keys out of order
  too_deep,
};

std::string_view to_string(MstError error);

struct RepoCommit {
  std::string did;
  std::string rev;
  std::vector<std::uint8_t> data_cid;  ///< binary CID of the MST root
  std::int64_t version = 0;
};

/// Reads the commit object stored in `car` under `commit_cid`.
std::optional<MstError> read_repo_commit(const CarFile& car, byte_view commit_cid,
                                         RepoCommit& commit);

/// Visits every (key, value CID) of the MST rooted at `root_cid` in key order. Keys are
/// "collection/rkey". Every block is hash-checked against the CID that links to it.
std::optional<MstError> walk_mst(
    const CarFile& car, byte_view root_cid,
    const std::function<void(std::string_view key, byte_view value_cid)>& visit,
    std::uint32_t max_depth = 64);

}  // namespace jetstream::codec
