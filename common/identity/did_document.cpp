#include "common/identity/did_document.hpp"

#include <algorithm>

#include "common/syntax/syntax.hpp"
#include "common/text/rapidjson_document.hpp"

namespace jetstream::identity {

std::string_view to_string(DocumentError error) {
  switch (error) {
    case DocumentError::too_large: return "too_large";
    case DocumentError::not_json: return "not_json";
    case DocumentError::wrong_id: return "wrong_id";
  }
  return "unknown";
}

std::string_view to_string(DidError error) {
  switch (error) {
    case DidError::bad_syntax: return "bad_syntax";
    case DidError::unsupported_method: return "unsupported_method";
    case DidError::bad_plc_identifier: return "bad_plc_identifier";
    case DidError::bad_web_host: return "bad_web_host";
  }
  return "unknown";
}

namespace {

std::string_view text_of(const rapidjson::Value& value) {
  return {value.GetString(), value.GetStringLength()};
}

std::optional<std::string_view> string_member(const rapidjson::Value& object,
                                              std::string_view name) {
  const auto member = object.FindMember(rapidjson::StringRef(name.data(), name.size()));
  if (member == object.MemberEnd() || !member->value.IsString()) return std::nullopt;
  return text_of(member->value);
}

/// A verification method or service id names `fragment` either relatively ("#atproto") or with
/// the document's DID in front ("did:plc:x#atproto").
bool id_names(std::string_view id, std::string_view did, std::string_view fragment) {
  if (id.size() < fragment.size() || id.substr(id.size() - fragment.size()) != fragment) {
    return false;
  }
  const std::string_view head = id.substr(0, id.size() - fragment.size());
  return head.empty() || head == did;
}

bool is_http_url(std::string_view url) {
  return url.starts_with("https://") || url.starts_with("http://");
}

void read_signing_key(const rapidjson::Value& methods, std::string_view did,
                      DidDocument& document) {
  if (!methods.IsArray()) return;
  for (const auto& method : methods.GetArray()) {
    if (!method.IsObject()) continue;
    const auto id = string_member(method, "id");
    if (!id || !id_names(*id, did, "#atproto")) continue;
    const auto type = string_member(method, "type").value_or("");
    const auto multibase = string_member(method, "publicKeyMultibase").value_or("");
    std::variant<crypto::PublicKey, crypto::KeyError> key = crypto::KeyError::unknown_key_type;
    if (type == "Multikey") {
      key = crypto::PublicKey::from_multikey(multibase);
    } else if (type == "EcdsaSecp256r1VerificationKey2019") {
      key = crypto::PublicKey::from_legacy_multibase(crypto::Curve::p256, multibase);
    } else if (type == "EcdsaSecp256k1VerificationKey2019") {
      key = crypto::PublicKey::from_legacy_multibase(crypto::Curve::k256, multibase);
    }
    if (auto* parsed = std::get_if<crypto::PublicKey>(&key)) {
      document.signing_key = std::move(*parsed);
    } else {
      document.signing_key_error = std::get<crypto::KeyError>(key);
    }
    return;  // the first #atproto method is the one (atproto DID spec)
  }
}

void read_pds_endpoint(const rapidjson::Value& services, std::string_view did,
                       DidDocument& document) {
  if (!services.IsArray()) return;
  for (const auto& service : services.GetArray()) {
    if (!service.IsObject()) continue;
    const auto id = string_member(service, "id");
    if (!id || !id_names(*id, did, "#atproto_pds")) continue;
    if (string_member(service, "type").value_or("") != "AtprotoPersonalDataServer") continue;
    const auto endpoint = string_member(service, "serviceEndpoint");
    if (endpoint && is_http_url(*endpoint) && endpoint->size() <= 2048) {
      document.pds_endpoint.emplace(*endpoint);
    }
    return;
  }
}

}  // namespace

std::variant<DidDocument, DocumentError> parse_did_document(std::string_view did,
                                                            std::string_view json) {
  if (json.size() > kMaxDocumentBytes) return DocumentError::too_large;
  rapidjson::Document document_json;
  // kParseStopWhenDoneFlag is not set: trailing garbage makes the document invalid. The
  // iterative parser keeps its own heap stack, so nesting inside the size cap cannot exhaust ours.
  document_json.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  const rapidjson::Value& parsed = document_json;
  if (document_json.HasParseError() || !parsed.IsObject()) return DocumentError::not_json;
  const auto id = string_member(parsed, "id");
  if (!id || *id != did) return DocumentError::wrong_id;

  DidDocument document;
  document.did.assign(did);
  if (const auto aka = parsed.FindMember("alsoKnownAs");
      aka != parsed.MemberEnd() && aka->value.IsArray()) {
    for (const auto& entry : aka->value.GetArray()) {
      if (!entry.IsString()) continue;
      const std::string_view uri = text_of(entry);
      if (uri.starts_with("at://") && syntax::is_valid_handle(uri.substr(5))) {
        document.handle.emplace(uri.substr(5));
        break;
      }
    }
  }
  if (const auto methods = parsed.FindMember("verificationMethod"); methods != parsed.MemberEnd()) {
    read_signing_key(methods->value, did, document);
  }
  if (const auto services = parsed.FindMember("service"); services != parsed.MemberEnd()) {
    read_pds_endpoint(services->value, did, document);
  }
  return document;
}

namespace {

bool is_base32_sortable(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); });
}

