#include "common/codec/mst.hpp"

namespace jetstream::codec {

std::string_view to_string(MstError error) {
  switch (error) {
    case MstError::missing_block: return "missing_block";
    case MstError::bad_commit: return "bad_commit";
    case MstError::bad_node: return "bad_node";
    case MstError::bad_key: return "bad_key";
    case MstError::too_deep: return "too_deep";
  }
  return "unknown";
}

namespace {

const CarBlock* verified_block(const CarFile& car, byte_view cid_bytes) {
  const CarBlock* block = car.find(cid_bytes);
  if (block == nullptr || !cid_matches(block->cid, block->data)) return nullptr;
  return block;
}

class MstWalker {
 public:
  MstWalker(const CarFile& car, const std::function<void(std::string_view, byte_view)>& visit,
            std::uint32_t max_depth)
      : car_(car), visit_(visit), max_depth_(max_depth) {}

  std::optional<MstError> walk(byte_view node_cid, std::uint32_t depth) {
    if (depth > max_depth_) return MstError::too_deep;
    const CarBlock* block = verified_block(car_, node_cid);
    if (block == nullptr) return MstError::missing_block;
    CborDocument node;  // one per level: children are walked while this node is still read
    CborLimits limits;
    limits.max_depth = 4;
    if (node.parse(block->data, limits) || node.root().kind != CborKind::map) {
      return MstError::bad_node;
    }
    const auto left = node.find(0, "l");
    const auto entries = node.find(0, "e");
    if (!entries || node.node(*entries).kind != CborKind::array) return MstError::bad_node;
    if (left) {  // an absent "l" is read as null, like the reference implementations do
      if (auto error = walk_link(node, *left, depth)) return error;
    }

    std::string key;
    for (std::uint32_t entry = CborDocument::first_child(*entries); entry < node.node(*entries).end;
         entry = node.next_sibling(entry)) {
      const auto prefix = node.find(entry, "p");
      const auto suffix = node.find(entry, "k");
      const auto value = node.find(entry, "v");
      const auto tree = node.find(entry, "t");
      if (!prefix || !suffix || !value || node.node(*prefix).kind != CborKind::unsigned_integer ||
          node.node(*suffix).kind != CborKind::bytes ||
          node.node(*value).kind != CborKind::cid_link) {
        return MstError::bad_node;
      }
      // Keys are compressed against the previous key of the same node.
      const std::uint64_t shared = node.node(*prefix).integer;
      if (shared > key.size()) return MstError::bad_key;
      key.resize(shared);
      key.append(as_chars(node.node(*suffix).bytes()));
      if (!previous_key_.empty() && key <= previous_key_) return MstError::bad_key;
      previous_key_ = key;
      visit_(key, node.node(*value).bytes());
      if (tree) {
        if (auto error = walk_link(node, *tree, depth)) return error;
      }
    }
    return std::nullopt;
  }

 private:
  std::optional<MstError> walk_link(const CborDocument& node, std::uint32_t index,
                                    std::uint32_t depth) {
    const CborNode& link = node.node(index);
    if (link.kind == CborKind::null) return std::nullopt;
    if (link.kind != CborKind::cid_link) return MstError::bad_node;
    return walk(link.bytes(), depth + 1);
  }

  const CarFile& car_;
  const std::function<void(std::string_view, byte_view)>& visit_;
  std::uint32_t max_depth_;
  std::string previous_key_;
};

}  // namespace

std::optional<MstError> read_repo_commit(const CarFile& car, byte_view commit_cid,
                                         RepoCommit& commit) {
  const CarBlock* block = verified_block(car, commit_cid);
  if (block == nullptr) return MstError::missing_block;
  CborDocument document;
  if (document.parse(block->data, CborLimits{}) || document.root().kind != CborKind::map) {
    return MstError::bad_commit;
  }
  const auto did = document.find(0, "did");
  const auto version = document.find(0, "version");
  const auto data = document.find(0, "data");
  const auto rev = document.find(0, "rev");
  if (!did || !version || !data || !rev || document.node(*did).kind != CborKind::text ||
      document.node(*version).kind != CborKind::unsigned_integer ||
      document.node(*data).kind != CborKind::cid_link ||
      document.node(*rev).kind != CborKind::text) {
    return MstError::bad_commit;
  }
  commit.did = std::string(document.node(*did).text());
  commit.rev = std::string(document.node(*rev).text());
  const byte_view data_cid = document.node(*data).bytes();
  commit.data_cid.assign(data_cid.begin(), data_cid.end());
  commit.version = static_cast<std::int64_t>(document.node(*version).integer);
  return std::nullopt;
}

std::optional<MstError> walk_mst(
    const CarFile& car, byte_view root_cid,
    const std::function<void(std::string_view key, byte_view value_cid)>& visit,
    std::uint32_t max_depth) {
  MstWalker walker(car, visit, max_depth);
  return walker.walk(root_cid, 0);
}

}  // namespace jetstream::codec
