//! The request pipeline around async-graphql: checks before execution, and codes on every
//! error after it.
//!
//! This is deliberately not an async-graphql `Extension`: with any extension installed,
//! async-graphql sends every single field resolution through the extension chain (a boxed
//! future and a registry lookup per field), which costs more than the rest of a large nested
//! request. Instead the HTTP layer calls [`prepare`] (parse once, refuse what must not run) and
//! [`finish`] (classify errors by stage, map [`AppError`] sources to their codes, log internal
//! errors, apply the spec's null propagation).

use std::{
    collections::HashSet,
    hash::{Hash, Hasher},
    num::NonZeroUsize,
    sync::{Arc, Mutex, OnceLock},
};

use async_graphql::{
    CacheControl, PathSegment, Pos, Request, Response, ServerError, ValidationResult, Value,
    parser::{
        parse_query,
        types::{ExecutableDocument, OperationType},
    },
    registry::Registry,
};
use lru::LruCache;

use super::{MutationRoot, QueryRoot, document, revalidate};
use crate::{
    config::Limits,
    error::{AppError, ErrorCode, INTERNAL_MESSAGE},
};

/// What the pipeline knows about a document and its selected operation. Parsing and this
/// analysis are done once per distinct document and cached (see [`DocumentCache`]).
#[derive(Debug)]
pub struct Analysis {
    query: String,
    operation_name: Option<String>,
    doc: ExecutableDocument,
    /// Type of the operation that will run (`None` when it cannot be told: an unknown or
    /// ambiguous operation name, refused by async-graphql itself).
    operation_type: Option<OperationType>,
    /// Argument positions whose values come from variables.
    variable_arguments: HashSet<Pos>,
    /// Fields the operation selects, fragments expanded.
    field_count: usize,
    /// Whether it asks for `__schema` or `__type`.
    introspection: bool,
    /// Variables that must be given: name, type and the input path where they are used.
    required_variables: Vec<(String, String, Option<String>)>,
    /// Set once a request with this document ran without any error under full validation: the
    /// rules that depend on the document alone then hold for it (see [`revalidate`]). Holds the
    /// cache control that validation computed (it depends on the document alone).
    validated: OnceLock<CacheControl>,
    /// The arguments whose values use variables, with their types (computed on first use;
    /// `None`: the document always gets full validation).
    variable_arguments_typed: OnceLock<Option<Vec<revalidate::VariableArgument>>>,
}

