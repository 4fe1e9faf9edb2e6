#include "services/backfill/backfill_probe.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace jetstream::backfill {

BackfillProbe::BackfillProbe(prometheus::Registry& registry) : registry_(registry) {
  auto& repos = prometheus::BuildGauge()
                    .Name("jetstream_backfill_repos")
                    .Help(
                        "Repositories by state: queued, resolving (DID document), fetching "
                        "(getRepo streaming or awaiting decode's acks), done, failed")
                    .Register(registry);
  const std::array<const char*, 5> repo_states{"queued", "resolving", "fetching", "done", "failed"};
  for (std::size_t i = 0; i < repos_.size(); ++i)
    repos_[i] = &repos.Add({{"state", repo_states[i]}});
  auto& hosts = prometheus::BuildGauge()
                    .Name("jetstream_backfill_hosts")
                    .Help(
                        "PDS hosts by state: active (fetching), paused (backing off after "
                        "429 or 5xx, honouring Retry-After), idle")
                    .Register(registry);
  const std::array<const char*, 3> host_states{"active", "paused", "idle"};
  for (std::size_t i = 0; i < hosts_.size(); ++i)
    hosts_[i] = &hosts.Add({{"state", host_states[i]}});
  fetches_ = &prometheus::BuildCounter()
                  .Name("jetstream_backfill_fetches_total")
                  .Help(
                      "getRepo attempts by outcome: done, retry (tried again later), failed "
                      "(given up), host_busy (429 or 5xx: the host pauses)")
                  .Register(registry);
  fetch_errors_ = &prometheus::BuildCounter()
                       .Name("jetstream_backfill_fetch_errors_total")
                       .Help("getRepo attempts that did not end done, by reason")
                       .Register(registry);
  failed_ = &prometheus::BuildCounter()
                 .Name("jetstream_backfill_repos_failed_total")
                 .Help(
                     "Repositories given up on, by reason (not_found, deactivated, "
                     "taken_down, too_large, unresolvable_did, ...)")
                 .Register(registry);
  listed_ = &prometheus::BuildCounter()
                 .Name("jetstream_backfill_listed_repos_total")
                 .Help("Repositories named by the sources (listRepos pages, --dids-file)")
                 .Register(registry)
                 .Add({});
  bytes_ = &prometheus::BuildCounter()
                .Name("jetstream_backfill_bytes_total")
                .Help("getRepo body bytes read")
                .Register(registry)
                .Add({});
  auto& records = prometheus::BuildCounter()
                      .Name("jetstream_backfill_records_total")
                      .Help(
                          "Records decode acknowledged, by what it did: applied, unchanged (it "
                          "held the same or a newer rev), tombstoned, invalid")
                      .Register(registry);
  const std::array<const char*, 4> results{"applied", "unchanged", "tombstoned", "invalid"};
  for (std::size_t i = 0; i < records_.size(); ++i)
    records_[i] = &records.Add({{"result", results[i]}});
  auto& batches = prometheus::BuildCounter()
                      .Name("jetstream_backfill_batches_total")
                      .Help(
                          "Repository batches to decode: sent, resent (no ack in time, or "
                          "busy), stored, busy, rejected")
                      .Register(registry);
  const std::array<const char*, 5> events{"sent", "resent", "stored", "busy", "rejected"};
  for (std::size_t i = 0; i < batches_.size(); ++i)
    batches_[i] = &batches.Add({{"event", events[i]}});
  unacked_ = &prometheus::BuildGauge()
                  .Name("jetstream_backfill_unacked_batches")
                  .Help("Batches sent to decode and not yet acknowledged as stored")
                  .Register(registry)
                  .Add({});
  decode_known_ = &prometheus::BuildGauge()
                       .Name("jetstream_backfill_decode_state_known")
                       .Help("1 once decode's compacted set arrived (fetching starts then)")
                       .Register(registry)
                       .Add({});
  auto& http_errors = prometheus::BuildCounter()
                          .Name("jetstream_http_client_errors_total")
                          .Help("Outbound HTTP requests that failed, by reason")
                          .Register(registry);
  for (std::size_t i = 0; i < http_errors_.size(); ++i) {
    http_errors_[i] = &http_errors.Add(
        {{"reason", std::string(http::to_string(static_cast<http::FetchError>(i)))}});
  }
  auto& refused = prometheus::BuildCounter()
                      .Name("jetstream_http_client_refused_addresses_total")
                      .Help(
                          "Addresses not connected to, by class (loopback, private, "
                          "link-local, ...): named by strangers, not by the operator")
                      .Register(registry);
  for (std::size_t i = 0; i < refused_.size(); ++i) {
    refused_[i] =
        &refused.Add({{"class", std::string(http::to_string(static_cast<http::AddressClass>(i)))}});
  }
}

