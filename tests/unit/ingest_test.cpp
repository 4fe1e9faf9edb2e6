// ingest's pure parts: reconnect backoff and listen-flag → ZeroMQ endpoint mapping.
#include <gtest/gtest.h>

#include <chrono>

#include "services/ingest/backoff.hpp"
#include "services/ingest/upstream_link.hpp"

namespace jetstream::ingest {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, DoublesFromInitialUpToTheCapWithJitterBetweenHalfAndFull) {
  Backoff backoff(milliseconds(250), milliseconds(30'000), 42);
  const milliseconds nominal[] = {milliseconds(250),   milliseconds(500),    milliseconds(1000),
                                  milliseconds(2000),  milliseconds(4000),   milliseconds(8000),
                                  milliseconds(16000), milliseconds(30'000), milliseconds(30'000)};
  for (const auto expected : nominal) {
    ASSERT_EQ(backoff.nominal(), expected);
    const auto delay = backoff.next();
    EXPECT_GE(delay, expected / 2);
    EXPECT_LE(delay, expected);
  }
}

TEST(Backoff, ResetStartsAgainFromTheInitialDelay) {
  Backoff backoff(milliseconds(100), milliseconds(1000), 7);
  for (int i = 0; i < 10; ++i) static_cast<void>(backoff.next());
  EXPECT_EQ(backoff.nominal(), milliseconds(1000));
  backoff.reset();
  EXPECT_EQ(backoff.attempt(), 0u);
  EXPECT_EQ(backoff.nominal(), milliseconds(100));
  EXPECT_LE(backoff.next(), milliseconds(100));
}

TEST(Backoff, JitterSpreadsDelaysAcrossInstances) {
  // Two ingests failing together do not retry in lockstep.
  Backoff a(milliseconds(1000), milliseconds(1000), 1);
  Backoff b(milliseconds(1000), milliseconds(1000), 2);
  int differing = 0;
  for (int i = 0; i < 20; ++i) differing += a.next() != b.next() ? 1 : 0;
  EXPECT_GT(differing, 10);
}

TEST(Backoff, SurvivesManyAttemptsWithoutOverflow) {
  Backoff backoff(milliseconds(250), milliseconds(30'000), 3);
  for (int i = 0; i < 10'000; ++i) {
    const auto delay = backoff.next();
    ASSERT_GE(delay, milliseconds(125));
    ASSERT_LE(delay, milliseconds(30'000));
  }
}

TEST(ZmqBindEndpoint, MapsListenAddressesAndKeepsZeroMqEndpoints) {
  EXPECT_EQ(zmq_bind_endpoint(":6010"), "tcp://*:6010");
  EXPECT_EQ(zmq_bind_endpoint("127.0.0.1:6010"), "tcp://127.0.0.1:6010");
  EXPECT_EQ(zmq_bind_endpoint("[::1]:6011"), "tcp://[::1]:6011");
  EXPECT_EQ(zmq_bind_endpoint("127.0.0.1:0"), "tcp://127.0.0.1:*");
  EXPECT_EQ(zmq_bind_endpoint("tcp://*:7000"), "tcp://*:7000");
  EXPECT_EQ(zmq_bind_endpoint("ipc:///tmp/frames"), "ipc:///tmp/frames");
  std::string error;
  EXPECT_EQ(zmq_bind_endpoint("6010", &error), "");
  EXPECT_FALSE(error.empty());
  EXPECT_TRUE(endpoint_wants_ipv6("tcp://*:6010"));
  EXPECT_TRUE(endpoint_wants_ipv6("tcp://[::1]:6010"));
  EXPECT_FALSE(endpoint_wants_ipv6("tcp://127.0.0.1:6010"));
}

}  // namespace
}  // namespace jetstream::ingest
