//! One structured log line per request, with the request id, operation, duration and error
//! code; slow requests are warnings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Body, http::Request};
use common::TestApp;
use serde_json::{Value, json};
use titanbay::config::{LogConfig, LogFormat};

/// A log sink the test can read.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

#[tokio::test]
async fn each_request_logs_one_json_line_with_its_id_operation_duration_and_code() {
    let buffer = Buffer::default();
    let cfg = LogConfig {
        level: "info".to_owned(),
        format: LogFormat::Json,
        slow_request: Duration::from_secs(60),
    };
    tracing::subscriber::set_global_default(titanbay::telemetry::subscriber(&cfg, buffer.clone()))
        .unwrap();
    let app = TestApp::spawn().await;
    let response = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .header("x-request-id", "log-test-1")
                .body(Body::from(
                    json!({ "query": "query Lookup { fund(id: \"nope\") { id } }" }).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(response.codes(), ["BAD_USER_INPUT"]);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["span"]["request_id"] == "log-test-1")
        .collect();
    assert_eq!(lines.len(), 1, "exactly one line for the request: {text}");
    let line = &lines[0];
    assert_eq!(line["message"], "request finished");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["operation"], "Lookup");
    assert_eq!(line["span"]["method"], "POST");
    assert_eq!(line["status"], 200);
    assert_eq!(line["error_code"], "BAD_USER_INPUT");
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(line["timestamp"].is_string());

    // Over the threshold, the same line is a warning.
    let slow = TestApp::spawn_with(|c| c.log.slow_request = Duration::ZERO).await;
    slow.send(
        Request::get("/healthz")
            .header("x-request-id", "log-test-2")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["span"]["request_id"] == "log-test-2")
        .unwrap();
    assert_eq!(
        (line["level"].as_str(), line["message"].as_str()),
        (Some("WARN"), Some("slow request"))
    );
}
