//! The request pipeline's guard rails: every error leaves with a contract code, limits are
//! enforced before execution, and the HTTP layer learns whether execution started.
//!
//! async-graphql raises many errors itself (parse, validation, variable coercion) without
//! codes; this extension classifies each by the stage it came from, and maps our own
//! [`AppError`]s (carried as error sources) to their codes. Internal errors are logged with
//! their cause (inside the request's span, so with its request id) and answered generically.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use async_graphql::{
    Pos, Response, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
        NextValidation,
    },
    parser::types::{ExecutableDocument, OperationType},
};

use super::document;
use crate::{
    config::Limits,
    error::{AppError, ErrorCode, INTERNAL_MESSAGE},
};

/// Per-request facts shared between the HTTP layer and the pipeline.
#[derive(Debug, Default)]
pub struct ExecState {
    /// The request came as GET (mutations are refused).
    pub is_get: bool,
    /// The requested operation name.
    pub operation_name: Option<String>,
    /// Introspection is off for this request.
    pub introspection_disabled: bool,
    executed: AtomicBool,
    operation: Mutex<Option<(OperationType, Option<String>)>>,
}

impl ExecState {
    /// A state for one request.
    pub fn new(is_get: bool, operation_name: Option<String>, introspection_disabled: bool) -> Self {
        ExecState {
            is_get,
            operation_name,
            introspection_disabled,
            ..ExecState::default()
        }
    }

    /// Whether execution started (errors after that are field errors, HTTP 200).
    pub fn executed(&self) -> bool {
        self.executed.load(Ordering::Relaxed)
    }

    /// The type and name of the operation that ran or was refused, once known.
    pub fn operation(&self) -> Option<(OperationType, Option<String>)> {
        self.operation.lock().ok().and_then(|o| o.clone())
    }
}

/// Installs the guard rails with the configured limits.
#[derive(Debug, Clone)]
pub struct ApiExtension {
    limits: Limits,
}

impl ApiExtension {
    /// The extension factory for a schema.
    pub fn new(limits: &Limits) -> Self {
        ApiExtension {
            limits: limits.clone(),
        }
    }
}

impl ExtensionFactory for ApiExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ApiExtensionImpl {
            limits: self.limits.clone(),
            executed: AtomicBool::new(false),
            variable_arguments: Mutex::new(HashSet::new()),
            query: Mutex::new(None),
        })
    }
}

struct ApiExtensionImpl {
    limits: Limits,
    executed: AtomicBool,
    /// Argument positions whose values come from variables (set while parsing).
    variable_arguments: Mutex<HashSet<Pos>>,
    /// The document text and the operation that ran, to place nulls after field errors.
    query: Mutex<Option<(String, Option<String>)>>,
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
        async_graphql::Value::String(code) => ErrorCode::from_code(code),
        _ => None,
    }
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

impl ApiExtensionImpl {
    /// Rare path (only when a field failed): re-parses the document to find each failing
    /// field's type and nulls the nearest nullable ancestor, as the spec requires.
    fn propagate_nulls(&self, ctx: &ExtensionContext<'_>, response: &mut Response) {
        let Some((query, op_name)) = self.query.lock().ok().and_then(|q| q.clone()) else {
            return;
        };
        let Ok(doc) = async_graphql::parser::parse_query(&query) else {
            return;
        };
        let Some(op) = document::selected_operation(&doc, op_name.as_deref()) else {
            return;
        };
        let paths: Vec<&[async_graphql::PathSegment]> =
            response.errors.iter().map(|e| e.path.as_slice()).collect();
        document::propagate_errors_to_nulls(
            &ctx.schema_env.registry,
            &doc,
            op,
            &mut response.data,
            &paths,
        );
    }

    fn classify_validation_error(&self, mut err: ServerError) -> ServerError {
        if has_code(&err) {
            return err;
        }
        if let Some(path) = argument_path(&err.message).map(str::to_owned) {
            let from_variable = self
                .variable_arguments
                .lock()
                .map(|set| err.locations.iter().any(|p| set.contains(p)))
                .unwrap_or(false);
            let shape_error = err.message.contains("unknown field")
                || err.message.contains("is required but not provided");
            if shape_error && !from_variable {
                // The document itself names an input field that does not exist (or leaves a
                // required one out): a document error, not a bad value.
                set_code(&mut err, ErrorCode::GraphqlValidationFailed, None);
            } else {
                if let Some(hint) = scalar_hint(&err.message) {
                    err.message = format!("{} ({hint})", err.message);
                }
                set_code(&mut err, ErrorCode::BadUserInput, Some(&path));
            }
            return err;
        }
        set_code(&mut err, ErrorCode::GraphqlValidationFailed, None);
        err
    }

