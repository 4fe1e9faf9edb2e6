#include "common/codec/mst.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <tuple>

#include "common/codec/sha256.hpp"

namespace jetstream::codec {

std::string_view to_string(MstError error) {
  switch (error) {
    case MstError::missing_block: return "missing_block";
    case MstError::bad_commit: return "bad_commit";
    case MstError::bad_node: return "bad_node";
    case MstError::bad_key: return "bad_key";
    case MstError::too_deep: return "too_deep";
    case MstError::bad_height: return "bad_height";
    case MstError::too_large: return "too_large";
    case MstError::commit_refused: return "commit_refused";
    case MstError::spill_failed: return "spill_failed";
    case MstError::key_exists: return "key_exists";
    case MstError::key_absent: return "key_absent";
  }
  return "unknown";
}

std::uint32_t mst_key_height(std::string_view key) {
  const Sha256Digest digest = sha256(as_bytes(key));
  std::uint32_t height = 0;
  for (const std::uint8_t byte : digest) {
    if (byte == 0) {
      height += 4;
      continue;
    }
    if (byte < 0x04) {
      height += 3;
    } else if (byte < 0x10) {
      height += 2;
    } else if (byte < 0x40) {
      height += 1;
    }
    break;
  }
  return height;
}

namespace {

/// Atproto bounds keys (collection/rkey paths) well below this; a longer key is hostile.
constexpr std::size_t kMaxKeyBytes = 1024;

const CarBlock* verified_block(const CarFile& car, byte_view cid_bytes) {
  const CarBlock* block = car.find(cid_bytes);
  if (block == nullptr) return nullptr;
  const auto cid = parse_cid(cid_bytes);
  if (!cid || !cid_matches(*cid, block->data)) return nullptr;
  return block;
}

/// The one reader of MST node blocks: {l: link|null, e: [{p, k, v, t}]}. Calls
/// `on_left(link)` when `l` is a link, then `on_entry(key, value, tree)` for each entry with its
/// key decompressed (`tree` empty when null). Keys must increase within the node. A callback's
/// error stops the read.
template <typename OnLeft, typename OnEntry>
std::optional<MstError> read_node_block(byte_view data, CborDocument& node, OnLeft&& on_left,
                                        OnEntry&& on_entry) {
  CborLimits limits;
  limits.max_depth = 4;
  if (node.parse(data, limits) || node.root().kind != CborKind::map) {
    return MstError::bad_node;
  }
  const auto left = node.find(0, "l");
  const auto entries = node.find(0, "e");
  if (!entries || node.node(*entries).kind != CborKind::array) return MstError::bad_node;
  if (left) {  // an absent "l" is read as null, like the reference implementations do
    const CborNode& link = node.node(*left);
    if (link.kind == CborKind::cid_link) {
      if (auto error = on_left(link.bytes())) return error;
    } else if (link.kind != CborKind::null) {
      return MstError::bad_node;
    }
  }
  std::string key;
  bool first = true;
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
    // The new key shares `shared` bytes with the previous one, so it is above it exactly when
    // its suffix is above the previous key's tail: compared before the key is rebuilt in place.
    const std::string_view suffix_text = as_chars(node.node(*suffix).bytes());
    const bool increasing = first || suffix_text > std::string_view(key).substr(shared);
    key.resize(shared);
    key.append(suffix_text);
    if (key.empty() || key.size() > kMaxKeyBytes || !increasing) return MstError::bad_key;
    first = false;
    byte_view subtree;
    if (tree) {
      const CborNode& link = node.node(*tree);
      if (link.kind == CborKind::cid_link) {
        subtree = link.bytes();
      } else if (link.kind != CborKind::null) {
        return MstError::bad_node;
      }
    }
    if (auto error = on_entry(key, node.node(*value).bytes(), subtree)) return error;
  }
  return std::nullopt;
}

template <typename OnLeft, typename OnEntry>
std::optional<MstError> read_node(const CarFile& car, byte_view cid, CborDocument& node,
                                  OnLeft&& on_left, OnEntry&& on_entry) {
  const CarBlock* block = verified_block(car, cid);
  if (block == nullptr) return MstError::missing_block;
  return read_node_block(block->data, node, on_left, on_entry);
}

class MstWalker {
 public:
  MstWalker(const CarFile& car, const std::function<void(std::string_view, byte_view)>& visit,
            std::uint32_t max_depth)
      : car_(car), visit_(visit), max_depth_(max_depth) {}

