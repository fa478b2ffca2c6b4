//! Persisted documents: Apollo's automatic persisted queries (a document sent once, then by its
//! SHA-256 hash) and an optional allow-list of trusted documents (the GraphQL-over-HTTP
//! `documentId` form) that, when enforced, is the only thing the server runs.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use async_graphql::{Request, ServerError, Value};
use lru::LruCache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::finish::coded_error;
use crate::error::ErrorCode;

/// The documents automatic persisted queries remember, bounded by the bytes of their text.
#[derive(Debug)]
struct Remembered {
    documents: LruCache<String, Arc<str>>,
    bytes: usize,
    capacity_bytes: usize,
}

impl Remembered {
    fn put(&mut self, hash: String, document: Arc<str>) {
        let size = document.len();
        if let Some(old) = self.documents.put(hash, document) {
            self.bytes = self.bytes.saturating_sub(old.len());
        }
        self.bytes += size;
        while self.bytes > self.capacity_bytes {
            match self.documents.pop_lru() {
                Some((_, evicted)) => self.bytes = self.bytes.saturating_sub(evicted.len()),
                None => break,
            }
        }
    }
}

/// Lowercase hex SHA-256 of a document, as APQ and persisted-document ids use it.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The trusted-documents file: `{"<id>": "<document>", …}` or an Apollo persisted-query
/// manifest (`{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TrustedFile {
    Manifest { operations: Vec<ManifestOperation> },
    Map(HashMap<String, String>),
}

#[derive(Debug, Deserialize)]
struct ManifestOperation {
    id: String,
    body: String,
}

/// Known documents and the switches that govern them.
#[derive(Debug)]
pub struct PersistedDocuments {
    /// Documents registered by clients (APQ); `None` when APQ is off.
    apq: Option<Mutex<Remembered>>,
    /// Documents longer than this are never registered (the executor refuses them anyway).
    max_document_bytes: usize,
    /// Trusted documents by id and by the hash of their text.
    trusted: HashMap<String, Arc<str>>,
    /// Only trusted documents run.
    trusted_only: bool,
}

impl PersistedDocuments {
    /// APQ on or off (remembering up to `capacity_bytes` of documents, none longer than
    /// `max_document_bytes`), no trusted documents.
    pub fn new(apq: bool, capacity_bytes: usize, max_document_bytes: usize) -> Self {
        PersistedDocuments {
            apq: apq.then(|| {
                Mutex::new(Remembered {
                    documents: LruCache::unbounded(),
                    bytes: 0,
                    capacity_bytes,
                })
            }),
            max_document_bytes,
            trusted: HashMap::new(),
            trusted_only: false,
        }
    }

    /// Bytes of APQ documents remembered.
    pub fn remembered_bytes(&self) -> usize {
        self.apq
            .as_ref()
            .and_then(|apq| apq.lock().ok().map(|r| r.bytes))
            .unwrap_or(0)
    }

    /// Loads trusted documents from `path`; with `only`, nothing else runs.
    pub fn with_trusted(mut self, path: &Path, only: bool) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading trusted documents {}: {e}", path.display()))?;
        let file: TrustedFile = serde_json::from_str(&text)
            .map_err(|e| format!("parsing trusted documents {}: {e}", path.display()))?;
        let pairs: Vec<(String, String)> = match file {
            TrustedFile::Manifest { operations } => {
                operations.into_iter().map(|o| (o.id, o.body)).collect()
            }
            TrustedFile::Map(map) => map.into_iter().collect(),
        };
        for (id, body) in pairs {
            let body: Arc<str> = Arc::from(body);
            self.trusted.insert(sha256_hex(&body), Arc::clone(&body));
            self.trusted.insert(strip_scheme(&id).to_owned(), body);
        }
        self.trusted_only = only;
        Ok(self)
    }

    /// How many trusted documents are loaded (ids and hashes both count).
    pub fn trusted_len(&self) -> usize {
        self.trusted.len()
    }

    fn remembered(&self, hash: &str) -> Option<Arc<str>> {
        if let Some(doc) = self.trusted.get(hash) {
            return Some(Arc::clone(doc));
        }
        if self.trusted_only {
            return None;
        }
        let apq = self.apq.as_ref()?;
        apq.lock().ok()?.documents.get(hash).cloned()
    }

    /// Fills in the document of a request sent by id or hash, registers APQ documents, and
    /// refuses what the allow-list does not admit.
    pub fn resolve(
        &self,
        request: &mut Request,
        document_id: Option<&str>,
    ) -> Result<(), ServerError> {
        if let Some(id) = document_id {
            let Some(doc) = self.trusted.get(strip_scheme(id)) else {
                return Err(coded_error(
                    ErrorCode::PersistedQueryNotFound,
                    format!("no trusted document has the id {id:?}"),
                    None,
                ));
            };
            request.query = doc.to_string();
            return Ok(());
        }
        if let Some(hash) = apq_hash(request)? {
            if request.query.is_empty() {
                let Some(doc) = self.remembered(&hash) else {
                    return Err(coded_error(
                        ErrorCode::PersistedQueryNotFound,
                        "PersistedQueryNotFound: send the document with its hash once",
                        None,
                    ));
                };
                request.query = doc.to_string();
                return Ok(());
            }
            if request.query.len() > self.max_document_bytes {
                // Not registered: the executor refuses it with its size.
                return Ok(());
            }
            if sha256_hex(&request.query) != hash {
                return Err(coded_error(
                    ErrorCode::BadRequest,
                    "the persisted-query hash does not match the document (sha256 of its text)",
                    None,
                ));
            }
            if !self.trusted_only
                && let Some(apq) = &self.apq
                && let Ok(mut cache) = apq.lock()
            {
                cache.put(hash, Arc::from(request.query.as_str()));
            }
        }
        if self.trusted_only && !self.trusted.contains_key(&sha256_hex(&request.query)) {
            return Err(coded_error(
                ErrorCode::PersistedQueryNotInList,
                "this server only runs trusted documents; send a documentId from the allow-list",
                None,
            ));
        }
        Ok(())
    }
}

