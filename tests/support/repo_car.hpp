// A repository as com.atproto.sync.getRepo sends it, made up for benchmarks and tests: `count`
// posts, every MST node and the commit, blocks sorted by CID as the reference PDS orders them
// (so most records come before the nodes that name them). The commit's signature is a filler:
// what uses this reads records, it does not verify.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/codec/cid.hpp"
#include "common/codec/mst.hpp"
#include "tests/support/cbor_builder.hpp"

namespace jetstream::testing {

inline Bytes make_repository_car(std::string_view did, std::string_view rev, int count,
                                 std::string_view collection = "app.bsky.feed.post") {
  codec::MstTree tree;
  std::vector<std::pair<Bytes, Bytes>> blocks;
  for (int i = 0; i < count; ++i) {
    CborBuilder record;
    record.map(3).text("text").text("post number " + std::to_string(i) +
                                    ", long enough to look like a real one, with a few words");
    record.text("$type").text(collection).text("createdAt").text("2026-07-04T14:38:08.999Z");
    Bytes bytes = record.take();
    Bytes cid = cid_of(codec::kCodecDagCbor, bytes);
    tree.insert(std::string(collection) + "/3k" + std::to_string(1000000 + i), cid);
    blocks.emplace_back(std::move(cid), std::move(bytes));
  }
  const std::string root = tree.root_cid();
  tree.for_each_encoded_node([&](std::string_view node_cid, byte_view block) {
    blocks.emplace_back(Bytes(node_cid.begin(), node_cid.end()), Bytes(block.begin(), block.end()));
  });
  CborBuilder commit;
  commit.map(6).text("did").text(did).text("rev").text(rev);
  commit.text("sig").bytes(Bytes(64, 0x01)).text("data").link(Bytes(root.begin(), root.end()));
  commit.text("prev").null().text("version").uint(3);
  Bytes commit_bytes = commit.take();
  Bytes commit_cid = cid_of(codec::kCodecDagCbor, commit_bytes);
  blocks.emplace_back(commit_cid, std::move(commit_bytes));
  std::sort(blocks.begin(), blocks.end());
  return make_car({commit_cid}, blocks);
}

}  // namespace jetstream::testing
