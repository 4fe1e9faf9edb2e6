// A tiny DAG-CBOR writer for tests: builds records, firehose frames and CARs byte by byte,
// including deliberately broken ones. Not for production use: it trusts its caller.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/codec/cid.hpp"

namespace jetstream::testing {

using Bytes = std::vector<std::uint8_t>;

class CborBuilder {
 public:
  CborBuilder& head(std::uint8_t major, std::uint64_t value) {
    const auto m = static_cast<std::uint8_t>(major << 5);
    if (value < 24) {
      out_.push_back(static_cast<std::uint8_t>(m | value));
    } else if (value <= 0xff) {
      out_.push_back(m | 24);
      out_.push_back(static_cast<std::uint8_t>(value));
    } else if (value <= 0xffff) {
      out_.push_back(m | 25);
      push_be(value, 2);
    } else if (value <= 0xffffffffULL) {
      out_.push_back(m | 26);
      push_be(value, 4);
    } else {
      out_.push_back(m | 27);
      push_be(value, 8);
    }
    return *this;
  }
  CborBuilder& uint(std::uint64_t v) { return head(0, v); }
  CborBuilder& integer(std::int64_t v) {
    return v >= 0 ? head(0, static_cast<std::uint64_t>(v))
                  : head(1, static_cast<std::uint64_t>(-1 - v));
  }
  CborBuilder& text(std::string_view s) {
    head(3, s.size());
    out_.insert(out_.end(), s.begin(), s.end());
    return *this;
  }
  CborBuilder& bytes(const Bytes& b) {
    head(2, b.size());
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  CborBuilder& array(std::size_t n) { return head(4, n); }
  CborBuilder& map(std::size_t n) { return head(5, n); }
  CborBuilder& boolean(bool v) { return raw({static_cast<std::uint8_t>(v ? 0xf5 : 0xf4)}); }
  CborBuilder& null() { return raw({0xf6}); }
  CborBuilder& link(const Bytes& cid) {
    head(6, 42);
    head(2, cid.size() + 1);
    out_.push_back(0x00);
    out_.insert(out_.end(), cid.begin(), cid.end());
    return *this;
  }
  CborBuilder& raw(std::initializer_list<std::uint8_t> b) {
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  CborBuilder& raw(const Bytes& b) {
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  const Bytes& bytes_out() const { return out_; }
  Bytes take() { return std::move(out_); }

 private:
  void push_be(std::uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  Bytes out_;
};

inline Bytes cid_of(std::uint64_t codec, const Bytes& data) {
  const auto cid = codec::compute_cid(codec, data);
  return {cid.begin(), cid.end()};
}

inline void append_uvarint(Bytes& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

/// A CAR v1 with the given roots and (cid, data) blocks.
inline Bytes make_car(const std::vector<Bytes>& roots,
                      const std::vector<std::pair<Bytes, Bytes>>& blocks) {
  CborBuilder header;
  header.map(2).text("roots").array(roots.size());
  for (const auto& root : roots) header.link(root);
  header.text("version").uint(1);
  Bytes car;
  append_uvarint(car, header.bytes_out().size());
  car.insert(car.end(), header.bytes_out().begin(), header.bytes_out().end());
  for (const auto& [cid, data] : blocks) {
    append_uvarint(car, cid.size() + data.size());
    car.insert(car.end(), cid.begin(), cid.end());
    car.insert(car.end(), data.begin(), data.end());
  }
  return car;
}

/// One op of a test commit.
struct TestOp {
  std::string action;
  std::string path;
  Bytes cid;     ///< empty = null
  Bytes prev{};  ///< Sync 1.1: the record's CID before the op; empty = no `prev` key
};

/// A complete `#commit` frame (header + body).
inline Bytes make_commit_frame(std::int64_t seq, std::string_view repo, std::string_view rev,
                               const Bytes& car, const std::vector<TestOp>& ops,
                               std::string_view time = "2026-07-04T14:38:08.999Z",
                               bool too_big = false, const Bytes* commit_cid = nullptr,
                               const Bytes* prev_data = nullptr) {
  CborBuilder frame;
  frame.map(2).text("t").text("#commit").text("op").uint(1);
  frame.map(12);
  frame.text("ops").array(ops.size());
  for (const auto& op : ops) {
    frame.map(op.prev.empty() ? 3 : 4).text("cid");
    if (op.cid.empty()) {
      frame.null();
    } else {
      frame.link(op.cid);
    }
    frame.text("path").text(op.path).text("action").text(op.action);
    if (!op.prev.empty()) frame.text("prev").link(op.prev);
  }
  frame.text("rev").text(rev).text("seq").integer(seq).text("repo").text(repo);
  frame.text("time").text(time).text("blobs").array(0).text("since").null();
  frame.text("blocks").bytes(car).text("commit").link(
      commit_cid != nullptr ? *commit_cid : cid_of(codec::kCodecDagCbor, {0xa0}));
  frame.text("rebase").boolean(false).text("tooBig").boolean(too_big);
  frame.text("prevData");
  if (prev_data != nullptr) {
    frame.link(*prev_data);
  } else {
    frame.null();
  }
  return frame.take();
}

}  // namespace jetstream::testing
