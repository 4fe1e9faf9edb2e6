// What a client of `snapshot=true` keeps: the stream folded into state (API.md "State"). The
// tests fold a connection's events and the log's, and compare the two.
#pragma once

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <string>

namespace jetstream::testing {

/// What a client folding a stream into state keeps: per record (did, collection, rkey) and per
/// DID's identity and account, the JSON of its latest event. Info messages are not state.
class StateFold {
 public:
  /// Folds one v1 event's JSON; returns false for an info message.
  bool apply(const std::string& json) {
    rapidjson::Document document;
    document.Parse(json.data(), json.size());
    EXPECT_FALSE(document.HasParseError()) << json;
    const std::string kind = document["kind"].GetString();
    if (kind == "info") return false;
    std::string key = document["did"].GetString();
    key += '\0';
    if (kind == "commit") {
      key += document["commit"]["collection"].GetString();
      key += '\0';
      key += document["commit"]["rkey"].GetString();
    } else {
      key += "#" + kind;
    }
    state_[key] = json;
    return true;
  }
  const std::map<std::string, std::string>& state() const { return state_; }

 private:
  std::map<std::string, std::string> state_;
};

}  // namespace jetstream::testing