/// `sha256:<hex>` → `<hex>` (the GraphQL-over-HTTP persisted-document form).
fn strip_scheme(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// The `extensions.persistedQuery.sha256Hash` of a request, checked to be version 1.
fn apq_hash(request: &Request) -> Result<Option<String>, ServerError> {
    let Some(Value::Object(pq)) = request.extensions.0.get("persistedQuery") else {
        return Ok(None);
    };
    let version = pq.get("version").and_then(|v| match v {
        Value::Number(n) => n.as_i64(),
        _ => None,
    });
    if version != Some(1) {
        return Err(coded_error(
            ErrorCode::BadRequest,
            "unsupported persisted-query version (only 1)",
            None,
        ));
    }
    match pq.get("sha256Hash") {
        Some(Value::String(hash)) => Ok(Some(hash.to_ascii_lowercase())),
        _ => Err(coded_error(
            ErrorCode::BadRequest,
            "persistedQuery needs a sha256Hash string",
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apq_request(query: &str, hash: &str) -> Request {
        let mut request = Request::new(query);
        request.extensions = async_graphql::Extensions(
            [(
                "persistedQuery".to_owned(),
                Value::from_json(serde_json::json!({ "version": 1, "sha256Hash": hash }))
                    .unwrap_or(Value::Null),
            )]
            .into_iter()
            .collect(),
        );
        request
    }

    fn code(err: &ServerError) -> Option<ErrorCode> {
        super::super::finish::error_code(err)
    }

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }

    #[test]
    fn apq_registers_then_answers_by_hash() {
        let docs = PersistedDocuments::new(true, 1 << 20, 1 << 15);
        let q = "{ __typename }";
        let hash = sha256_hex(q);
        let mut miss = apq_request("", &hash);
        assert_eq!(
            docs.resolve(&mut miss, None).err().as_ref().and_then(code),
            Some(ErrorCode::PersistedQueryNotFound)
        );
        let mut register = apq_request(q, &hash);
        assert!(docs.resolve(&mut register, None).is_ok());
        let mut hit = apq_request("", &hash);
        assert!(docs.resolve(&mut hit, None).is_ok());
        assert_eq!(hit.query, q);
        let mut wrong = apq_request(q, &"0".repeat(64));
        assert_eq!(
            docs.resolve(&mut wrong, None).err().as_ref().and_then(code),
            Some(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn apq_is_bounded_by_bytes() {
        let docs = PersistedDocuments::new(true, 10_000, 2_000);
        for i in 0..100 {
            let q = format!("{{ a{i:0>1500} }}");
            let mut register = apq_request(&q, &sha256_hex(&q));
            assert!(docs.resolve(&mut register, None).is_ok());
        }
        assert!(
            docs.remembered_bytes() <= 10_000,
            "{}",
            docs.remembered_bytes()
        );
        let big = format!("{{ a{:0>3000} }}", 1);
        let mut register = apq_request(&big, &sha256_hex(&big));
        assert!(docs.resolve(&mut register, None).is_ok());
        let mut hit = apq_request("", &sha256_hex(&big));
        assert_eq!(
            docs.resolve(&mut hit, None).err().as_ref().and_then(code),
            Some(ErrorCode::PersistedQueryNotFound)
        );
    }
}
