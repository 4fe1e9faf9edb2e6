// services/fanout/replay_client over real (inproc) ZeroMQ sockets, with the test as decode's
// ROUTER: answers find their request, a request is sent again with a new id after the timeout
// and a late answer to the old id is ignored, a request never answered ends with no page, and
// every handler runs exactly once. Time is the `now` handed to expire(): nothing here waits for a
// clock.
#include "services/fanout/replay_client.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "proto/wire.hpp"

namespace jetstream::fanout {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 1000ms;

/// A request as decode's ROUTER received it.
struct Received {
  zmq::message_t routing_id;
  proto::ReplayRequest request;
};

class ReplayClientTest : public ::testing::Test {
 protected:
  ReplayClientTest()
      : router_(context_, zmq::socket_type::router),
        client_(context_, ReplayClientOptions{"inproc://replay-client-test", kTimeout, 3},
                [this](std::string_view message, std::string_view reason) {
                  rejected_.push_back(std::string(message) + ":" + std::string(reason));
                }) {
    router_.bind("inproc://replay-client-test");
    client_.open();
  }

  static proto::ReplayRequest request(std::int64_t start) {
    proto::ReplayRequest request;
    request.start_time_us = start;
    request.max_events = 10;
    request.max_bytes = 1000;
    return request;
  }

  /// Waits (bounded) for the next request at the ROUTER.
  Received next_request() {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    EXPECT_EQ(zmq::poll(&item, 1, std::chrono::seconds(10)), 1) << "no request reached decode";
    std::vector<zmq::message_t> parts;
    for (;;) {
      zmq::message_t part;
      EXPECT_TRUE(router_.recv(part, zmq::recv_flags::dontwait));
      const bool more = part.more();
      parts.push_back(std::move(part));
      if (!more) break;
    }
    EXPECT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[1].to_string(), proto::topic(proto::MessageType::replay_request));
    auto decoded = proto::decode_replay_request(
        {static_cast<const std::uint8_t*>(parts[2].data()), parts[2].size()});
    EXPECT_TRUE(decoded);
    return Received{std::move(parts[0]), decoded ? decoded.value() : proto::ReplayRequest{}};
  }

  bool router_has_request() {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    return zmq::poll(&item, 1, 0ms) == 1;
  }

  void answer(Received& to, std::uint64_t request_id, std::int64_t next_time_us) {
    proto::ReplayPageView page;
    page.request_id = request_id;
    page.done = true;
    page.next_time_us = next_time_us;
    send_raw(to, proto::topic(proto::MessageType::replay_page), proto::encode_replay_page(page));
  }

  void send_raw(Received& to, std::string_view topic, const std::vector<std::uint8_t>& body) {
    zmq::message_t routing_id;
    routing_id.copy(to.routing_id);
    router_.send(routing_id, zmq::send_flags::sndmore);
    router_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
    router_.send(zmq::buffer(body), zmq::send_flags::none);
  }

  /// Receives on the client until `count` handler calls have been seen (bounded).
  void receive_until(const std::vector<std::int64_t>& seen, std::size_t count) {
    for (int i = 0; i < 1000 && seen.size() < count; ++i) {
      zmq::pollitem_t item{client_.socket_handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 10ms);
      client_.receive(100);
    }
  }

  /// A handler that records the page's next_time_us, or -1 for "no page".
  ReplayClient::PageHandler record(std::vector<std::int64_t>& seen) {
    return [&seen](const proto::ReplayPageView* page) {
      seen.push_back(page == nullptr ? -1 : page->next_time_us);
    };
  }

  zmq::context_t context_;
  zmq::socket_t router_;
  std::vector<std::string> rejected_;
  ReplayClient client_;
};

