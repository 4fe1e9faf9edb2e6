// fanout's status figures (services/fanout/status_board.hpp): the JSON of /status.json from
// samples, rates from counters' differences, nulls where nothing is known, and the page itself
// self-contained (no external script, style, font or image).
#include "services/fanout/status_board.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

namespace jetstream::fanout {
namespace {

using namespace std::chrono_literals;

rapidjson::Document parse(const std::string& json) {
  rapidjson::Document document;
  document.Parse(json.c_str(), json.size());
  EXPECT_FALSE(document.HasParseError()) << json;
  return document;
}

StatusSample sample(std::chrono::steady_clock::time_point at, std::uint64_t frames,
                    std::uint64_t events, double delivered) {
  StatusSample s;
  s.at = at;
  s.wall_time_us = 1'700'000'000'000'000;
  s.clients_text = 2;
  s.clients_deflate = 1;
  s.events_received = static_cast<double>(events);
  s.events_delivered = delivered;
  s.joined = true;
  proto::PipelineStatus p;
  p.upstream_connected = true;
  p.upstream_lag_us = 250'000;
  p.frames_received = frames;
  p.events_stored = events;
  p.log_oldest_time_us = 1'600'000'000'000'000;
  p.log_newest_time_us = 1'700'000'000'000'000;
  p.sent_time_us = 1'700'000'000'000'000 + static_cast<std::int64_t>(frames) * 1000;
  s.pipeline = p;
  s.pipeline_age = 200ms;
  return s;
}

TEST(StatusJson, BeforeAnySampleEveryFigureIsUnknownNotZero) {
  const auto json = parse(StatusBoard().json());
  EXPECT_FALSE(json["upstream"]["connected"].GetBool());
  EXPECT_TRUE(json["upstream"]["lag_seconds"].IsNull());
  EXPECT_FALSE(json["decode"]["reachable"].GetBool());
  EXPECT_TRUE(json["decode"]["events_per_second"].IsNull());
  EXPECT_TRUE(json["fanout"]["deliveries_per_second"].IsNull());
  EXPECT_TRUE(json["log"]["oldest_time_us"].IsNull());
  EXPECT_TRUE(json["state"].IsNull());
  EXPECT_TRUE(json["backfill"].IsNull());
}

TEST(StatusJson, RatesAreCounterDifferencesOverTheTimeBetweenSamples) {
  const auto t0 = std::chrono::steady_clock::now();
  StatusSample earlier = sample(t0, 1000, 2000, 10'000);
  StatusSample now = sample(t0 + 2s, 3000, 6000, 30'000);  // decode's clock: +2 s too
  const auto json = parse(render_status_json(now, &earlier));
  EXPECT_TRUE(json["upstream"]["connected"].GetBool());
  EXPECT_DOUBLE_EQ(json["upstream"]["lag_seconds"].GetDouble(), 0.25);
  EXPECT_DOUBLE_EQ(json["decode"]["frames_per_second"].GetDouble(), 1000);
  EXPECT_DOUBLE_EQ(json["decode"]["events_per_second"].GetDouble(), 2000);
  EXPECT_EQ(json["decode"]["events_stored"].GetUint64(), 6000U);
  EXPECT_DOUBLE_EQ(json["fanout"]["events_per_second"].GetDouble(), 2000);
  EXPECT_DOUBLE_EQ(json["fanout"]["deliveries_per_second"].GetDouble(), 10'000);
  EXPECT_EQ(json["fanout"]["clients"].GetInt(), 3);
  EXPECT_EQ(json["fanout"]["clients_by_encoding"]["deflate"].GetInt(), 1);
  EXPECT_EQ(json["log"]["oldest_time_us"].GetInt64(), 1'600'000'000'000'000);
}

TEST(StatusJson, TwinAndBackfillAppearWhenDecodeReportsThemAndASilentDecodeIsNotConnected) {
  const auto t0 = std::chrono::steady_clock::now();
  StatusSample earlier = sample(t0, 1000, 2000, 0);
  StatusSample now = sample(t0 + 1s, 2000, 3000, 0);
  for (StatusSample* s : {&earlier, &now}) {
    s->pipeline->twin = true;
    s->pipeline->backfill = true;
    s->pipeline->backfill_repos_total = 10;
    s->pipeline->backfill_repos_done = 4;
    s->pipeline->backfill_repos_failed = 1;
    s->compacted = "app.bsky.*";
  }
  earlier.pipeline->backfill_records_applied = 100;
  now.pipeline->backfill_records_applied = 600;
  now.pipeline->compacted_records = 42;
  auto json = parse(render_status_json(now, &earlier));
  EXPECT_EQ(json["state"]["records"].GetUint64(), 42U);
  EXPECT_STREQ(json["state"]["collections"].GetString(), "app.bsky.*");
  EXPECT_EQ(json["backfill"]["repos_done"].GetUint64(), 4U);
  EXPECT_EQ(json["backfill"]["repos_total"].GetUint64(), 10U);
  EXPECT_DOUBLE_EQ(json["backfill"]["records_per_second"].GetDouble(), 500);
  // decode silent for longer than 5 s: the upstream is not known to be connected.
  now.pipeline_age = 6s;
  json = parse(render_status_json(now, &earlier));
  EXPECT_FALSE(json["decode"]["reachable"].GetBool());
  EXPECT_FALSE(json["upstream"]["connected"].GetBool());
}

TEST(StatusBoard, RatesUseTheOldestSampleOfTheWindow) {
  StatusBoard board(3s);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i <= 10; ++i) {
    board.add(sample(t0 + std::chrono::seconds(i), 1000 * static_cast<std::uint64_t>(i),
                     100 * static_cast<std::uint64_t>(i), 10.0 * i));
  }
  const auto json = parse(board.json());
  EXPECT_DOUBLE_EQ(json["fanout"]["events_per_second"].GetDouble(), 100);
  EXPECT_DOUBLE_EQ(json["fanout"]["deliveries_per_second"].GetDouble(), 10);
}

TEST(StatusPage, IsOneSelfContainedDocument) {
  const std::string_view page = status_page_html();
  EXPECT_TRUE(page.starts_with("<!doctype html>"));
  EXPECT_NE(page.find("/status.json"), std::string_view::npos);
  EXPECT_NE(page.find("/subscribe"), std::string_view::npos);
  // Nothing from elsewhere: no absolute URL, no external script, stylesheet or font.
  for (const std::string_view forbidden :
       {"http://", "https://", "<script src", "<link rel=\"stylesheet\"", "@import", "url("}) {
    EXPECT_EQ(page.find(forbidden), std::string_view::npos) << forbidden;
  }
}

}  // namespace
}  // namespace jetstream::fanout
