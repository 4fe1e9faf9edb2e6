#include "common/identity/did_resolver.hpp"

#include <optional>

namespace jetstream::identity {

DidResolver::DidResolver(Options options, http::HttpClient& client, IdentityCache& cache,
                         std::function<std::int64_t()> now_us)
    : options_(std::move(options)), client_(client), cache_(cache), now_us_(std::move(now_us)) {
  options_.limits.max_body_bytes = kMaxDocumentBytes;
}

void DidResolver::resolve(std::string_view did, bool refresh, Callback done) {
  if (auto cached = cache_.find(did, now_us_())) {
    const auto interval =
        std::chrono::duration_cast<std::chrono::microseconds>(options_.min_refresh_interval);
    if (!refresh) return done(std::move(cached));
    if (cached->by_refresh && now_us_() - cached->fetched_at_us < interval.count()) {
      counters_.refresh_limited.fetch_add(1, std::memory_order_relaxed);
      return done(std::move(cached));
    }
  }
  auto location = locate_did_document(did, options_.plc_url, options_.did_web_insecure);
  if (const auto* error = std::get_if<DidError>(&location)) {
    auto failed = std::make_shared<Resolution>();
    failed->failure = "bad_did_" + std::string(to_string(*error));
    counters_.failed.fetch_add(1, std::memory_order_relaxed);
    return done(std::move(failed));  // not cached: the DID text itself is the problem
  }
  std::string key(did);
  std::string url = std::get<DocumentLocation>(location).url;
  {
    std::lock_guard lock(mutex_);
    auto [entry, first] = in_flight_.try_emplace(key);
    entry->second.push_back(std::move(done));
    if (!first) {
      counters_.coalesced.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (fetching_ >= options_.max_in_flight) {
      queued_.push_back(Queued{key, std::move(url), refresh});
      counters_.queued.store(queued_.size(), std::memory_order_relaxed);
      return;
    }
    ++fetching_;
  }
  fetch(key, url, refresh);
}

void DidResolver::fetch(const std::string& did, const std::string& url, bool refresh) {
  counters_.fetches.fetch_add(1, std::memory_order_relaxed);
  client_.get(url, options_.limits, [this, key = did, refresh](http::FetchResult result) {
    auto resolution = std::make_shared<Resolution>();
    resolution->fetched_at_us = now_us_();
    resolution->by_refresh = refresh;
    std::chrono::seconds ttl = options_.failure_ttl;
    if (result.error) {
      resolution->failure = std::string(http::to_string(*result.error));
    } else if (result.status == 404 || result.status == 410) {
      resolution->failure = "not_found";
    } else if (result.status != 200) {
      resolution->failure = "http_" + std::to_string(result.status);
    } else {
      auto parsed = parse_did_document(key, result.body);
      if (auto* document = std::get_if<DidDocument>(&parsed)) {
        resolution->document = std::move(*document);
        ttl = options_.document_ttl;
      } else {
        resolution->failure = "document_" + std::string(to_string(std::get<DocumentError>(parsed)));
      }
    }
    complete(key, std::move(resolution), ttl);
  });
}

void DidResolver::complete(const std::string& did, ResolutionPtr resolution,
                           std::chrono::seconds ttl) {
  (resolution->document ? counters_.resolved : counters_.failed)
      .fetch_add(1, std::memory_order_relaxed);
  cache_.put(did, resolution,
             now_us_() + std::chrono::duration_cast<std::chrono::microseconds>(ttl).count());
  std::vector<Callback> waiting;
  std::optional<Queued> next;
  {
    std::lock_guard lock(mutex_);
    const auto entry = in_flight_.find(did);
    if (entry != in_flight_.end()) {
      waiting = std::move(entry->second);
      in_flight_.erase(entry);
    }
    if (queued_.empty()) {
      --fetching_;
    } else {
      next = std::move(queued_.front());  // the slot passes to the next DID in line
      queued_.pop_front();
      counters_.queued.store(queued_.size(), std::memory_order_relaxed);
    }
  }
  for (auto& done : waiting) done(resolution);
  if (next) fetch(next->did, next->url, next->refresh);
}

}  // namespace jetstream::identity
