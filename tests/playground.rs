//! The playground is served by the server itself: exactly the files of
//! `playground/dist/MANIFEST.json`, byte for byte, with their media types, cache lifetimes and a
//! Content-Security-Policy that allows nothing from elsewhere. (`tests/browser/run.sh` runs it
//! in a real browser.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::{body::Body, http::Request};
use common::TestApp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use titanbay::http::playground::{self, ASSET_PATH, CACHE_IMMUTABLE, CACHE_REVALIDATE};

fn dist() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("playground/dist")
}

fn manifest() -> Value {
    let text = std::fs::read(dist().join("MANIFEST.json")).expect("playground/dist/MANIFEST.json");
    serde_json::from_slice(&text).expect("MANIFEST.json is JSON")
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn page_request() -> Request<Body> {
    Request::get("/graphql")
        .header("accept", "text/html,application/xhtml+xml")
        .body(Body::empty())
        .unwrap()
}

fn header<'a>(response: &'a common::TestResponse, name: &str) -> &'a str {
    response
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The values of `attr="…"` in `html` that start with `prefix`.
fn attribute_values(html: &str, attr: &str, prefix: &str) -> Vec<String> {
    let needle = format!("{attr}=\"{prefix}");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + attr.len() + 2..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_file_is_served_byte_for_byte_as_the_manifest_lists_it() {
    let app = TestApp::spawn().await;
    let manifest = manifest();
    let files = manifest["files"].as_object().expect("files");
    let listed: BTreeSet<String> = files.keys().cloned().collect();
    let served: BTreeSet<String> = playground::files().map(str::to_owned).collect();
    assert_eq!(
        listed, served,
        "the manifest lists exactly the served files"
    );
    let on_disk: BTreeSet<String> = std::fs::read_dir(dist())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "MANIFEST.json" && name != "assets.rs")
        .collect();
    assert_eq!(
        on_disk, listed,
        "playground/dist holds exactly the listed files"
    );
    assert!(listed.len() > 5, "{listed:?}");

    for (name, entry) in files {
        let response = app.send(get(&format!("{ASSET_PATH}/{name}"))).await;
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(
            hex_sha256(&response.raw),
            entry["sha256"].as_str().unwrap(),
            "{name}: the served bytes match the manifest's SHA-256"
        );
        assert_eq!(response.raw.len() as u64, entry["bytes"].as_u64().unwrap());
        let on_disk = std::fs::read(dist().join(name)).unwrap();
        assert_eq!(
            hex_sha256(&on_disk),
            entry["sha256"].as_str().unwrap(),
            "{name} on disk"
        );
        assert_eq!(
            header(&response, "content-type"),
            playground::content_type(name)
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let cache = header(&response, "cache-control");
        if name == "THIRD_PARTY_LICENSES.txt" {
            assert_eq!(cache, CACHE_REVALIDATE);
        } else {
            assert_eq!(cache, CACHE_IMMUTABLE, "{name} has a content-hashed name");
        }
    }

    let missing = app
        .send(get(&format!("{ASSET_PATH}/nope-ABCDEFGH.js")))
        .await;
    assert_eq!(missing.status, 404);
    let outside = app.send(get(&format!("{ASSET_PATH}/../Cargo.toml"))).await;
    assert_eq!(outside.status, 404);
}

#[tokio::test]
async fn the_page_loads_only_served_files_under_a_policy_of_this_origin_only() {
    let app = TestApp::spawn().await;
    let manifest = manifest();
    let response = app.send(page_request()).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "cache-control"), "no-cache");
    let html = String::from_utf8(response.raw.to_vec()).unwrap();
    assert!(html.contains("id=\"graphiql\""), "{html}");

    // Every URL in the page is one of the served files; the script and stylesheet are the
    // manifest's entries.
    let mut referenced = attribute_values(&html, "src", "/");
    referenced.extend(attribute_values(&html, "href", "/"));
    assert_eq!(referenced.len(), 3, "{referenced:?}");
    for url in &referenced {
        let name = url
            .strip_prefix(&format!("{ASSET_PATH}/"))
            .unwrap_or_else(|| panic!("{url} is not a playground file"));
        assert!(playground::file(name).is_some(), "{name}");
    }
    for entry in ["script", "style", "favicon"] {
        let name = manifest["entry"][entry].as_str().unwrap();
        assert!(
            referenced.contains(&format!("{ASSET_PATH}/{name}")),
            "{entry}"
        );
    }
    // The script names Monaco's workers, which are served.
    let script = playground::file(manifest["entry"]["script"].as_str().unwrap()).unwrap();
    let script = String::from_utf8_lossy(script);
    for (label, worker) in manifest["entry"]["workers"].as_object().unwrap() {
        let worker = worker.as_str().unwrap();
        assert!(script.contains(worker), "{label}: {worker}");
        assert!(playground::file(worker).is_some(), "{worker}");
    }
    // The stylesheet's fonts and images are served files, none a data: or remote URL.
    let style = playground::file(manifest["entry"]["style"].as_str().unwrap()).unwrap();
    let style = String::from_utf8_lossy(style);
    let mut urls = 0;
    for (at, _) in style.match_indices("url(") {
        let rest = &style[at + 4..];
        let url = rest[..rest.find(')').unwrap()].trim_matches(['"', '\'']);
        let name = url
            .strip_prefix("./")
            .unwrap_or_else(|| panic!("the stylesheet loads {url}"));
        assert!(playground::file(name).is_some(), "{name}");
        urls += 1;
    }
    assert!(urls > 0);
    assert!(!style.contains("@import"));

    // The policy: this origin only, no inline script, no framing; the nonce is the page's.
    let csp = header(&response, "content-security-policy");
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for expected in [
        "default-src 'self'",
        "script-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(directives.contains(&expected), "{expected} in {csp}");
    }
    for forbidden in ["http:", "https:", "data:", "blob:", "*", "unsafe-eval"] {
        assert!(!csp.contains(forbidden), "{forbidden} in {csp}");
    }
    assert!(
        !directives
            .iter()
            .any(|d| d.starts_with("script-src") && d.contains("unsafe-inline")),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a style nonce");
    assert!(nonce.len() >= 32, "{nonce}");
    assert!(html.contains(&format!("<meta name=\"csp-nonce\" nonce=\"{nonce}\">")));
    let again = app.send(page_request()).await;
    assert!(
        !header(&again, "content-security-policy").contains(nonce),
        "a new nonce per page"
    );
    assert_eq!(header(&response, "x-frame-options"), "DENY");
    // No inline script: the only <script> without src is the JSON settings block.
    assert_eq!(html.matches("<script").count(), 2);
    assert!(html.contains("<script type=\"application/json\" id=\"playground-config\">"));
}

