#include "services/backfill/repo_fetch.hpp"

#include <rapidjson/document.h>

#include <cctype>
#include <charconv>

namespace jetstream::backfill {

std::string_view to_string(FetchOutcome::Kind kind) {
  switch (kind) {
    case FetchOutcome::Kind::done: return "done";
    case FetchOutcome::Kind::retry: return "retry";
    case FetchOutcome::Kind::failed: return "failed";
    case FetchOutcome::Kind::host_busy: return "host_busy";
  }
  return "unknown";
}

namespace {

FetchOutcome outcome(FetchOutcome::Kind kind, std::string reason, std::string detail) {
  FetchOutcome out;
  out.kind = kind;
  out.reason = std::move(reason);
  if (detail.size() > 256) detail.resize(256);
  out.detail = std::move(detail);
  return out;
}

std::optional<std::int64_t> parse_seconds(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  std::int64_t value = 0;
  const auto* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, value);
  if (ec != std::errc() || ptr != end || value < 0) return std::nullopt;
  return value;
}

/// The XRPC error name of an error body (`{"error":"RepoNotFound",...}`), empty when none.
std::string xrpc_error(const std::string& body) {
  rapidjson::Document document;
  document.Parse(body.data(), body.size());
  if (document.HasParseError() || !document.IsObject()) return {};
  const auto error = document.FindMember("error");
  if (error == document.MemberEnd() || !error->value.IsString()) return {};
  std::string name(error->value.GetString(), error->value.GetStringLength());
  if (name.size() > 64) name.resize(64);
  return name;
}

}  // namespace

FetchOutcome classify_response(const http::FetchResult& result, std::int64_t now_unix_s) {
  using Kind = FetchOutcome::Kind;
  if (result.error) {
    const std::string reason(http::to_string(*result.error));
    switch (*result.error) {
      case http::FetchError::bad_url:
      case http::FetchError::plain_http_refused:
      case http::FetchError::forbidden_address:
      case http::FetchError::too_many_redirects:
        return outcome(Kind::failed, reason, result.detail);
      case http::FetchError::too_large: return outcome(Kind::failed, "too_large", result.detail);
      default: return outcome(Kind::retry, reason, result.detail);
    }
  }
  const unsigned status = result.status;
  const std::string error = xrpc_error(result.body);
  if (status == 429 || status >= 500) {
    FetchOutcome out = outcome(Kind::host_busy, "http_" + std::to_string(status), error);
    // Retry-After in seconds (an HTTP date is taken as absent: the host's backoff applies), or
    // RateLimit-Reset as unix seconds.
    if (const auto after = parse_seconds(result.retry_after)) {
      out.pause = std::chrono::seconds(std::min<std::int64_t>(*after, 3600));
    } else if (const auto reset = parse_seconds(result.ratelimit_reset);
               reset && *reset > now_unix_s) {
      out.pause = std::chrono::seconds(std::min<std::int64_t>(*reset - now_unix_s, 3600));
    }
    return out;
  }
  if (error == "RepoNotFound" || status == 404) return outcome(Kind::failed, "not_found", error);
  if (error == "RepoDeactivated") return outcome(Kind::failed, "deactivated", error);
  if (error == "RepoTakendown") return outcome(Kind::failed, "taken_down", error);
  if (error == "RepoSuspended") return outcome(Kind::failed, "suspended", error);
  if (status >= 400 && status < 500) {
    return outcome(Kind::failed, "http_" + std::to_string(status), error);
  }
  return outcome(Kind::retry, "http_" + std::to_string(status), error);
}

FetchOutcome classify_failure(RepoFailure failure, const std::string& detail) {
  using Kind = FetchOutcome::Kind;
  switch (failure) {
    case RepoFailure::too_large:
    case RepoFailure::wrong_repo:
      return outcome(Kind::failed, std::string(to_string(failure)), detail);
    default:
      // A cut connection, a corrupt block, a full disk: another attempt may go through.
      return outcome(Kind::retry, std::string(to_string(failure)), detail);
  }
}

std::string get_repo_url(std::string_view endpoint, std::string_view did) {
  std::string url(endpoint);
  while (!url.empty() && url.back() == '/') url.pop_back();
  url.append("/xrpc/com.atproto.sync.getRepo?did=");
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : did) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '.' || c == '-' || c == '_' || c == '~') {
      url.push_back(c);
    } else {
      url.push_back('%');
      url.push_back(kHex[byte >> 4]);
      url.push_back(kHex[byte & 0x0f]);
    }
  }
  return url;
}

RepoFetch::RepoFetch(std::uint64_t fetch_id, RepoReader::Options reader_options, DecodeLink& link,
                     Done done)
    : fetch_id_(fetch_id),
      link_(link),
      reader_(std::move(reader_options),
              [this](OutgoingBatch batch) {
                if (!link_.submit(fetch_id_, std::move(batch))) submit_failed_ = true;
              }),
      done_(std::move(done)) {}

void RepoFetch::start(http::HttpClient& client, const std::string& url,
                      const http::FetchLimits& limits) {
  http::HttpClient::Stream stream;
  stream.on_chunk = [self = shared_from_this()](std::span<const std::uint8_t> chunk) {
    return self->reader_.feed(chunk) && !self->submit_failed_;
  };
  stream.done = [self = shared_from_this()](http::FetchResult result) {
    self->on_response(result);
  };
  client.get_stream(url, limits, std::move(stream));
}

void RepoFetch::on_response(const http::FetchResult& result) {
  FetchOutcome out;
  if (reader_.failure()) {
    out = classify_failure(*reader_.failure(), reader_.detail());
  } else if (submit_failed_) {
    out = outcome(FetchOutcome::Kind::retry, "stopping", "the link to decode is stopping");
  } else if (result.error || result.status != 200) {
    out = classify_response(result, std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  } else if (!reader_.finish()) {
    out = classify_failure(*reader_.failure(), reader_.detail());
  } else if (submit_failed_) {
    out = outcome(FetchOutcome::Kind::retry, "stopping", "the link to decode is stopping");
  } else {
    return;  // the last batch is queued: `stored` completes the fetch
  }
  out.bytes = reader_.bytes_read();
  link_.abandon(fetch_id_);
  finish(std::move(out));
}

void RepoFetch::stored(const FetchTotals& totals) {
  FetchOutcome out;
  if (totals.rejected) {
    out = outcome(FetchOutcome::Kind::retry, "decode_rejected",
                  "decode refused a batch (no compacted collections, or another set)");
  }
  out.totals = totals;
  out.rev = reader_.rev();
  out.bytes = reader_.bytes_read();
  out.records = reader_.records_sent();
  finish(std::move(out));
}

void RepoFetch::finish(FetchOutcome outcome) {
  if (finished_.exchange(true)) return;
  const auto keep_alive = shared_from_this();  // `done_` may drop the last other reference
  done_(std::move(outcome));
}

}  // namespace jetstream::backfill
