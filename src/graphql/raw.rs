//! Parts of a response written as JSON while executing, spliced in when it is serialised.
//!
//! A list answered by the fast path ([`super::fast`]) is written straight to JSON: building it
//! as async-graphql values first (one map with hashed keys per object, one allocation per
//! string) and then serialising and freeing that tree costs several times more than writing
//! the same bytes once. async-graphql's executor still needs a value in the list's place, so
//! the list becomes a placeholder string that no real value can equal (it starts with a NUL
//! character, which PostgreSQL text never holds, and carries a per-request number), and the
//! HTTP layer writes the stored JSON where it finds one ([`write_value`]). The bytes are the
//! ones serde_json would write for the equivalent value tree (a test compares the two paths
//! byte for byte).

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use async_graphql::Value;

/// The JSON parts of one request, in the order they were written.
#[derive(Debug)]
pub struct RawParts {
    prefix: String,
    parts: Mutex<Vec<Vec<u8>>>,
}

impl Default for RawParts {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        RawParts {
            prefix: format!("\u{0}raw{}:", NEXT.fetch_add(1, Ordering::Relaxed)),
            parts: Mutex::default(),
        }
    }
}

impl RawParts {
    /// Stores `json` (one complete JSON value) and returns the placeholder standing for it.
    pub fn placeholder(&self, json: Vec<u8>) -> Value {
        let index = match self.parts.lock() {
            Ok(mut parts) => {
                parts.push(json);
                parts.len() - 1
            }
            Err(_) => return Value::Null,
        };
        Value::String(format!("{}{index}", self.prefix))
    }

    /// The parts written so far, for serialising the response.
    pub fn take(&self) -> RawTable {
        RawTable {
            prefix: self.prefix.clone(),
            parts: self
                .parts
                .lock()
                .map(|mut p| std::mem::take(&mut *p))
                .unwrap_or_default(),
        }
    }
}

/// The parts of a finished request.
#[derive(Debug, Default)]
pub struct RawTable {
    prefix: String,
    parts: Vec<Vec<u8>>,
}

impl RawTable {
    /// Bytes of JSON held.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// Whether no part is held.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn lookup(&self, s: &str) -> Option<&[u8]> {
        if self.parts.is_empty() {
            return None;
        }
        let index: usize = s.strip_prefix(self.prefix.as_str())?.parse().ok()?;
        self.parts.get(index).map(Vec::as_slice)
    }
}

/// Writes a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    serde_json::to_writer(out, s)
}

/// Writes a value that holds no placeholder (a leaf of the fast path).
pub fn write_leaf(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    serde_json::to_writer(out, value)
}

/// Writes `value` as serde_json would (compact), with each placeholder replaced by its part.
pub fn write_value(out: &mut Vec<u8>, value: &Value, table: &RawTable) -> serde_json::Result<()> {
    match value {
        Value::Object(fields) => {
            out.push(b'{');
            for (i, (key, field)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key.as_str())?;
                out.push(b':');
                write_value(out, field, table)?;
            }
            out.push(b'}');
        }
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, table)?;
            }
            out.push(b']');
        }
        Value::String(s) if s.starts_with('\u{0}') => match table.lookup(s) {
            Some(part) => out.extend_from_slice(part),
            None => write_leaf(out, value)?,
        },
        _ => write_leaf(out, value)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{Name, Number};

    #[test]
    fn splices_parts_where_serde_json_would_write_the_value() {
        let parts = RawParts::default();
        let list = Value::List(vec![
            Value::Object(
                [(Name::new("a"), Value::String("x\"y".to_owned()))]
                    .into_iter()
                    .collect(),
            ),
            Value::Number(Number::from(3)),
        ]);
        let placeholder = parts.placeholder(serde_json::to_vec(&list).unwrap_or_default());
        let with_placeholder = Value::Object(
            [
                (Name::new("n"), Value::Null),
                (Name::new("list"), placeholder),
                (
                    Name::new("s"),
                    Value::String("\u{0}raw-not-ours".to_owned()),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let expected = Value::Object(
            [
                (Name::new("n"), Value::Null),
                (Name::new("list"), list),
                (
                    Name::new("s"),
                    Value::String("\u{0}raw-not-ours".to_owned()),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let mut out = Vec::new();
        assert!(write_value(&mut out, &with_placeholder, &parts.take()).is_ok());
        assert_eq!(out, serde_json::to_vec(&expected).unwrap_or_default());
    }
}