void BackfillProbe::advance(prometheus::Counter* counter, std::uint64_t total,
                            std::uint64_t& seen) {
  if (total > seen) counter->Increment(static_cast<double>(total - seen));
  seen = total;
}

void BackfillProbe::set_repos(const RepoFigures& figures) {
  repos_[0]->Set(static_cast<double>(figures.queued));
  repos_[1]->Set(static_cast<double>(figures.resolving));
  repos_[2]->Set(static_cast<double>(figures.fetching));
  repos_[3]->Set(static_cast<double>(figures.done));
  repos_[4]->Set(static_cast<double>(figures.failed));
}

void BackfillProbe::set_hosts(std::uint64_t active, std::uint64_t paused, std::uint64_t idle) {
  hosts_[0]->Set(static_cast<double>(active));
  hosts_[1]->Set(static_cast<double>(paused));
  hosts_[2]->Set(static_cast<double>(idle));
}

void BackfillProbe::record_fetch(std::string_view outcome, std::string_view reason) {
  fetches_->Add({{"outcome", std::string(outcome)}}).Increment();
  if (!reason.empty()) fetch_errors_->Add({{"reason", std::string(reason)}}).Increment();
}

void BackfillProbe::record_failed(std::string_view reason) {
  failed_->Add({{"reason", std::string(reason)}}).Increment();
}

void BackfillProbe::record_listed(std::uint64_t repos) {
  listed_->Increment(static_cast<double>(repos));
}

void BackfillProbe::record_bytes(std::uint64_t bytes) {
  bytes_->Increment(static_cast<double>(bytes));
}

void BackfillProbe::set_link(const DecodeLink::Counters& counters, bool decode_known) {
  advance(records_[0], counters.records_applied.load(), records_seen_[0]);
  advance(records_[1], counters.records_unchanged.load(), records_seen_[1]);
  advance(records_[2], counters.records_tombstoned.load(), records_seen_[2]);
  advance(records_[3], counters.records_invalid.load(), records_seen_[3]);
  advance(batches_[0], counters.batches_sent.load(), batches_seen_[0]);
  advance(batches_[1], counters.batches_resent.load(), batches_seen_[1]);
  advance(batches_[2], counters.batches_stored.load(), batches_seen_[2]);
  advance(batches_[3], counters.batches_busy.load(), batches_seen_[3]);
  advance(batches_[4], counters.batches_rejected.load(), batches_seen_[4]);
  unacked_->Set(static_cast<double>(counters.unacked.load()));
  decode_known_->Set(decode_known ? 1 : 0);
}

void BackfillProbe::set_http(const std::array<std::uint64_t, http::kFetchErrorCount>& errors,
                             const std::array<std::uint64_t, http::kAddressClassCount>& refused) {
  for (std::size_t i = 0; i < http_errors_.size(); ++i) {
    advance(http_errors_[i], errors[i], http_errors_seen_[i]);
  }
  for (std::size_t i = 0; i < refused_.size(); ++i)
    advance(refused_[i], refused[i], refused_seen_[i]);
}

}  // namespace jetstream::backfill
