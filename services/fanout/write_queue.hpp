// What a client connection still has to write, in order, with no socket: whole websocket frames
// (`SharedFrame`s, client_connection.hpp) tagged by kind, how much of the first one is already
// written, the rules that put control frames between data frames, and the gathering of the
// front of the queue into iovecs for one sendmsg(2). ClientConnection owns one and runs it on its
// strand; tests/unit/write_queue_test.cpp drives it directly.
//
// Ownership: a data frame may borrow its bytes' owner from a later frame of the same send
// (SharedFrame's rule). Every operation here keeps that true for what stays queued — in
// particular `discard_unsent` hands the owner to a partly written frame whose lender it drops.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <vector>

#include "services/fanout/client_connection.hpp"

namespace jetstream::fanout {

class WriteQueue {
 public:
  enum class Kind : std::uint8_t { kData, kHandshake, kPing, kPong, kClose };

  /// One gathered write: `iov[0, iov_count)` covers `frames` frames and `bytes` bytes.
  struct Gather {
    std::size_t iov_count = 0;
    std::size_t frames = 0;
    std::size_t bytes = 0;
  };

  /// What a `consume` completed.
  struct Consumed {
    std::uint64_t data_bytes = 0;   ///< data bytes written (also of a frame not yet complete)
    std::uint64_t data_frames = 0;  ///< data frames written whole
    bool ping_written = false;
    bool close_written = false;
  };

  /// What `discard_unsent` dropped.
  struct Discarded {
    std::uint64_t data_bytes = 0;
    bool ping_dropped = false;
  };

  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  /// Bytes of the front frame already written.
  std::size_t front_offset() const noexcept { return front_offset_; }

  /// Appends a frame of `kind` at the back (data, the handshake response, a close frame). An
  /// empty frame is not queued: a zero-byte write could never consume it.
  void push_back(Kind kind, SharedFrame frame);

  /// Puts a control frame (ping, pong) ahead of queued data, but behind a partly written frame,
  /// the handshake and other control frames. An unsent pong is replaced by the newer one
  /// (RFC 6455 §5.5.3 allows answering only the latest ping), so a ping flood cannot grow the
  /// queue.
  void push_control(Kind kind, SharedFrame frame);

  /// Drops queued data not yet started, and an unsent ping (a closing connection sends its
  /// close frame next). Keeps a partly written frame, the handshake and pongs.
  Discarded discard_unsent();

  /// Drops everything; returns the data bytes that were not written.
  std::uint64_t clear();

  /// Fills `iov` from the front (the written part of the first frame skipped; frames adjacent in
  /// one buffer share an iovec), at most `max_frames` frames and about `max_bytes` bytes (a frame
  /// is never split to meet it).
  Gather gather(std::span<iovec> iov, std::size_t max_frames, std::size_t max_bytes) const;

  /// Removes `sent` written bytes from the front. `on_frame_written` (may be empty) is called
  /// for each data frame written whole whose `measure_from` is set, with the time since then.
  Consumed consume(
      std::size_t sent,
      const std::function<void(std::chrono::steady_clock::duration)>& on_frame_written);

 private:
  struct Entry {
    SharedFrame frame;
    Kind kind = Kind::kData;
  };

  std::deque<Entry> entries_;
  std::size_t front_offset_ = 0;
};

}  // namespace jetstream::fanout
