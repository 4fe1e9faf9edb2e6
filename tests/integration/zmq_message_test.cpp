// proto/zmq_message.hpp over real ZeroMQ sockets (inproc): every message type is checked for its
// topic and its part count before a body is looked at, with a ROUTER's routing id set aside.
#include "proto/zmq_message.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>
#include <zmq.hpp>

namespace jetstream::proto {
namespace {

class ZmqMessageTest : public ::testing::Test {
 protected:
  ZmqMessageTest()
      : sender_(context_, zmq::socket_type::pair), receiver_(context_, zmq::socket_type::pair) {
    receiver_.bind("inproc://zmq-message-test");
    sender_.connect("inproc://zmq-message-test");
  }

  /// Sends `parts` and receives them as one message (inproc delivers a whole message at once).
  ReceivedMessage& round_trip(const std::vector<std::string>& parts,
                              Routing routing = Routing::none) {
    for (std::size_t i = 0; i < parts.size(); ++i) {
      sender_.send(zmq::buffer(parts[i]),
                   i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    zmq::pollitem_t item{receiver_.handle(), 0, ZMQ_POLLIN, 0};
    EXPECT_EQ(zmq::poll(&item, 1, std::chrono::seconds(10)), 1);
    EXPECT_TRUE(receive_message(receiver_, message_, routing));
    return message_;
  }

  zmq::context_t context_;
  zmq::socket_t sender_;
  zmq::socket_t receiver_;
  ReceivedMessage message_;
};

TEST_F(ZmqMessageTest, NothingWaitingIsNotAMessage) {
  EXPECT_FALSE(receive_message(receiver_, message_));
}

TEST_F(ZmqMessageTest, EveryTypeWithItsPartCountPassesAndGivesItsBody) {
  const std::vector<std::pair<std::string, MessageType>> types = {
      {"S", MessageType::status},      {"R", MessageType::resume},
      {"E", MessageType::event_batch}, {"H", MessageType::heartbeat},
      {"C", MessageType::state_info},  {"Q", MessageType::replay_request},
      {"P", MessageType::replay_page}};
  for (const auto& [topic, type] : types) {
    auto& message = round_trip({topic, "body"});
    ASSERT_TRUE(message.type()) << topic;
    EXPECT_EQ(message.type().value(), type);
    EXPECT_EQ(std::string(message.body().begin(), message.body().end()), "body");
    EXPECT_EQ(message.label("channel"), to_string(type));
  }
  auto& frame = round_trip({"F", "header", "frame"});
  ASSERT_TRUE(frame.type());
  EXPECT_EQ(frame.type().value(), MessageType::frame);
  EXPECT_EQ(frame.body(1).size(), 5u);
}

TEST_F(ZmqMessageTest, AWrongPartCountIsItsOwnReasonLabelledWithTheType) {
  struct Case {
    std::vector<std::string> parts;
    std::string_view label;
  };
  const std::vector<Case> cases = {
      {{"S", "body", "extra"}, "status"},
      {{"S"}, "status"},
      {{"F", "header"}, "frame"},
      {{"F", "a", "b", "c"}, "frame"},
      {{"E", "batch", "batch"}, "event_batch"},
      {{"Q"}, "replay_request"},
  };
  for (const Case& c : cases) {
    auto& message = round_trip(c.parts);
    ASSERT_FALSE(message.type()) << c.label;
    EXPECT_EQ(message.type().error(), DecodeError::wrong_part_count) << c.label;
    EXPECT_EQ(message.label("channel"), c.label);
  }
}

TEST_F(ZmqMessageTest, AnUnreadableTopicIsUnknownTopicLabelledWithTheChannel) {
  for (const std::vector<std::string>& parts :
       {std::vector<std::string>{"X", "body"}, {"SX", "body"}, {"", "body"}, {"s", "body"}}) {
    auto& message = round_trip(parts);
    ASSERT_FALSE(message.type());
    EXPECT_EQ(message.type().error(), DecodeError::unknown_topic);
    EXPECT_EQ(message.label("events"), "events");
  }
}

TEST_F(ZmqMessageTest, ARoutingIdIsNotCounted) {
  auto& request = round_trip({"fanout-7", "Q", "request"}, Routing::routed);
  ASSERT_TRUE(request.type());
  EXPECT_EQ(request.type().value(), MessageType::replay_request);
  EXPECT_EQ(request.routing_id().to_string(), "fanout-7");
  EXPECT_EQ(request.body().size(), 7u);
  auto& short_one = round_trip({"fanout-7", "Q"}, Routing::routed);
  EXPECT_EQ(short_one.type().error(), DecodeError::wrong_part_count);
  auto& id_only = round_trip({"fanout-7"}, Routing::routed);
  EXPECT_EQ(id_only.type().error(), DecodeError::unknown_topic);
}

}  // namespace
}  // namespace jetstream::proto