impl Analysis {
    fn new(query: &str, operation_name: Option<&str>) -> Result<Analysis, ServerError> {
        let doc = parse_query(query).map_err(|e| {
            let message = e.to_string();
            let code = if message.contains("recursion") {
                ErrorCode::QueryTooComplex
            } else {
                ErrorCode::GraphqlParseFailed
            };
            let mut err = ServerError::new(message, None);
            err.locations = e.positions().collect();
            set_code(&mut err, code, None);
            err
        })?;
        let op = document::selected_operation(&doc, operation_name);
        let required_variables = op
            .map(|op| {
                op.variable_definitions
                    .iter()
                    .filter(|d| !d.node.var_type.node.nullable && d.node.default_value.is_none())
                    .map(|d| {
                        (
                            d.node.name.node.to_string(),
                            d.node.var_type.node.to_string(),
                            document::variable_usage_path(&doc, &d.node.name.node),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Analysis {
            query: query.to_owned(),
            operation_name: operation_name.map(str::to_owned),
            operation_type: op.map(|op| op.ty),
            variable_arguments: document::variable_argument_positions(&doc),
            field_count: op
                .map(|op| document::expanded_field_count(&doc, op))
                .unwrap_or(0),
            introspection: document::selects_introspection(&doc),
            required_variables,
            validated: OnceLock::new(),
            variable_arguments_typed: OnceLock::new(),
            doc,
        })
    }
}

/// How much of async-graphql's validation a request needs (see [`DocumentFacts::validation`]).
#[derive(Debug, Clone, Copy)]
pub enum Validation {
    /// Every rule: the document has not run cleanly yet, or the variables fail a rule.
    Full,
    /// The limits only (async-graphql's `Fast` mode): the complexity depends on the variables.
    Limits,
    /// None: the result is known from the document's earlier run (handed to async-graphql,
    /// whose vendored copy then skips validation: see `vendor/async-graphql/PATCHED.md`).
    Known(ValidationResult),
}

/// What the pipeline learned about a request's document before running it.
#[derive(Debug, Clone)]
pub struct DocumentFacts {
    analysis: Arc<Analysis>,
}

impl DocumentFacts {
    /// Whether the operation is a mutation (never abandoned mid-flight).
    pub fn is_mutation(&self) -> bool {
        self.analysis.operation_type == Some(OperationType::Mutation)
    }

    /// Whether the operation is known to be a query (it only reads).
    pub fn is_query(&self) -> bool {
        self.analysis.operation_type == Some(OperationType::Query)
    }

    /// How much validation this request needs. The document-only rules can be skipped once
    /// its document has run cleanly under full validation, when its variables pass the one
    /// rule that depends on them (see [`revalidate`]). The depth and complexity limits, the
    /// fragment-cycle check and the cache control then also depend on the document alone,
    /// unless a variable feeds an argument of a connection field (its complexity is computed
    /// from its arguments: the page size multiplies it; cursors and filters from variables are
    /// counted too, conservatively).
    pub fn validation(
        &self,
        variables: &async_graphql::Variables,
        registry: &Registry,
    ) -> Validation {
        let analysis = &self.analysis;
        let Some(&cache_control) = analysis.validated.get() else {
            return Validation::Full;
        };
        let arguments = analysis
            .variable_arguments_typed
            .get_or_init(|| revalidate::variable_arguments(&analysis.doc, registry));
        match arguments {
            Some(arguments) if revalidate::variables_valid(arguments, variables, registry) => {
                if revalidate::complexity_uses_variables(arguments) {
                    Validation::Limits
                } else {
                    Validation::Known(ValidationResult {
                        cache_control,
                        // Compared with the limits during validation only; nothing reads them
                        // afterwards. The limits held when the document ran, and still do.
                        complexity: 0,
                        depth: 0,
                    })
                }
            }
            _ => Validation::Full,
        }
    }

    /// Records that a request with this document ran under full validation without any error,
    /// and the cache control its validation computed.
    pub fn mark_validated(&self, cache_control: CacheControl) {
        let _ = self.analysis.validated.set(cache_control);
    }

    /// The operation's type, when known.
    pub fn operation_type(&self) -> Option<OperationType> {
        self.analysis.operation_type
    }

    /// The operation's name: the requested one, or the name of the document's only operation.
    pub fn operation_name(&self) -> Option<String> {
        self.analysis
            .operation_name
            .clone()
            .or_else(|| document::only_operation_name(&self.analysis.doc))
    }
}

/// Parsed and analysed documents by text and operation name. Clients send the same few
/// documents over and over; parsing one costs more than executing a point lookup.
#[derive(Debug)]
pub struct DocumentCache {
    entries: Mutex<LruCache<u64, Arc<Analysis>>>,
}

/// Documents longer than this are parsed every time instead of cached.
const MAX_CACHED_DOCUMENT: usize = 16 * 1024;

impl DocumentCache {
    /// A cache holding up to `capacity` documents (0 turns caching off).
    pub fn new(capacity: usize) -> Self {
        DocumentCache {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    fn key(query: &str, operation_name: Option<&str>) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        query.hash(&mut hasher);
        operation_name.hash(&mut hasher);
        hasher.finish()
    }

    fn analyse(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<Analysis>, ServerError> {
        let key = Self::key(query, operation_name);
        if let Ok(mut entries) = self.entries.lock()
            && let Some(hit) = entries.get(&key)
            && hit.query == query
            && hit.operation_name.as_deref() == operation_name
        {
            return Ok(Arc::clone(hit));
        }
        let analysis = Arc::new(Analysis::new(query, operation_name)?);
        if query.len() <= MAX_CACHED_DOCUMENT
            && let Ok(mut entries) = self.entries.lock()
        {
            entries.put(key, Arc::clone(&analysis));
        }
        Ok(analysis)
    }
}

/// Per-request switches for [`prepare`].
#[derive(Debug, Clone, Copy)]
pub struct PrepareOptions<'a> {
    /// The request came as GET: only queries may run.
    pub is_get: bool,
    /// Introspection is off.
    pub introspection_disabled: bool,
    /// The configured limits.
    pub limits: &'a Limits,
}

/// An error with a code (and optionally a field) in its extensions.
pub fn coded_error(
    code: ErrorCode,
    message: impl Into<String>,
    field: Option<&str>,
) -> ServerError {
    let mut err = ServerError::new(message, None);
    set_code(&mut err, code, field);
    err
}

fn set_code(err: &mut ServerError, code: ErrorCode, field: Option<&str>) {
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", code.as_str());
    if let Some(field) = field {
        ext.set("field", field);
    }
}

fn has_code(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
}

/// The code a finished error carries, if any.
pub fn error_code(err: &ServerError) -> Option<ErrorCode> {
    match err.extensions.as_ref()?.get("code")? {
        Value::String(code) => ErrorCode::from_code(code),
        _ => None,
    }
}

/// Parses the document (or takes it from the cache) and refuses, before execution, what must
/// not run: a mutation over GET, more fields than allowed, introspection when it is off, a
/// missing required variable.
pub fn prepare(
    mut request: Request,
    options: PrepareOptions<'_>,
    cache: &DocumentCache,
) -> Result<(Request, DocumentFacts), Vec<ServerError>> {
    if request.query.is_empty() {
        return Err(vec![coded_error(
            ErrorCode::BadRequest,
            "the request has no query",
            None,
        )]);
    }
    let analysis = cache
        .analyse(&request.query, request.operation_name.as_deref())
        .map_err(|e| vec![e])?;
    if options.is_get
        && analysis
            .operation_type
            .is_some_and(|t| t != OperationType::Query)
    {
        return Err(vec![coded_error(
            ErrorCode::MethodNotAllowed,
            "only queries may be sent with GET; send mutations with POST",
            None,
        )]);
    }
    if analysis.field_count > options.limits.max_fields {
        return Err(vec![coded_error(
            ErrorCode::QueryTooComplex,
            format!(
                "the operation selects {} fields (fragments expanded); the limit is {}",
                analysis.field_count, options.limits.max_fields
            ),
            None,
        )]);
    }
    for (name, ty, path) in &analysis.required_variables {
        let provided = request
            .variables
            .get(name.as_str())
            .is_some_and(|v| !matches!(v, Value::Null));
        if !provided {
            return Err(vec![coded_error(
                ErrorCode::BadUserInput,
                format!("variable ${name} of type {ty} must be given a non-null value"),
                path.as_deref(),
            )]);
        }
    }
    if options.introspection_disabled && analysis.introspection {
        return Err(vec![coded_error(
            ErrorCode::GraphqlValidationFailed,
            "introspection is disabled on this server",
            None,
        )]);
    }
    request.set_parsed_query(analysis.doc.clone());
    Ok((request, DocumentFacts { analysis }))
}

/// `Invalid value for argument "input.vintageYear", expected type "Int"` → `input.vintageYear`.
fn argument_path(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    rest.split_once('"').map(|(path, _)| path)
}

/// A friendlier hint for our scalars' format, appended to coercion errors.
fn scalar_hint(message: &str) -> Option<&'static str> {
    let ty = message
        .rsplit_once("expected type \"")?
        .1
        .strip_suffix('"')?;
    Some(match ty {
        "Decimal" => {
            "a Decimal is a string such as \"1200.50\": at most 2 decimals and 18 integer digits, no float"
        }
        "UUID" => "a UUID is hyphenated hex, e.g. \"0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d\"",
        "Date" => "a Date looks like \"2024-09-22\"",
        "DateTime" => "a DateTime looks like \"2024-01-15T10:30:00.123456Z\"",
        _ => return None,
    })
}

/// Codes an error async-graphql raised before execution.
fn classify_request_error(err: &mut ServerError, facts: &DocumentFacts) {
    if let Some(path) = argument_path(&err.message).map(str::to_owned) {
        let from_variable = err
            .locations
            .iter()
            .any(|p| facts.analysis.variable_arguments.contains(p));
        let shape_error = err.message.contains("unknown field")
            || err.message.contains("is required but not provided");
        if shape_error && !from_variable {
            // The document itself names an input field that does not exist (or leaves a
            // required one out): a document error, not a bad value.
            set_code(err, ErrorCode::GraphqlValidationFailed, None);
        } else {
            if let Some(hint) = scalar_hint(&err.message) {
                err.message = format!("{} ({hint})", err.message);
            }
            set_code(err, ErrorCode::BadUserInput, Some(&path));
        }
    } else if err.message == "Query is nested too deep." || err.message == "Query is too complex." {
        set_code(err, ErrorCode::QueryTooComplex, None);
    } else if err.message.starts_with("Unknown operation named")
        || err.message.starts_with("Operation name required")
    {
        set_code(err, ErrorCode::BadRequest, None);
    } else {
        set_code(err, ErrorCode::GraphqlValidationFailed, None);
    }
}

/// Codes an error raised while executing.
fn classify_field_error(err: &mut ServerError) {
    let source = err.source.clone();
    let app = source.as_deref().and_then(|s| {
        s.downcast_ref::<AppError>().or_else(|| {
            s.downcast_ref::<std::sync::Arc<AppError>>()
                .map(|a| a.as_ref())
        })
    });
    if let Some(app) = app {
        let code = app.code();
        if app.is_internal() {
            log_internal(err, Some(app));
        }
        err.message = app.public_message();
        set_code(err, code, app.field());
        if let AppError::Forbidden { scope, .. } = app
            && let Some(ext) = err.extensions.as_mut()
        {
            ext.set("scope", scope.as_str());
        }
    } else if err.message.starts_with("Failed to parse")
        || err.message.starts_with("Invalid value")
        // A variable of an input-object type given a scalar or list: full validation lets
        // it through and the input's parser refuses it.
        || err.message.starts_with("Expected input type")
    {
        set_code(err, ErrorCode::BadUserInput, None);
    } else {
        log_internal(err, None);
        err.message = INTERNAL_MESSAGE.to_owned();
        set_code(err, ErrorCode::InternalServerError, None);
    }
}

fn log_internal(err: &ServerError, app: Option<&AppError>) {
    let cause = app.map(|a| {
        let mut text = a.to_string();
        let mut source = std::error::Error::source(a);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    });
    tracing::error!(
        message = %err.message,
        cause = cause.as_deref().unwrap_or(""),
        path = ?err.path,
        "internal error while resolving a request"
    );
}

/// Whether execution started: async-graphql answers a refused request with no data and
/// errors without a path; once execution starts, data is an object or a field error has a path.
pub fn executed(response: &Response) -> bool {
    !(response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty()))
}

/// The object types' fields, for null propagation (built once per schema).
pub fn type_registry() -> Registry {
    use async_graphql::OutputType;
    let mut registry = Registry {
        query_type: "Query".to_owned(),
        mutation_type: Some("Mutation".to_owned()),
        ..Registry::default()
    };
    <QueryRoot as OutputType>::create_type_info(&mut registry);
    <MutationRoot as OutputType>::create_type_info(&mut registry);
    registry
}

/// Gives every error its contract code and applies null propagation. Returns whether
/// execution started.
pub fn finish(response: &mut Response, facts: &DocumentFacts, registry: &Registry) -> bool {
    let executed = executed(response);
    for err in &mut response.errors {
        if has_code(err) {
            continue;
        }
        if executed {
            classify_field_error(err);
        } else {
            classify_request_error(err, facts);
        }
    }
    if executed && response.errors.iter().any(|e| !e.path.is_empty()) {
        propagate_nulls(response, facts, registry);
    }
    executed
}

/// Rare path (only when a field failed): finds each failing field's type and nulls the nearest
/// nullable ancestor, as the spec requires (async-graphql 7 instead drops the failing field
/// from its parent).
fn propagate_nulls(response: &mut Response, facts: &DocumentFacts, registry: &Registry) {
    let analysis = &facts.analysis;
    let Some(op) = document::selected_operation(&analysis.doc, analysis.operation_name.as_deref())
    else {
        return;
    };
    let paths: Vec<&[PathSegment]> = response.errors.iter().map(|e| e.path.as_slice()).collect();
    document::propagate_errors_to_nulls(registry, &analysis.doc, op, &mut response.data, &paths);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_paths_are_read_from_coercion_messages() {
        assert_eq!(
            argument_path(r#"Invalid value for argument "input.vintageYear", expected type "Int""#),
            Some("input.vintageYear")
        );
        assert_eq!(argument_path("Unknown field"), None);
    }

    #[test]
    fn uncoded_errors_get_a_code_by_stage() {
        let facts = DocumentFacts {
            analysis: Arc::new(
                Analysis::new("{ __typename }", None).unwrap_or_else(|e| panic!("{e:?}")),
            ),
        };
        let mut before = ServerError::new("Unknown operation named \"x\"", None);
        classify_request_error(&mut before, &facts);
        assert_eq!(error_code(&before), Some(ErrorCode::BadRequest));
        let mut deep = ServerError::new("Query is nested too deep.", None);
        classify_request_error(&mut deep, &facts);
        assert_eq!(error_code(&deep), Some(ErrorCode::QueryTooComplex));

        let mut during = ServerError::new("something odd", None);
        classify_field_error(&mut during);
        assert_eq!(error_code(&during), Some(ErrorCode::InternalServerError));
        assert_eq!(during.message, INTERNAL_MESSAGE);
    }

    #[test]
    fn app_errors_keep_their_code_and_field() {
        let mut err = async_graphql::Error::from(AppError::bad_input("input.name", "blank"))
            .into_server_error(Pos::default());
        classify_field_error(&mut err);
        assert_eq!(error_code(&err), Some(ErrorCode::BadUserInput));
        let field = err
            .extensions
            .as_ref()
            .and_then(|e| e.get("field").cloned());
        assert_eq!(field, Some(Value::from("input.name")));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let mut err = async_graphql::Error::from(AppError::Internal("secret SQL".into()))
            .into_server_error(Pos::default());
        classify_field_error(&mut err);
        assert_eq!(error_code(&err), Some(ErrorCode::InternalServerError));
        assert!(!err.message.contains("secret"));
    }

    #[test]
    fn documents_are_parsed_once_per_text_and_operation() {
        let cache = DocumentCache::new(8);
        let a = cache
            .analyse("{ __typename }", None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let b = cache
            .analyse("{ __typename }", None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache
            .analyse("{ __typename }", Some("x"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(cache.analyse("{", None).is_err());
    }

    #[test]
    fn the_type_registry_knows_nullability() {
        let r = type_registry();
        let ty = |t: &str, f: &str| {
            r.types
                .get(t)
                .and_then(|m| m.field_by_name(f))
                .map(|f| f.ty.clone())
        };
        assert_eq!(ty("Query", "fund").as_deref(), Some("Fund"));
        assert_eq!(
            ty("Fund", "investments").as_deref(),
            Some("InvestmentConnection!")
        );
        assert_eq!(
            ty("InvestmentConnection", "nodes").as_deref(),
            Some("[Investment!]!")
        );
    }
}