/// A DNS host name: labels of [a-z0-9-] (either case), 1-63 long, not starting or ending with
/// '-', at least two labels unless it is "localhost", at most 253 characters. No IP literals: a
/// did:web host is a name the HTTP client resolves and then checks.
bool is_valid_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (host == "localhost") return true;
  std::size_t labels = 0;
  bool last_label_numeric = true;
  std::size_t start = 0;
  while (start <= host.size()) {
    const std::size_t dot = std::min(host.find('.', start), host.size());
    const std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    last_label_numeric = true;
    for (const char c : label) {
      const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      const bool digit = c >= '0' && c <= '9';
      if (!letter && !digit && c != '-') return false;
      if (!digit) last_label_numeric = false;
    }
    ++labels;
    start = dot + 1;
  }
  return labels >= 2 && !last_label_numeric;  // "1.2.3.4" is an address, not a name
}

}  // namespace

std::variant<DocumentLocation, DidError> locate_did_document(std::string_view did,
                                                             std::string_view plc_url,
                                                             bool allow_insecure_web) {
  if (!syntax::is_valid_did(did)) return DidError::bad_syntax;
  constexpr std::string_view kPlc = "did:plc:";
  constexpr std::string_view kWeb = "did:web:";
  DocumentLocation location;
  if (did.starts_with(kPlc)) {
    const std::string_view identifier = did.substr(kPlc.size());
    if (identifier.size() != 24 || !is_base32_sortable(identifier)) {
      return DidError::bad_plc_identifier;
    }
    location.method = DidMethod::plc;
    std::string_view base = plc_url;
    while (base.ends_with('/')) base.remove_suffix(1);
    location.url.assign(base).append("/").append(did);
    const std::size_t scheme_end = base.find("://");
    const std::string_view authority =
        scheme_end == std::string_view::npos ? base : base.substr(scheme_end + 3);
    location.host.assign(authority.substr(0, authority.find_first_of(":/")));
    return location;
  }
  if (!did.starts_with(kWeb)) return DidError::unsupported_method;
  std::string_view host = did.substr(kWeb.size());
  std::string_view port;
  // atproto did:web names a host only: no path (':' separators), a port only percent-encoded.
  if (const std::size_t encoded_colon = host.find("%3A"); encoded_colon != std::string_view::npos) {
    port = host.substr(encoded_colon + 3);
    host = host.substr(0, encoded_colon);
    const bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!allow_insecure_web || !digits) return DidError::bad_web_host;
  }
  if (host.find_first_of(":%") != std::string_view::npos || !is_valid_host_name(host)) {
    return DidError::bad_web_host;
  }
  location.method = DidMethod::web;
  location.host.assign(host);
  location.url.assign(allow_insecure_web ? "http://" : "https://").append(host);
  if (!port.empty()) location.url.append(":").append(port);
  location.url.append("/.well-known/did.json");
  return location;
}

}  // namespace jetstream::identity
