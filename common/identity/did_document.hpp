// DID documents: what atproto reads from one (the `#atproto` signing key, the `#atproto_pds`
// endpoint, the handle) and where to fetch it from (`did:plc` and `did:web`).
//
// Documents are written by strangers: parsing is bounded (size, members read), returns an error
// enum for anything it cannot use, and never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/crypto/public_key.hpp"

namespace jetstream::identity {

/// What a DID document says about an atproto account.
struct DidDocument {
  std::string did;
  std::optional<std::string> handle;  ///< the first `at://` entry of alsoKnownAs, unverified
  /// The `#atproto` verification method's key; nullopt when the document has none.
  std::optional<crypto::PublicKey> signing_key;
  /// Why the `#atproto` method is present but unusable (nullopt when fine or absent).
  std::optional<crypto::KeyError> signing_key_error;
  /// The `#atproto_pds` service endpoint, when it is an http(s) URL.
  std::optional<std::string> pds_endpoint;
};

enum class DocumentError : std::uint8_t {
  too_large,  ///< more than kMaxDocumentBytes
  not_json,   ///< not a JSON object
  wrong_id,   ///< `id` absent or not the DID that was resolved
};
std::string_view to_string(DocumentError error);

/// A DID document is small: 64 KiB bounds what a stranger can make us parse.
inline constexpr std::size_t kMaxDocumentBytes = 64 * 1024;

/// Parses the document fetched for `did`.
std::variant<DidDocument, DocumentError> parse_did_document(std::string_view did,
                                                            std::string_view json);

enum class DidMethod : std::uint8_t { plc, web };

enum class DidError : std::uint8_t {
  bad_syntax,          ///< not a DID by the atproto syntax
  unsupported_method,  ///< a DID method atproto does not use (only plc and web)
  bad_plc_identifier,  ///< did:plc: not 24 characters of base32
  bad_web_host,        ///< did:web: not a valid host name (or a port without --did-web-insecure)
};
std::string_view to_string(DidError error);

/// Where the document of a DID is fetched from.
struct DocumentLocation {
  DidMethod method = DidMethod::plc;
  std::string url;
  std::string host;  ///< the host the URL names (for the HTTP client's address rules)
};

/// `did:plc:x` → `<plc_url>/did:plc:x`; `did:web:host` → `https://host/.well-known/did.json`.
/// A `did:web` host is checked before any lookup: DNS labels only, no path. A port
/// (`did:web:localhost%3A8080`) and plain `http` are only for `allow_insecure_web` (loopback
/// tests, `--did-web-insecure`).
std::variant<DocumentLocation, DidError> locate_did_document(std::string_view did,
                                                             std::string_view plc_url,
                                                             bool allow_insecure_web = false);

}  // namespace jetstream::identity
