// --verify: the frames waiting for their DID's key, per DID in upstream order. A commit the
// workers could not verify yet (its DID not resolved, or its signature failing against a cached
// key) is held here, and so is every later frame of that DID, so that a repository's events keep
// their order in the log. Held frames are stored with the events (EventStore HeldFrameChanges):
// after a crash they are loaded back and their DIDs resolved again. Owned by the sequencer.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/codec/bytes.hpp"

namespace jetstream::decode {

struct HeldFrame {
  std::uint64_t id = 0;  ///< its key in the store
  std::string did;       ///< the DID it waits for
  std::int64_t upstream_seq = 0;
  std::int64_t receive_time_us = 0;
  std::vector<std::uint8_t> bytes;

  /// What the store keeps: seq and receive time (8 bytes each, big-endian), the DID's length
  /// (2 bytes) and the DID, then the frame.
  std::string encode() const;
  /// nullopt when `stored` is shorter than its header says (a store written by a bug).
  static std::optional<HeldFrame> decode(std::uint64_t id, std::string_view stored);
};

class HeldCommits {
 public:
  /// What the caller must ask the resolver for after an add.
  enum class Ask : std::uint8_t {
    nothing,     ///< a resolution of the DID is already on its way
    resolution,  ///< the DID's first held frame
    refresh,     ///< a signature failed against a cached key: fetch the document again
  };

  /// Whether frames of `did` are waiting: then every new frame of it must wait too.
  bool holds(const std::string& did) const { return by_did_.count(did) != 0; }
  /// Queues `frame` behind the others of its DID. `refresh`: the frame needs a fresh document.
  Ask add(HeldFrame frame, bool refresh = false);

  struct Released {
    std::deque<HeldFrame> frames;  ///< in the order they were added
    bool refreshed = false;        ///< the resolution they waited for was a refresh
  };
  /// Takes every frame of `did`.
  Released release(const std::string& did);

  std::uint64_t next_id() { return next_id_++; }
  /// After loading stored frames: ids continue above the highest.
  void resume_ids_after(std::uint64_t id) {
    if (id >= next_id_) next_id_ = id + 1;
  }

  std::size_t frame_count() const { return frames_; }
  std::size_t did_count() const { return by_did_.size(); }

 private:
  struct Waiting {
    std::deque<HeldFrame> frames;
    bool refresh = false;
  };
  std::unordered_map<std::string, Waiting> by_did_;
  std::size_t frames_ = 0;
  std::uint64_t next_id_ = 1;
};

}  // namespace jetstream::decode
