// backfill's link to decode (proto/README.md §3.6b, §3.9, §3.10): one thread that owns
//   - a DEALER to decode's backfill ROUTER (:6014): repository batches out, acks back;
//   - a SUB on decode's events PUB (:6012), topic `C` only: the compacted set, so the
//     collections are configured in one place (decode's --compact-collections).
// Every batch stays here until decode acknowledges it as stored: one without an ack after
// `ack_timeout`, or answered `busy`, is sent again with the same id (decode applies nothing
// twice). A fetch's `last` batch leaves only once its other batches are acknowledged, so
// decode tombstones only after it holds every record of the fetch.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "proto/backfill.hpp"
#include "services/backfill/repo_reader.hpp"

namespace jetstream::backfill {

/// What decode did with one fetch's batches, summed over their acks.
struct FetchTotals {
  std::uint64_t applied = 0;
  std::uint64_t unchanged = 0;
  std::uint64_t tombstoned = 0;
  std::uint64_t invalid = 0;
  bool rejected = false;  ///< decode refused a batch for good (no compacted twin, bad set)
};

class DecodeLink {
 public:
  struct Options {
    std::string backfill_endpoint = "tcp://127.0.0.1:6014";
    std::string events_endpoint = "tcp://127.0.0.1:6012";
    /// Batches sent and not yet acknowledged, at most (submit waits beyond it).
    std::size_t max_unacked = 32;
    std::chrono::milliseconds ack_timeout{30'000};
    std::chrono::milliseconds busy_retry{1'000};
  };
  /// A fetch's last batch is stored (or a batch of it was rejected): called on the link's thread.
  using FetchDone = std::function<void(std::uint64_t fetch_id, const FetchTotals& totals)>;
  /// DIDs decode saw a reason to look at again (proto §3.12), on the link's thread. Once it
  /// returns they count as stored: the next poll acknowledges them and decode forgets them.
  using Resyncs =
      std::function<void(const std::vector<std::pair<std::string, proto::ResyncReason>>& dids)>;

  DecodeLink(zmq::context_t& context, Options options, FetchDone done, Resyncs resyncs = {});
  ~DecodeLink();
  DecodeLink(const DecodeLink&) = delete;
  DecodeLink& operator=(const DecodeLink&) = delete;

  /// Queues one batch of fetch `fetch_id`; waits while `max_unacked` batches are out. false when
  /// the link is stopping (the batch is dropped: its repository is fetched again next run).
  bool submit(std::uint64_t fetch_id, OutgoingBatch batch);
  /// Forgets a fetch whose body failed after some of its batches were queued: they are still
  /// delivered (decode applies what is newer), but no `last` batch follows, so nothing is
  /// tombstoned and FetchDone is not called.
  void abandon(std::uint64_t fetch_id);

  /// decode's compacted set (canonical text) once a state info arrived; nullopt before.
  [[nodiscard]] std::optional<std::string> compacted() const;
  /// The patterns decode is still building from its log (state info `building`).
  [[nodiscard]] std::string building() const;
  /// How far the backfill has come: sent to decode once a second (proto §3.13), which passes it
  /// on to fanout's status page. Any thread.
  void set_progress(const proto::BackfillProgress& progress);

  struct Counters {
    std::atomic<std::uint64_t> batches_sent{0};
    std::atomic<std::uint64_t> batches_resent{0};
    std::atomic<std::uint64_t> batches_stored{0};
    std::atomic<std::uint64_t> batches_busy{0};
    std::atomic<std::uint64_t> batches_rejected{0};
    std::atomic<std::uint64_t> unacked{0};
    std::atomic<std::uint64_t> records_applied{0};
    std::atomic<std::uint64_t> records_unchanged{0};
    std::atomic<std::uint64_t> records_tombstoned{0};
    std::atomic<std::uint64_t> records_invalid{0};
    std::atomic<std::uint64_t> acks_unknown{0};  ///< acks for no batch held (late duplicates)
    std::atomic<std::uint64_t> proto_rejected{0};
    std::atomic<std::uint64_t> resyncs{0};         ///< DIDs decode asked to look at again
    std::atomic<std::uint64_t> resync_answers{0};  ///< resync lists received (empty ones too)
  };
  const Counters& counters() const { return counters_; }

  void stop();

 private:
  struct Held {
    std::uint64_t fetch_id = 0;
    OutgoingBatch batch;
    std::chrono::steady_clock::time_point due;  ///< when to (re)send; max() while awaiting
    bool sent = false;
  };
  struct Fetch {
    std::size_t outstanding = 0;  ///< batches queued or sent, not the last, not yet stored
    std::optional<OutgoingBatch> last;
    FetchTotals totals;
    bool abandoned = false;
  };

  void run();
  void send_due(zmq::socket_t& dealer);
  void poll_resyncs(zmq::socket_t& dealer);
  void send_progress(zmq::socket_t& dealer);
  void on_ack(const proto::BatchAck& ack);

  zmq::context_t& context_;
  Options options_;
  FetchDone done_;
  Resyncs resyncs_;
  std::vector<std::string> resyncs_to_ack_;  ///< link thread only
  std::chrono::steady_clock::time_point next_poll_{};
  std::chrono::steady_clock::time_point next_progress_{};
  std::optional<proto::BackfillProgress> progress_;  ///< guarded by mutex_
  std::string doorbell_endpoint_;
  zmq::socket_t doorbell_in_;   ///< PULL, the link thread's
  zmq::socket_t doorbell_out_;  ///< PUSH, guarded by mutex_

  mutable std::mutex mutex_;
  std::condition_variable room_;
  std::map<std::uint64_t, Held> held_;  ///< by batch id
  std::map<std::uint64_t, Fetch> fetches_;
  std::optional<std::string> compacted_;
  std::string building_;

  Counters counters_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace jetstream::backfill