  std::optional<MstError> walk(byte_view node_cid, std::uint32_t depth) {
    if (depth > max_depth_) return MstError::too_deep;
    CborDocument node;  // one per level: children are walked while this node is still read
    return read_node(
        car_, node_cid, node, [&](byte_view left) { return walk(left, depth + 1); },
        [&](const std::string& key, byte_view value, byte_view subtree) -> std::optional<MstError> {
          if (!previous_key_.empty() && key <= previous_key_) return MstError::bad_key;
          previous_key_ = key;
          visit_(key, value);
          if (!subtree.empty()) return walk(subtree, depth + 1);
          return std::nullopt;
        });
  }

 private:
  const CarFile& car_;
  const std::function<void(std::string_view, byte_view)>& visit_;
  std::uint32_t max_depth_;
  std::string previous_key_;
};

void put_head(std::vector<std::uint8_t>& out, std::uint8_t major, std::uint64_t value) {
  const auto type = static_cast<std::uint8_t>(major << 5);
  if (value < 24) {
    out.push_back(static_cast<std::uint8_t>(type | value));
    return;
  }
  int bytes = 8;
  std::uint8_t info = 27;
  if (value <= 0xff) {
    bytes = 1;
    info = 24;
  } else if (value <= 0xffff) {
    bytes = 2;
    info = 25;
  } else if (value <= 0xffffffffu) {
    bytes = 4;
    info = 26;
  }
  out.push_back(static_cast<std::uint8_t>(type | info));
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(static_cast<std::uint8_t>((value >> (8 * i)) & 0xffu));
  }
}

void put_text(std::vector<std::uint8_t>& out, std::string_view text) {
  put_head(out, 3, text.size());
  out.insert(out.end(), text.begin(), text.end());
}

void put_link(std::vector<std::uint8_t>& out, std::string_view cid) {
  out.push_back(0xd8);  // tag 42: a CID link, its bytes prefixed by the multibase identity 0x00
  out.push_back(0x2a);
  put_head(out, 2, cid.size() + 1);
  out.push_back(0x00);
  out.insert(out.end(), cid.begin(), cid.end());
}

}  // namespace

std::optional<MstError> read_repo_commit(const CarFile& car, byte_view commit_cid,
                                         RepoCommit& commit, CborDocument* scratch) {
  const CarBlock* block = verified_block(car, commit_cid);
  if (block == nullptr) return MstError::missing_block;
  return read_repo_commit_block(block->data, commit, scratch);
}