TEST_F(ReplayClientTest, EachAnswerRunsTheHandlerOfItsOwnRequestOnce) {
  std::vector<std::int64_t> first;
  std::vector<std::int64_t> second;
  client_.send(request(100), record(first));
  client_.send(request(200), record(second));
  Received a = next_request();
  Received b = next_request();
  EXPECT_NE(a.request.request_id, b.request.request_id);
  EXPECT_EQ(a.request.start_time_us, 100);
  EXPECT_EQ(b.request.start_time_us, 200);
  answer(b, b.request.request_id, 222);
  answer(a, a.request.request_id, 111);
  receive_until(first, 1);
  receive_until(second, 1);
  EXPECT_EQ(first, std::vector<std::int64_t>{111});
  EXPECT_EQ(second, std::vector<std::int64_t>{222});
  EXPECT_EQ(client_.in_flight(), 0u);
  // A duplicate answer finds nothing in flight; the answer after it proves it was read.
  std::vector<std::int64_t> third;
  client_.send(request(300), record(third));
  Received c = next_request();
  answer(a, a.request.request_id, 999);
  answer(c, c.request.request_id, 333);
  receive_until(third, 1);
  EXPECT_EQ(third, std::vector<std::int64_t>{333});
  EXPECT_EQ(first, std::vector<std::int64_t>{111});
}

TEST_F(ReplayClientTest, ARequestSubmittedFromAnotherThreadIsSentByTheOwner) {
  std::vector<std::int64_t> seen;
  std::thread submitter([&] { client_.submit(request(7), record(seen)); });
  submitter.join();
  zmq::pollitem_t wake{nullptr, client_.wake_fd(), ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&wake, 1, std::chrono::seconds(10)), 1) << "submit did not wake the owner";
  client_.send_submitted();
  Received received = next_request();
  EXPECT_EQ(received.request.start_time_us, 7);
  answer(received, received.request.request_id, 70);
  receive_until(seen, 1);
  EXPECT_EQ(seen, std::vector<std::int64_t>{70});
}

TEST_F(ReplayClientTest, AnUnansweredRequestIsSentAgainWithANewIdAndALateOldAnswerIsIgnored) {
  std::vector<std::int64_t> seen;
  client_.send(request(5), record(seen));
  Received first = next_request();
  const auto now = std::chrono::steady_clock::now();
  client_.expire(now);  // not yet past the timeout
  EXPECT_FALSE(router_has_request());
  client_.expire(now + kTimeout + 1ms);
  Received second = next_request();
  EXPECT_NE(second.request.request_id, first.request.request_id);
  EXPECT_EQ(second.request.start_time_us, 5);
  answer(first, first.request.request_id, 1);  // late: that id was retried
  answer(second, second.request.request_id, 2);
  receive_until(seen, 1);  // answers arrive in order: the late one was read first
  EXPECT_EQ(seen, std::vector<std::int64_t>{2});
  EXPECT_EQ(client_.in_flight(), 0u);
}

TEST_F(ReplayClientTest, ARequestUnansweredAfterEveryAttemptEndsOnceWithNoPage) {
  std::vector<std::int64_t> seen;
  client_.send(request(5), record(seen));
  auto now = std::chrono::steady_clock::now();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    next_request();
    EXPECT_TRUE(seen.empty()) << "attempt " << attempt;
    now += kTimeout + 1ms;
    client_.expire(now);
  }
  EXPECT_FALSE(router_has_request()) << "three attempts, then no more";
  EXPECT_EQ(seen, std::vector<std::int64_t>{-1});
  EXPECT_EQ(client_.in_flight(), 0u);
  client_.expire(now + 10 * kTimeout);
  EXPECT_EQ(seen.size(), 1u);
}

TEST_F(ReplayClientTest, ABrokenAnswerIsCountedAndTheRequestStaysInFlight) {
  std::vector<std::int64_t> seen;
  client_.send(request(5), record(seen));
  Received received = next_request();
  send_raw(received, proto::topic(proto::MessageType::replay_page), {1, 2, 3});
  send_raw(received, proto::topic(proto::MessageType::heartbeat), {});
  for (int i = 0; i < 1000 && rejected_.size() < 2; ++i) {
    zmq::pollitem_t item{client_.socket_handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 10ms);
    client_.receive(100);
  }
  ASSERT_EQ(rejected_.size(), 2u);
  EXPECT_EQ(rejected_[0].rfind("replay_page:", 0), 0u) << rejected_[0];
  EXPECT_EQ(rejected_[1], "heartbeat:wrong_type");
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(client_.in_flight(), 1u);
}

}  // namespace
}  // namespace jetstream::fanout