    /// Checks that need the document before validation: operation type over GET, the field
    /// cap, introspection being off, and missing required variables.
    fn check_document(
        &self,
        ctx: &ExtensionContext<'_>,
        doc: &ExecutableDocument,
        variables: &Variables,
    ) -> ServerResult<()> {
        let state = ctx.data_opt::<Arc<ExecState>>();
        let op_name = state.and_then(|s| s.operation_name.as_deref());
        let Some(op) = document::selected_operation(doc, op_name) else {
            // Unknown or ambiguous operation name: async-graphql reports it after validation.
            return Ok(());
        };
        if let Some(state) = state
            && let Ok(mut slot) = state.operation.lock()
        {
            *slot = Some((op.ty, op_name.map(str::to_owned)));
        }
        if state.is_some_and(|s| s.is_get) && op.ty != OperationType::Query {
            return Err(coded_error(
                ErrorCode::MethodNotAllowed,
                "only queries may be sent with GET; send mutations with POST",
                None,
            ));
        }
        let fields = document::expanded_field_count(doc, op);
        if fields > self.limits.max_fields {
            return Err(coded_error(
                ErrorCode::QueryTooComplex,
                format!(
                    "the operation selects {fields} fields (fragments expanded); the limit is {}",
                    self.limits.max_fields
                ),
                None,
            ));
        }
        if state.is_some_and(|s| s.introspection_disabled) && document::selects_introspection(doc) {
            return Err(coded_error(
                ErrorCode::GraphqlValidationFailed,
                "introspection is disabled on this server",
                None,
            ));
        }
        for def in &op.variable_definitions {
            let def = &def.node;
            let provided = variables
                .get(&def.name.node)
                .is_some_and(|v| !matches!(v, async_graphql::Value::Null));
            if !def.var_type.node.nullable && def.default_value.is_none() && !provided {
                let path = document::variable_usage_path(doc, &def.name.node);
                return Err(coded_error(
                    ErrorCode::BadUserInput,
                    format!(
                        "variable ${} of type {} must be given a non-null value",
                        def.name.node, def.var_type.node
                    ),
                    path.as_deref(),
                ));
            }
        }
        Ok(())
    }
}

/// Gives an error its contract code. `executed` tells whether it arose during execution.
fn normalize(err: &mut ServerError, executed: bool) {
    if has_code(err) {
        return;
    }
    let source = err.source.clone();
    let app = source.as_deref().and_then(|s| {
        s.downcast_ref::<AppError>()
            .or_else(|| s.downcast_ref::<Arc<AppError>>().map(|a| a.as_ref()))
    });
    if let Some(app) = app {
        let code = app.code();
        if app.is_internal() {
            log_internal(err, Some(app));
        }
        err.message = app.public_message();
        set_code(err, code, app.field());
        return;
    }
    if err.message.starts_with("PersistedQueryNotFound") {
        set_code(err, ErrorCode::PersistedQueryNotFound, None);
    } else if !executed {
        // e.g. an unknown operation name: the request cannot be run as sent.
        set_code(err, ErrorCode::BadRequest, None);
    } else if err.message.starts_with("Failed to parse") || err.message.starts_with("Invalid value")
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

#[async_trait::async_trait]
impl Extension for ApiExtensionImpl {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let executed = self.executed.load(Ordering::Relaxed);
        for err in &mut response.errors {
            normalize(err, executed);
        }
        if executed && response.errors.iter().any(|e| !e.path.is_empty()) {
            self.propagate_nulls(ctx, &mut response);
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await.map_err(|mut err| {
            let code = if err.message.contains("recursion") {
                ErrorCode::QueryTooComplex
            } else {
                ErrorCode::GraphqlParseFailed
            };
            set_code(&mut err, code, None);
            err
        })?;
        if let Ok(mut set) = self.variable_arguments.lock() {
            *set = document::variable_argument_positions(&doc);
        }
        if let Ok(mut slot) = self.query.lock() {
            *slot = Some((query.to_owned(), None));
        }
        self.check_document(ctx, &doc, variables)?;
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errs| {
            errs.into_iter()
                .map(|e| self.classify_validation_error(e))
                .collect::<Vec<_>>()
        })?;
        if result.depth > self.limits.max_depth {
            return Err(vec![coded_error(
                ErrorCode::QueryTooComplex,
                format!(
                    "the query is nested {} levels deep; the limit is {}",
                    result.depth, self.limits.max_depth
                ),
                None,
            )]);
        }
        if result.complexity > self.limits.max_complexity {
            return Err(vec![coded_error(
                ErrorCode::QueryTooComplex,
                format!(
                    "the query's complexity is {} (connections cost page size × selection); the limit is {}",
                    result.complexity, self.limits.max_complexity
                ),
                None,
            )]);
        }
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.executed.store(true, Ordering::Relaxed);
        if let Ok(mut slot) = self.query.lock()
            && let Some((_, name)) = slot.as_mut()
        {
            *name = operation_name.map(str::to_owned);
        }
        if let Some(state) = ctx.data_opt::<Arc<ExecState>>() {
            state.executed.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }
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
        let mut before = ServerError::new("Unknown operation named \"x\"", None);
        normalize(&mut before, false);
        assert_eq!(error_code(&before), Some(ErrorCode::BadRequest));

        let mut during = ServerError::new("something odd", None);
        normalize(&mut during, true);
        assert_eq!(error_code(&during), Some(ErrorCode::InternalServerError));
        assert_eq!(during.message, INTERNAL_MESSAGE);
    }

    #[test]
    fn app_errors_keep_their_code_and_field() {
        let mut err = async_graphql::Error::from(AppError::bad_input("input.name", "blank"))
            .into_server_error(Pos::default());
        normalize(&mut err, true);
        assert_eq!(error_code(&err), Some(ErrorCode::BadUserInput));
        let field = err
            .extensions
            .as_ref()
            .and_then(|e| e.get("field").cloned());
        assert_eq!(field, Some(async_graphql::Value::from("input.name")));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let mut err = async_graphql::Error::from(AppError::Internal("secret SQL".into()))
            .into_server_error(Pos::default());
        normalize(&mut err, true);
        assert_eq!(error_code(&err), Some(ErrorCode::InternalServerError));
        assert!(!err.message.contains("secret"));
    }
}