std::optional<MstError> read_repo_commit_block(byte_view block, RepoCommit& commit,
                                               CborDocument* scratch) {
  std::optional<CborDocument> local;
  CborDocument& document = scratch != nullptr ? *scratch : local.emplace();
  if (document.parse(block, CborLimits{}) || document.root().kind != CborKind::map) {
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

// ---- MstTree

void MstTree::clear() {
  nodes_.clear();
  blocks_read_.clear();
  car_ = nullptr;
  root_ = new_node(0);
}

std::int32_t MstTree::new_node(std::uint32_t height) {
  nodes_.emplace_back();
  nodes_.back().height = height;
  return static_cast<std::int32_t>(nodes_.size() - 1);
}

std::optional<MstError> MstTree::load(const CarFile& car, byte_view root_cid) {
  clear();
  car_ = &car;
  Node& root = nodes_[static_cast<std::size_t>(root_)];
  root.loaded = false;
  root.dirty = false;
  root.height_known = false;
  root.cid.assign(as_chars(root_cid));
  return ensure_loaded(root_, {});
}

MstTree::Range MstTree::child_range(const Node& node, std::size_t gap, Range range) {
  return Range{gap > 0 ? &node.leaves[gap - 1].key : range.low,
               gap < node.leaves.size() ? &node.leaves[gap].key : range.high};
}

std::optional<MstError> MstTree::ensure_loaded(std::int32_t index, Range range) {
  Node& node = nodes_[static_cast<std::size_t>(index)];
  if (node.loaded) return std::nullopt;
  if (car_ == nullptr) return MstError::missing_block;
  std::vector<std::pair<std::size_t, byte_view>>
      links;  // (gap, CID): made stubs once the layer is known
  node.leaves.clear();
  const auto error = read_node(
      *car_, as_bytes(node.cid), document_,
      [&](byte_view left) -> std::optional<MstError> {
        links.emplace_back(0, left);
        return std::nullopt;
      },
      [&](const std::string& key, byte_view value, byte_view subtree) -> std::optional<MstError> {
        if ((range.low != nullptr && key <= *range.low) ||
            (range.high != nullptr && key >= *range.high)) {
          return MstError::bad_key;
        }
        const std::uint32_t height = mst_key_height(key);
        if (!node.height_known) {
          node.height = height;
          node.height_known = true;
        } else if (height != node.height) {
          return MstError::bad_height;
        }
        node.leaves.push_back(Leaf{key, std::string(as_chars(value))});
        if (!subtree.empty()) links.emplace_back(node.leaves.size(), subtree);
        return std::nullopt;
      });
  if (error) return error;
  if (!node.height_known) {
    // Only a root is read without a known layer: with no keys it must be the empty tree.
    if (!links.empty()) return MstError::bad_height;
    node.height = 0;
    node.height_known = true;
  }
  if (node.leaves.empty() && links.empty() && index != root_) return MstError::bad_node;
  if (!links.empty() && node.height == 0) return MstError::bad_height;
  node.children.assign(node.leaves.size() + 1, kNone);
  for (const auto& [gap, cid] : links) {
    const std::int32_t child = new_node(node.height - 1);
    Node& stub = nodes_[static_cast<std::size_t>(child)];
    stub.loaded = false;
    stub.dirty = false;
    stub.cid.assign(as_chars(cid));
    node.children[gap] = child;
  }
  node.loaded = true;
  blocks_read_.push_back(node.cid);
  return std::nullopt;
}

namespace {

template <typename Leaves>
std::size_t gap_of(const Leaves& leaves, std::string_view key) {
  return static_cast<std::size_t>(
      std::lower_bound(leaves.begin(), leaves.end(), key,
                       [](const auto& leaf, std::string_view k) { return leaf.key < k; }) -
      leaves.begin());
}

}  // namespace

std::optional<MstError> MstTree::get(std::string_view key, std::optional<std::string>& value) {
  value.reset();
  std::int32_t index = root_;
  Range range;
  while (index != kNone) {
    if (auto error = ensure_loaded(index, range)) return error;
    const Node& node = nodes_[static_cast<std::size_t>(index)];
    const std::size_t gap = gap_of(node.leaves, key);
    if (gap < node.leaves.size() && node.leaves[gap].key == key) {
      value = node.leaves[gap].value;
      return std::nullopt;
    }
    range = child_range(node, gap, range);
    index = node.children[gap];
  }
  return std::nullopt;
}

std::int32_t MstTree::wrap(std::int32_t index, std::uint32_t from_height, std::uint32_t to_height) {
  if (index == kNone) return kNone;
  for (std::uint32_t height = from_height; height < to_height; ++height) {
    const std::int32_t parent = new_node(height + 1);
    nodes_[static_cast<std::size_t>(parent)].children = {index};
    index = parent;
  }
  return index;
}

std::optional<MstError> MstTree::insert(std::string_view key, byte_view value) {
  if (key.empty() || key.size() > kMaxKeyBytes) return MstError::bad_key;
  const std::uint32_t height = mst_key_height(key);
  if (auto error = ensure_loaded(root_, {})) return error;
  Node& root = nodes_[static_cast<std::size_t>(root_)];
  if (is_empty(root_)) {
    root.height = height;
    root.leaves = {Leaf{std::string(key), std::string(as_chars(value))}};
    root.children = {kNone, kNone};
    root.dirty = true;
    return std::nullopt;
  }
  if (height > root.height) {
    // The tree grows: the old root splits around the key under a new root on its layer.
    const std::uint32_t old_height = root.height;
    std::int32_t left = kNone;
    std::int32_t right = kNone;
    if (auto error = split(root_, {}, key, left, right)) return error;
    const std::int32_t top = new_node(height);
    Node& node = nodes_[static_cast<std::size_t>(top)];
    node.leaves = {Leaf{std::string(key), std::string(as_chars(value))}};
    node.children = {wrap(left, old_height, height - 1), wrap(right, old_height, height - 1)};
    root_ = top;
    return std::nullopt;
  }
  return insert_at(root_, {}, key, value, height);
}

std::optional<MstError> MstTree::insert_at(std::int32_t index, Range range, std::string_view key,
                                           byte_view value, std::uint32_t height) {
  if (auto error = ensure_loaded(index, range)) return error;
  Node& node = nodes_[static_cast<std::size_t>(index)];
  const std::size_t gap = gap_of(node.leaves, key);
  if (gap < node.leaves.size() && node.leaves[gap].key == key) return MstError::key_exists;
  const std::int32_t child = node.children[gap];
  if (height == node.height) {
    // The key joins this node; the subtree it falls in splits around it.
    std::int32_t left = kNone;
    std::int32_t right = kNone;
    if (child != kNone) {
      if (auto error = split(child, child_range(node, gap, range), key, left, right)) {
        return error;
      }
    }
    node.leaves.insert(node.leaves.begin() + static_cast<std::ptrdiff_t>(gap),
                       Leaf{std::string(key), std::string(as_chars(value))});
    node.children[gap] = left;
    node.children.insert(node.children.begin() + static_cast<std::ptrdiff_t>(gap) + 1, right);
  } else if (child == kNone) {
    const std::int32_t leaf = new_node(height);
    Node& created = nodes_[static_cast<std::size_t>(leaf)];
    created.leaves = {Leaf{std::string(key), std::string(as_chars(value))}};
    created.children = {kNone, kNone};
    node.children[gap] = wrap(leaf, height, node.height - 1);
  } else if (auto error = insert_at(child, child_range(node, gap, range), key, value, height)) {
    return error;
  }
  node.dirty = true;
  return std::nullopt;
}

std::optional<MstError> MstTree::split(std::int32_t index, Range range, std::string_view key,
                                       std::int32_t& left, std::int32_t& right) {
  if (auto error = ensure_loaded(index, range)) return error;
  Node& node = nodes_[static_cast<std::size_t>(index)];
  const std::size_t gap = gap_of(node.leaves, key);
  if (gap < node.leaves.size() && node.leaves[gap].key == key) return MstError::key_exists;
  std::int32_t inner_left = kNone;
  std::int32_t inner_right = kNone;
  if (node.children[gap] != kNone) {
    if (auto error = split(node.children[gap], child_range(node, gap, range), key, inner_left,
                           inner_right)) {
      return error;
    }
  }
  const std::int32_t upper = new_node(node.height);
  Node& upper_node = nodes_[static_cast<std::size_t>(upper)];
  upper_node.leaves.assign(
      std::make_move_iterator(node.leaves.begin() + static_cast<std::ptrdiff_t>(gap)),
      std::make_move_iterator(node.leaves.end()));
  upper_node.children.assign(1, inner_right);
  upper_node.children.insert(upper_node.children.end(),
                             node.children.begin() + static_cast<std::ptrdiff_t>(gap) + 1,
                             node.children.end());
  node.leaves.resize(gap);
  node.children.resize(gap);
  node.children.push_back(inner_left);
  node.dirty = true;
  left = is_empty(index) ? kNone : index;
  right = is_empty(upper) ? kNone : upper;
  return std::nullopt;
}

std::optional<MstError> MstTree::update(std::string_view key, byte_view value) {
  std::vector<std::int32_t> path;
  std::int32_t index = root_;
  Range range;
  while (index != kNone) {
    if (auto error = ensure_loaded(index, range)) return error;
    path.push_back(index);
    Node& node = nodes_[static_cast<std::size_t>(index)];
    const std::size_t gap = gap_of(node.leaves, key);
    if (gap < node.leaves.size() && node.leaves[gap].key == key) {
      node.leaves[gap].value.assign(as_chars(value));
      for (const std::int32_t changed : path)
        nodes_[static_cast<std::size_t>(changed)].dirty = true;
      return std::nullopt;
    }
    range = child_range(node, gap, range);
    index = node.children[gap];
  }
  return MstError::key_absent;
}

std::optional<MstError> MstTree::remove(std::string_view key) {
  if (auto error = remove_at(root_, {}, key)) return error;
  // A root left with no keys of its own gives way to its only subtree, as often as it takes: a
  // subtree that is itself only a link to a lower layer is read to find out.
  for (;;) {
    if (auto error = ensure_loaded(root_, {})) return error;
    const Node& root = nodes_[static_cast<std::size_t>(root_)];
    if (!root.leaves.empty() || root.children[0] == kNone) break;
    root_ = root.children[0];
  }
  if (is_empty(root_)) nodes_[static_cast<std::size_t>(root_)].height = 0;
  return std::nullopt;
}

std::optional<MstError> MstTree::remove_at(std::int32_t index, Range range, std::string_view key) {
  if (auto error = ensure_loaded(index, range)) return error;
  Node& node = nodes_[static_cast<std::size_t>(index)];
  const std::size_t gap = gap_of(node.leaves, key);
  if (gap < node.leaves.size() && node.leaves[gap].key == key) {
    // The subtrees on both sides of the key become one.
    std::int32_t merged = kNone;
    if (auto error =
            merge(node.children[gap], node.children[gap + 1], child_range(node, gap, range),
                  child_range(node, gap + 1, range), merged)) {
      return error;
    }
    node.leaves.erase(node.leaves.begin() + static_cast<std::ptrdiff_t>(gap));
    node.children.erase(node.children.begin() + static_cast<std::ptrdiff_t>(gap) + 1);
    node.children[gap] = merged;
  } else {
    const std::int32_t child = node.children[gap];
    if (child == kNone) return MstError::key_absent;
    if (auto error = remove_at(child, child_range(node, gap, range), key)) return error;
    if (is_empty(child)) node.children[gap] = kNone;
  }
  node.dirty = true;
  return std::nullopt;
}

std::optional<MstError> MstTree::merge(std::int32_t left, std::int32_t right, Range left_range,
                                       Range right_range, std::int32_t& merged) {
  if (left == kNone || right == kNone) {
    merged = left == kNone ? right : left;
    return std::nullopt;
  }
  if (auto error = ensure_loaded(left, left_range)) return error;
  if (auto error = ensure_loaded(right, right_range)) return error;
  Node& low = nodes_[static_cast<std::size_t>(left)];
  Node& high = nodes_[static_cast<std::size_t>(right)];
  std::int32_t inner = kNone;
  if (auto error = merge(low.children.back(), high.children.front(),
                         child_range(low, low.leaves.size(), left_range),
                         child_range(high, 0, right_range), inner)) {
    return error;
  }
  low.children.back() = inner;
  low.leaves.insert(low.leaves.end(), std::make_move_iterator(high.leaves.begin()),
                    std::make_move_iterator(high.leaves.end()));
  low.children.insert(low.children.end(), high.children.begin() + 1, high.children.end());
  high.leaves.clear();
  high.children.assign(1, kNone);
  low.dirty = true;
  merged = left;
  return std::nullopt;
}

const std::string& MstTree::encode(std::int32_t index) {
  Node& node = nodes_[static_cast<std::size_t>(index)];
  if (!node.dirty) return node.cid;
  for (const std::int32_t child : node.children) {
    if (child != kNone) encode(child);
  }
  std::vector<std::uint8_t>& out = node.block;
  out.clear();
  // {e: [...], l: ...}: DAG-CBOR orders map keys by length, then bytewise.
  put_head(out, 5, 2);
  put_text(out, "e");
  put_head(out, 4, node.leaves.size());
  std::string_view previous;
  for (std::size_t i = 0; i < node.leaves.size(); ++i) {
    const std::string& key = node.leaves[i].key;
    std::size_t shared = 0;
    while (shared < previous.size() && shared < key.size() && previous[shared] == key[shared]) {
      ++shared;
    }
    put_head(out, 5, 4);
    put_text(out, "k");
    put_head(out, 2, key.size() - shared);
    out.insert(out.end(), key.begin() + static_cast<std::ptrdiff_t>(shared), key.end());
    put_text(out, "p");
    put_head(out, 0, shared);
    put_text(out, "t");
    if (node.children[i + 1] == kNone) {
      out.push_back(0xf6);
    } else {
      put_link(out, nodes_[static_cast<std::size_t>(node.children[i + 1])].cid);
    }
    put_text(out, "v");
    put_link(out, node.leaves[i].value);
    previous = key;
  }
  put_text(out, "l");
  if (node.children[0] == kNone) {
    out.push_back(0xf6);
  } else {
    put_link(out, nodes_[static_cast<std::size_t>(node.children[0])].cid);
  }
  const auto cid = compute_cid(kCodecDagCbor, out);
  node.cid.assign(reinterpret_cast<const char*>(cid.data()), cid.size());
  node.dirty = false;
  return node.cid;
}

std::string MstTree::root_cid() { return encode(root_); }

void MstTree::for_each_encoded_node(
    const std::function<void(std::string_view cid, byte_view block)>& visit) const {
  std::vector<std::int32_t> pending{root_};
  while (!pending.empty()) {
    const Node& node = nodes_[static_cast<std::size_t>(pending.back())];
    pending.pop_back();
    if (!node.loaded || node.block.empty() || node.dirty) continue;
    visit(node.cid, node.block);
    for (const std::int32_t child : node.children) {
      if (child != kNone) pending.push_back(child);
    }
  }
}

// ---- RepoRecordStream

RepoRecordStream::RepoRecordStream(Options options, RecordVisitor visit)
    : options_(std::move(options)), visit_(std::move(visit)) {}

RepoRecordStream::~RepoRecordStream() {
  if (spill_fd_ >= 0) ::close(spill_fd_);
}

void RepoRecordStream::set_root(byte_view commit_cid) { root_.assign(as_chars(commit_cid)); }

namespace {

/// The canonical start of an MST node, {e: ..., l: ...}: such blocks stay in memory, others are
/// spilled while their role is unknown. Only a placement choice: a node spilled (non-canonical
/// key order) is read back when it is reached.
bool looks_like_node(byte_view data) {
  return data.size() >= 3 && data[0] == 0xa2 && data[1] == 0x61 && data[2] == 'e';
}

}  // namespace

void RepoRecordStream::reach_node(const std::string& cid) {
  if (nodes_.count(cid) != 0 || spilled_.count(cid) != 0) {
    ready_nodes_.push_back(cid);
  } else {
    expected_nodes_.insert(cid);
  }
}

void RepoRecordStream::reach_record(const std::string& cid, std::string_view path) {
  const std::string_view collection = path.substr(0, path.find('/'));
  const bool wanted = !options_.wanted || options_.wanted(collection);
  auto& paths = expected_records_[cid];
  if (wanted) {
    paths.emplace_back(path);
  } else {
    ++counts_.records_skipped;
  }
}

std::optional<MstError> RepoRecordStream::emit(std::string_view path, const std::string& cid,
                                               byte_view record) {
  ++counts_.records;
  visit_(path, as_bytes(cid), record);
  return std::nullopt;
}

std::optional<MstError> RepoRecordStream::spill(const std::string& cid, byte_view data) {
  if (spill_fd_ < 0) {
    std::string pattern =
        (options_.spill_directory.empty() ? std::filesystem::temp_directory_path()
                                          : std::filesystem::path(options_.spill_directory)) /
        "jetstream-repo-XXXXXX";
    spill_fd_ = ::mkstemp(pattern.data());
    if (spill_fd_ < 0) return MstError::spill_failed;
    ::unlink(pattern.c_str());  // gone with the descriptor, whatever happens to this process
  }
  // Written in large pieces: one system call per record would cost more than the rest.
  spill_buffer_.insert(spill_buffer_.end(), data.begin(), data.end());
  spilled_.emplace(cid, std::pair{spill_size_, static_cast<std::uint32_t>(data.size())});
  spill_size_ += data.size();
  ++counts_.spilled_blocks;
  counts_.spilled_bytes += data.size();
  if (spill_buffer_.size() >= kSpillBufferBytes) return flush_spill();
  return std::nullopt;
}

std::optional<MstError> RepoRecordStream::flush_spill() {
  std::size_t written = 0;
  const std::uint64_t at = spill_size_ - spill_buffer_.size();
  while (written < spill_buffer_.size()) {
    const ssize_t n = ::pwrite(spill_fd_, spill_buffer_.data() + written,
                               spill_buffer_.size() - written, static_cast<off_t>(at + written));
    if (n <= 0) return MstError::spill_failed;
    written += static_cast<std::size_t>(n);
  }
  spill_buffer_.clear();
  return std::nullopt;
}

std::optional<MstError> RepoRecordStream::read_spilled(const std::string& cid,
                                                       std::vector<std::uint8_t>& out) {
  const auto found = spilled_.find(cid);
  if (found == spilled_.end()) return MstError::missing_block;
  const auto [offset, size] = found->second;
  out.resize(size);
  const std::uint64_t flushed = spill_size_ - spill_buffer_.size();
  if (offset >= flushed) {  // still in the write buffer
    const auto from = spill_buffer_.begin() + static_cast<std::ptrdiff_t>(offset - flushed);
    std::copy(from, from + size, out.begin());
  } else {
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n =
          ::pread(spill_fd_, out.data() + done, size - done, static_cast<off_t>(offset + done));
      if (n <= 0) return MstError::spill_failed;
      done += static_cast<std::size_t>(n);
    }
  }
  spilled_.erase(found);
  return std::nullopt;
}

std::optional<MstError> RepoRecordStream::process_nodes() {
  std::vector<std::uint8_t> bytes;
  while (!ready_nodes_.empty()) {
    const std::string cid = std::move(ready_nodes_.back());
    ready_nodes_.pop_back();
    if (auto found = nodes_.find(cid); found != nodes_.end()) {
      bytes = std::move(found->second);
      node_bytes_ -= bytes.size();
      nodes_.erase(found);
    } else if (auto error = read_spilled(cid, bytes)) {
      return error;
    }
    std::vector<std::string> children;
    const auto error = read_node_block(
        bytes, document_,
        [&](byte_view left) -> std::optional<MstError> {
          children.emplace_back(as_chars(left));
          return std::nullopt;
        },
        [&](const std::string& key, byte_view value, byte_view subtree) -> std::optional<MstError> {
          reach_record(std::string(as_chars(value)), key);
          if (!subtree.empty()) children.emplace_back(as_chars(subtree));
          return std::nullopt;
        });
    if (error) return error;
    for (const auto& child : children) reach_node(child);
    // Records reached now that came earlier wait in the spill file: handed over at finish(), in
    // one pass, rather than one read per record here.
  }
  return std::nullopt;
}

std::optional<MstError> RepoRecordStream::add_block(byte_view cid_bytes, byte_view data) {
  const std::string cid(as_chars(cid_bytes));
  if (!have_commit_ && cid == root_) {
    if (auto error = read_repo_commit_block(data, commit_, &document_)) return error;
    if (options_.accept_commit && !options_.accept_commit(data, commit_)) {
      return MstError::commit_refused;
    }
    have_commit_ = true;
    reach_node(std::string(as_chars(commit_.data_cid)));
    return process_nodes();
  }
  if (expected_nodes_.erase(cid) != 0) {
    nodes_.emplace(cid, std::vector<std::uint8_t>(data.begin(), data.end()));
    node_bytes_ += data.size();
    ready_nodes_.push_back(cid);
    return process_nodes();
  }
  if (auto found = expected_records_.find(cid); found != expected_records_.end()) {
    for (const auto& path : found->second) {
      if (auto error = emit(path, cid, data)) return error;
    }
    expected_records_.erase(found);
    return std::nullopt;
  }
  if (looks_like_node(data)) {
    node_bytes_ += data.size();
    if (node_bytes_ > options_.max_node_bytes) return MstError::too_large;
    nodes_.emplace(cid, std::vector<std::uint8_t>(data.begin(), data.end()));
    return std::nullopt;
  }
  return spill(cid, data);
}

std::optional<MstError> RepoRecordStream::finish() {
  if (!have_commit_ || !expected_nodes_.empty()) return MstError::missing_block;
  if (spill_fd_ >= 0) {
    if (auto error = flush_spill()) return error;
  }
  // Records whose block came before their node, read back in one pass in file order, a large
  // piece at a time.
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>> waiting;
  for (const auto& [cid, paths] : expected_records_) {
    const auto found = spilled_.find(cid);
    if (found != spilled_.end()) {
      if (!paths.empty()) waiting.emplace_back(found->second.first, found->second.second, cid);
      spilled_.erase(found);  // what stays in spilled_ is in no tree: orphans
    } else if (!paths.empty()) {
      return MstError::missing_block;
    }
  }
  std::sort(waiting.begin(), waiting.end());
  std::uint64_t window_start = 0;
  for (std::size_t i = 0; i < waiting.size(); ++i) {
    const auto& [offset, size, cid] = waiting[i];
    const auto& paths = expected_records_.find(cid)->second;
    if (offset < window_start || offset + size > window_start + read_buffer_.size()) {
      // Read from this record on, as far as the window reaches.
      window_start = offset;
      read_buffer_.resize(std::max<std::size_t>(kSpillBufferBytes, size));
      std::size_t done = 0;
      while (done < read_buffer_.size() && window_start + done < spill_size_) {
        const ssize_t n = ::pread(spill_fd_, read_buffer_.data() + done, read_buffer_.size() - done,
                                  static_cast<off_t>(window_start + done));
        if (n <= 0) return MstError::spill_failed;
        done += static_cast<std::size_t>(n);
      }
      read_buffer_.resize(done);
      if (offset + size > window_start + done) return MstError::spill_failed;
    }
    const byte_view record(read_buffer_.data() + (offset - window_start), size);
    for (const auto& path : paths) {
      if (auto error = emit(path, cid, record)) return error;
    }
  }
  expected_records_.clear();
  counts_.orphan_blocks = spilled_.size() + nodes_.size();
  return std::nullopt;
}

}  // namespace jetstream::codec
