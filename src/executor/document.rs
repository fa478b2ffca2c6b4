//! Documents: bounded before they are parsed, parsed once, measured once, and cached by bytes.
//!
//! A document is refused before the parser sees it when it is longer than
//! `MAX_DOCUMENT_BYTES` or holds more than `MAX_DOCUMENT_TOKENS` lexical tokens (counted by a
//! linear scan that allocates nothing): the parser and the analyses below then never run on
//! more than a few kilobytes. Parsed documents are kept in an LRU bounded by the bytes of their
//! text (`DOCUMENT_CACHE_BYTES`), since clients send the same few documents over and over.

use std::{
    collections::{HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use async_graphql::{
    Name, Pos, Positioned,
    parser::{
        parse_query,
        types::{
            DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition,
            OperationType, Selection, SelectionSet,
        },
    },
};
use async_graphql_value::Value;
use lru::LruCache;

/// Why a document was refused before it was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooLarge {
    /// More bytes than allowed.
    Bytes(usize),
    /// More tokens than allowed (counting stopped at the limit).
    Tokens,
}

/// Counts GraphQL lexical tokens (punctuators, names, numbers, strings; not whitespace,
/// commas or comments), stopping as soon as there are more than `limit`.
pub fn within_token_limit(text: &str, limit: usize) -> bool {
    let bytes = text.as_bytes();
    let mut count = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            // A byte-order mark.
            0xEF if bytes.get(i + 1..i + 3) == Some(&[0xBB, 0xBF]) => i += 3,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                count += 1;
                if bytes.get(i..i + 3) == Some(b"\"\"\"") {
                    i += 3;
                    while i < bytes.len() && bytes.get(i..i + 3) != Some(b"\"\"\"") {
                        i += if bytes.get(i..i + 4) == Some(b"\\\"\"\"") {
                            4
                        } else {
                            1
                        };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'.' if bytes.get(i..i + 3) == Some(b"...") => {
                count += 1;
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'+' => {
                count += 1;
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            _ => {
                count += 1;
                i += 1;
            }
        }
        if count > limit {
            return false;
        }
    }
    true
}

/// Checks a document's size before it is parsed.
pub fn check_size(text: &str, max_bytes: usize, max_tokens: usize) -> Result<(), TooLarge> {
    if text.len() > max_bytes {
        return Err(TooLarge::Bytes(text.len()));
    }
    if !within_token_limit(text, max_tokens) {
        return Err(TooLarge::Tokens);
    }
    Ok(())
}

/// Which operation of a document runs, or why none can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// This one (by index into the document's operations, in document order).
    Operation(OperationType),
    /// The name given is not an operation of the document.
    UnknownName,
    /// The document has several operations and no name was given.
    NameRequired,
}

/// How much an operation selects, fragments expanded, introspection apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measure {
    /// Fields outside introspection (aliases and repeated fields count each time).
    pub data_fields: usize,
    /// Fields inside `__schema` and `__type` (and those two themselves).
    pub introspection_fields: usize,
    /// Deepest nesting of fields outside introspection, counted as async-graphql counts depth
    /// (every field level).
    pub data_depth: usize,
}

/// A parsed document and what is known about the operation that will run.
#[derive(Debug)]
pub struct Document {
    text: String,
    operation_name: Option<String>,
    /// The parsed document.
    pub doc: ExecutableDocument,
    /// Which operation runs.
    pub selected: Selected,
    /// The name of the operation that runs, when it has one.
    pub name: Option<String>,
    /// What the operation selects.
    pub measure: Measure,
    /// Whether the operation asks for `__schema` or `__type`.
    pub introspection: bool,
    /// Variables that must be given: name, type and the input path where they are used.
    pub required_variables: Vec<(String, String, Option<String>)>,
    /// Argument positions whose values come from variables.
    pub variable_arguments: HashSet<Pos>,
    /// Set once a request with this document passed async-graphql's full validation: later
    /// ones need only their variables checked (see the executor).
    pub validated: OnceLock<()>,
    /// Checks that depend on the document alone, computed on first use.
    pub(super) memo: Memo,
}

/// What the executor computes once per document.
#[derive(Debug, Default)]
pub(super) struct Memo {
    /// A string literal where an enum is expected, if any (see `literals`).
    pub enum_literal: OnceLock<Option<(String, String)>>,
    /// The complexity, when no variable feeds an argument (else it is computed per request).
    pub complexity: OnceLock<usize>,
}

impl Document {
    /// Parses `text` (already checked by [`check_size`]) and analyses the operation named
    /// `operation_name` (or the only one).
    pub fn parse(
        text: &str,
        operation_name: Option<&str>,
    ) -> Result<Document, async_graphql::parser::Error> {
        let doc = parse_query(text)?;
        let (selected, op) = match selected_operation(&doc, operation_name) {
            Ok(op) => (Selected::Operation(op.ty), Some(op)),
            Err(why) => (why, None),
        };
        let measure = op
            .map(|op| measure(&op.selection_set.node, &doc.fragments))
            .unwrap_or_default();
        let required_variables = op
            .map(|op| {
                op.variable_definitions
                    .iter()
                    .filter(|d| !d.node.var_type.node.nullable && d.node.default_value.is_none())
                    .map(|d| {
                        (
                            d.node.name.node.to_string(),
                            d.node.var_type.node.to_string(),
                            variable_usage_path(&doc, &d.node.name.node),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = operation_name
            .map(str::to_owned)
            .or_else(|| only_operation_name(&doc));
        Ok(Document {
            text: text.to_owned(),
            operation_name: operation_name.map(str::to_owned),
            selected,
            name,
            introspection: measure.introspection_fields > 0,
            measure,
            required_variables,
            variable_arguments: variable_argument_positions(&doc),
            validated: OnceLock::new(),
            memo: Memo::default(),
            doc,
        })
    }

    /// The operation that runs, when one does.
    pub fn operation(&self) -> Option<&OperationDefinition> {
        selected_operation(&self.doc, self.operation_name.as_deref()).ok()
    }

    /// The operation's type, when one runs.
    pub fn operation_type(&self) -> Option<OperationType> {
        match self.selected {
            Selected::Operation(ty) => Some(ty),
            _ => None,
        }
    }
}

/// The operation that will run: the named one, or the only one.
fn selected_operation<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Result<&'a OperationDefinition, Selected> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Ok(&op.node),
        (DocumentOperations::Single(_), Some(_)) => Err(Selected::UnknownName),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .map(|op| &op.node)
            .ok_or(Selected::UnknownName),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .values()
            .next()
            .map(|op| &op.node)
            .ok_or(Selected::NameRequired),
        (DocumentOperations::Multiple(_), None) => Err(Selected::NameRequired),
    }
}

/// The name of the document's only operation, when it is named.
fn only_operation_name(doc: &ExecutableDocument) -> Option<String> {
    match &doc.operations {
        DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            ops.keys().next().map(|n| n.to_string())
        }
        _ => None,
    }
}

/// Measures a selection set without expanding anything twice: each fragment's measure is
/// memoised (per context: inside or outside introspection), so a document that would expand
/// exponentially is measured in linear time. Fragment cycles measure as nothing (validation
/// refuses them).
pub fn measure(
    set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
) -> Measure {
    struct Walk<'a> {
        fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
        memo: HashMap<(&'a Name, bool), Measure>,
        visiting: HashSet<(&'a Name, bool)>,
    }
    impl<'a> Walk<'a> {
        fn set(&mut self, set: &'a SelectionSet, introspection: bool) -> Measure {
            let mut total = Measure::default();
            for selection in &set.items {
                let m = match &selection.node {
                    Selection::Field(field) => {
                        let name = field.node.name.node.as_str();
                        let inside = introspection || name == "__schema" || name == "__type";
                        let child = self.set(&field.node.selection_set.node, inside);
                        if inside {
                            Measure {
                                data_fields: 0,
                                introspection_fields: child.introspection_fields.saturating_add(1),
                                data_depth: 0,
                            }
                        } else {
                            Measure {
                                data_fields: child.data_fields.saturating_add(1),
                                introspection_fields: child.introspection_fields,
                                data_depth: child.data_depth.saturating_add(1),
                            }
                        }
                    }
                    Selection::InlineFragment(inline) => {
                        self.set(&inline.node.selection_set.node, introspection)
                    }
                    Selection::FragmentSpread(spread) => {
                        let key = (&spread.node.fragment_name.node, introspection);
                        if let Some(m) = self.memo.get(&key) {
                            *m
                        } else if self.visiting.contains(&key) {
                            Measure::default()
                        } else if let Some(fragment) = self.fragments.get(key.0) {
                            self.visiting.insert(key);
                            let m = self.set(&fragment.node.selection_set.node, introspection);
                            self.visiting.remove(&key);
                            self.memo.insert(key, m);
                            m
                        } else {
                            Measure::default()
                        }
                    }
                };
                total.data_fields = total.data_fields.saturating_add(m.data_fields);
                total.introspection_fields = total
                    .introspection_fields
                    .saturating_add(m.introspection_fields);
                total.data_depth = total.data_depth.max(m.data_depth);
            }
            total
        }
    }
    Walk {
        fragments,
        memo: HashMap::new(),
        visiting: HashSet::new(),
    }
    .set(set, false)
}

/// Calls `visit` for every field (with its arguments) in the document's operations and
/// fragments.
fn for_each_field(
    doc: &ExecutableDocument,
    visit: &mut dyn FnMut(&async_graphql::parser::types::Field),
) {
    fn walk(set: &SelectionSet, visit: &mut dyn FnMut(&async_graphql::parser::types::Field)) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    visit(&field.node);
                    walk(&field.node.selection_set.node, visit);
                }
                Selection::InlineFragment(inline) => walk(&inline.node.selection_set.node, visit),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    for (_, op) in doc.operations.iter() {
        walk(&op.node.selection_set.node, visit);
    }
    for fragment in doc.fragments.values() {
        walk(&fragment.node.selection_set.node, visit);
    }
}

/// Whether `value` uses a variable anywhere (in lists and objects too).
fn contains_variable(value: &Value) -> bool {
    match value {
        Value::Variable(_) => true,
        Value::List(items) => items.iter().any(contains_variable),
        Value::Object(fields) => fields.values().any(contains_variable),
        _ => false,
    }
}

/// Positions of argument names whose value uses a variable (so a bad value there came from
/// the request's variables, not from the document).
fn variable_argument_positions(doc: &ExecutableDocument) -> HashSet<Pos> {
    let mut out = HashSet::new();
    for_each_field(doc, &mut |field| {
        for (name, value) in &field.arguments {
            if contains_variable(&value.node) {
                out.insert(name.pos);
            }
        }
    });
    out
}

/// The dot path (argument and input-field names) where `variable` is first used.
fn variable_usage_path(doc: &ExecutableDocument, variable: &str) -> Option<String> {
    fn find(value: &Value, variable: &str, path: &mut Vec<String>) -> bool {
        match value {
            Value::Variable(name) => name.as_str() == variable,
            Value::Object(fields) => fields.iter().any(|(key, v)| {
                path.push(key.to_string());
                let found = find(v, variable, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::List(items) => items.iter().enumerate().any(|(i, v)| {
                path.push(i.to_string());
                let found = find(v, variable, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut result = None;
    for_each_field(doc, &mut |field| {
        if result.is_some() {
            return;
        }
        for (name, value) in &field.arguments {
            let mut path = vec![name.node.to_string()];
            if find(&value.node, variable, &mut path) {
                result = Some(path.join("."));
                return;
            }
        }
    });
    result
}

/// Parsed documents by text and operation name, bounded by the bytes of their text.
#[derive(Debug)]
pub struct DocumentCache {
    inner: Mutex<Cached>,
    capacity_bytes: usize,
}

#[derive(Debug)]
struct Cached {
    entries: LruCache<u64, Arc<Document>>,
    bytes: usize,
}

impl DocumentCache {
    /// A cache holding documents up to `capacity_bytes` of text in all (0: no caching).
    pub fn new(capacity_bytes: usize) -> Self {
        DocumentCache {
            inner: Mutex::new(Cached {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity_bytes,
        }
    }

    fn key(text: &str, operation_name: Option<&str>) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        text.hash(&mut hasher);
        operation_name.hash(&mut hasher);
        hasher.finish()
    }

    /// The cached document for `text` and `operation_name`, if any.
    pub fn get(&self, text: &str, operation_name: Option<&str>) -> Option<Arc<Document>> {
        let key = Self::key(text, operation_name);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .entries
            .get(&key)
            .filter(|hit| hit.text == text && hit.operation_name.as_deref() == operation_name)
            .map(Arc::clone)
    }

    /// Keeps `document`, evicting the least recently used ones past the byte capacity.
    pub fn put(&self, document: Arc<Document>) {
        let size = document.text.len();
        if size > self.capacity_bytes / 8 {
            // A document bigger than an eighth of the cache would push out many small ones.
            return;
        }
        let key = Self::key(&document.text, document.operation_name.as_deref());
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = inner.entries.put(key, document) {
            inner.bytes = inner.bytes.saturating_sub(old.text.len());
        }
        inner.bytes += size;
        while inner.bytes > self.capacity_bytes {
            match inner.entries.pop_lru() {
                Some((_, evicted)) => inner.bytes = inner.bytes.saturating_sub(evicted.text.len()),
                None => break,
            }
        }
    }

    /// Bytes of document text held.
    pub fn bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document::parse(text, None).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tokens_are_counted_without_parsing() {
        assert!(within_token_limit("{ a b c }", 5));
        assert!(!within_token_limit("{ a b c }", 4));
        assert!(within_token_limit("# a comment with many words\n{ a }", 3));
        assert!(within_token_limit(r#"{ a(s: "x y z \" w") }"#, 8));
        assert!(!within_token_limit(r#"{ a(s: "x y z \" w") }"#, 7));
        assert!(within_token_limit(
            r#"{ a(s: """ many "quoted" words """) }"#,
            8
        ));
        assert!(within_token_limit("query($n: Int = -1.5e3) { ...f }", 14));
        let huge = format!("{{ {} }}", "a ".repeat(100_000));
        assert!(!within_token_limit(&huge, 5000));
    }

    #[test]
    fn fragments_are_measured_without_expanding_them() {
        let mut text = String::from("query { ...f0 }\n");
        for i in 0..30 {
            text.push_str(&format!(
                "fragment f{i} on Query {{ ...f{} ...f{} }}\n",
                i + 1,
                i + 1
            ));
        }
        text.push_str("fragment f30 on Query { __typename }\n");
        assert_eq!(doc(&text).measure.data_fields, 1 << 30);
    }

    #[test]
    fn introspection_is_measured_apart_from_data() {
        let d = doc("{ funds { nodes { name } } __schema { types { name fields { name } } } }");
        assert_eq!(d.measure.data_fields, 3);
        assert_eq!(d.measure.data_depth, 3);
        assert_eq!(d.measure.introspection_fields, 5);
        assert!(d.introspection);
        let d = doc("{ ...f } fragment f on Query { __type(name: \"Fund\") { name } }");
        assert_eq!(d.measure.introspection_fields, 2);
        assert!(!doc("{ __typename }").introspection);
    }

    #[test]
    fn the_operation_that_runs_is_known_before_validation() {
        assert_eq!(
            doc("query A { a } query B { b }").selected,
            Selected::NameRequired
        );
        let named = Document::parse("query A { a } mutation B { b }", Some("B"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(named.selected, Selected::Operation(OperationType::Mutation));
        assert_eq!(named.name.as_deref(), Some("B"));
        let unknown = Document::parse("query A { a }", Some("C")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unknown.selected, Selected::UnknownName);
    }

    #[test]
    fn variable_paths_use_argument_and_field_names() {
        let d =
            doc("mutation($y: Int!) { createFund(input: {name: \"x\", vintageYear: $y}) { id } }");
        assert_eq!(
            d.required_variables,
            vec![(
                "y".to_owned(),
                "Int!".to_owned(),
                Some("input.vintageYear".to_owned())
            )]
        );
        assert_eq!(d.variable_arguments.len(), 1);
    }

    #[test]
    fn the_cache_is_bounded_by_bytes() {
        let cache = DocumentCache::new(8 * 100);
        for i in 0..50 {
            let text = format!("{{ a{i:0>90} }}");
            cache.put(Arc::new(doc(&text)));
        }
        assert!(cache.bytes() <= 800, "{}", cache.bytes());
        assert!(cache.len() >= 7);
        let last = format!("{{ a{:0>90} }}", 49);
        assert!(cache.get(&last, None).is_some());
        assert!(cache.get(&last, Some("x")).is_none());
    }
}