#[tokio::test]
async fn the_files_and_the_page_are_compressed() {
    let app = TestApp::spawn().await;
    let manifest = manifest();
    let script = manifest["entry"]["script"].as_str().unwrap();
    for encoding in ["br", "gzip"] {
        let response = app
            .send(
                Request::get(format!("{ASSET_PATH}/{script}"))
                    .header("accept-encoding", encoding)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status, 200);
        assert_eq!(header(&response, "content-encoding"), encoding);
        assert!(
            response.raw.len() * 2 < playground::file(script).unwrap().len(),
            "{encoding}: {} bytes",
            response.raw.len()
        );
    }
    let page = app
        .send(
            Request::get("/graphql")
                .header("accept", "text/html")
                .header("accept-encoding", "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(header(&page, "content-encoding"), "gzip");
}

/// The settings the page hands to GraphiQL (its JSON block).
fn page_config(html: &str) -> Value {
    let start = html.find("id=\"playground-config\">").unwrap() + "id=\"playground-config\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

#[tokio::test]
async fn the_starter_query_answers_from_the_demo_data() {
    let app = TestApp::spawn().await;
    titanbay::seed::seed(&app.sql_conn).await.unwrap();
    let page = app.send(page_request()).await;
    let config = page_config(&String::from_utf8_lossy(&page.raw));
    assert_eq!(config["endpoint"], "/graphql");
    assert_eq!(config["subscriptionEndpoint"], Value::Null);
    assert_eq!(config["openHeaders"], false);
    let query = config["defaultQuery"].as_str().unwrap();
    assert_eq!(query, playground::STARTER_QUERY);
    let data = app.gql_ok(query, json!({})).await;
    let funds = &data["funds"];
    assert_eq!(funds["totalCount"], 4);
    let growth = funds["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Titanbay Growth Fund I")
        .expect("the demo fund");
    let investors: BTreeSet<&str> = growth["investments"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["investor"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        investors,
        BTreeSet::from(["CalPERS", "Goldman Sachs Asset Management"])
    );
}

#[tokio::test]
async fn with_authentication_on_the_headers_tab_opens_with_a_token_to_fill_in() {
    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = Some("playground-test-secret-0123456789abcdef".to_owned());
        c.auth.issuer = Some("titanbay-test".to_owned());
        c.auth.audience = Some("titanbay".to_owned());
    })
    .await;
    let page = app.send(page_request()).await;
    assert_eq!(page.status, 200, "the page itself needs no token");
    let config = page_config(&String::from_utf8_lossy(&page.raw));
    assert_eq!(config["openHeaders"], true);
    let headers: Value = serde_json::from_str(config["defaultHeaders"].as_str().unwrap())
        .expect("the default headers are a JSON object");
    assert!(
        headers["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer ")
    );
}

#[tokio::test]
async fn nothing_is_served_when_graphiql_is_off() {
    let app = TestApp::spawn_with(|c| c.graphiql = false).await;
    assert_eq!(app.send(page_request()).await.status, 404);
    let script = manifest()["entry"]["script"].as_str().unwrap().to_owned();
    let response = app.send(get(&format!("{ASSET_PATH}/{script}"))).await;
    assert_eq!(response.status, 404);
}
