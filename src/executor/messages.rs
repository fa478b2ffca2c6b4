//! Every async-graphql message the server depends on, in one table.
//!
//! async-graphql reports validation and coercion failures as plain messages, without codes.
//! The server reads a few of them to give the contract's code (and the input field) to such
//! errors. They are all here, each with a test that provokes it from a real schema, so an
//! upgrade that rewords one fails in this one place instead of silently changing a code.

use crate::error::ErrorCode;

/// How a message is recognised.
#[derive(Debug, Clone, Copy)]
pub enum Pattern {
    /// The whole message.
    Exact(&'static str),
    /// Its beginning.
    Prefix(&'static str),
}

impl Pattern {
    fn matches(self, message: &str) -> bool {
        match self {
            Pattern::Exact(text) => message == text,
            Pattern::Prefix(text) => message.starts_with(text),
        }
    }
}

/// When a message is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// While the request is prepared and validated (nothing ran).
    Request,
    /// While fields are resolved.
    Execution,
}

/// One message of async-graphql's and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    /// When it is raised.
    pub stage: Stage,
    /// How to recognise it.
    pub pattern: Pattern,
    /// The code it gets.
    pub code: ErrorCode,
}

/// The coercion failure of an argument: `Invalid value for argument "input.vintageYear",
/// expected type "Int"`; the argument path is read from it.
pub const INVALID_ARGUMENT: &str = "Invalid value for argument \"";

/// Parts of [`INVALID_ARGUMENT`] messages that mean the document itself is wrong (an input
/// field that does not exist, a required one left out) rather than a value.
pub const SHAPE_ERRORS: [&str; 2] = ["unknown field", "is required but not provided"];

/// The expected type at the end of an [`INVALID_ARGUMENT`] message.
pub const EXPECTED_TYPE: &str = "expected type \"";

/// The table.
pub const MESSAGES: &[Message] = &[
    Message {
        stage: Stage::Request,
        pattern: Pattern::Exact("Query is nested too deep."),
        code: ErrorCode::QueryTooComplex,
    },
    Message {
        stage: Stage::Request,
        pattern: Pattern::Exact("Query is too complex."),
        code: ErrorCode::QueryTooComplex,
    },
    Message {
        stage: Stage::Request,
        pattern: Pattern::Prefix("The recursion depth of the query cannot be greater than"),
        code: ErrorCode::QueryTooComplex,
    },
    Message {
        stage: Stage::Request,
        pattern: Pattern::Prefix("The number of directives on the field"),
        code: ErrorCode::QueryTooComplex,
    },
    Message {
        stage: Stage::Request,
        pattern: Pattern::Prefix(INVALID_ARGUMENT),
        code: ErrorCode::BadUserInput,
    },
    Message {
        stage: Stage::Request,
        pattern: Pattern::Prefix("Unknown operation named"),
        code: ErrorCode::BadRequest,
    },
    Message {
        stage: Stage::Request,
        pattern: Pattern::Exact("Operation name required in request."),
        code: ErrorCode::BadRequest,
    },
    Message {
        stage: Stage::Execution,
        pattern: Pattern::Prefix("Failed to parse"),
        code: ErrorCode::BadUserInput,
    },
    Message {
        stage: Stage::Execution,
        pattern: Pattern::Prefix("Invalid value"),
        code: ErrorCode::BadUserInput,
    },
    // A variable of an input-object type given a scalar or a list: validation lets it through
    // and the input's parser refuses it.
    Message {
        stage: Stage::Execution,
        pattern: Pattern::Prefix("Expected input type"),
        code: ErrorCode::BadUserInput,
    },
];

/// The code of an async-graphql message raised at `stage`: the table's, else
/// `GRAPHQL_VALIDATION_FAILED` before execution and `INTERNAL_SERVER_ERROR` during it.
pub fn code_of(stage: Stage, message: &str) -> ErrorCode {
    MESSAGES
        .iter()
        .find(|m| m.stage == stage && m.pattern.matches(message))
        .map_or(
            match stage {
                Stage::Request => ErrorCode::GraphqlValidationFailed,
                Stage::Execution => ErrorCode::InternalServerError,
            },
            |m| m.code,
        )
}

/// The argument path of an [`INVALID_ARGUMENT`] message.
pub fn argument_path(message: &str) -> Option<&str> {
    let rest = message.strip_prefix(INVALID_ARGUMENT)?;
    rest.split_once('"').map(|(path, _)| path)
}

/// Whether an [`INVALID_ARGUMENT`] message is about the document's shape.
pub fn is_shape_error(message: &str) -> bool {
    SHAPE_ERRORS.iter().any(|part| message.contains(part))
}

/// The expected type named by an [`INVALID_ARGUMENT`] message.
pub fn expected_type(message: &str) -> Option<&str> {
    message.rsplit_once(EXPECTED_TYPE)?.1.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptySubscription, InputObject, Object, Schema};

    use super::*;

    #[derive(InputObject)]
    struct Input {
        year: i32,
    }

    struct Query;

    #[Object]
    impl Query {
        async fn leaf(&self) -> i32 {
            1
        }
        async fn nested(&self) -> Query {
            Query
        }
        async fn take(&self, input: Input, n: i32) -> i32 {
            input.year + n
        }
    }

    struct Mutation;

    #[Object]
    impl Mutation {
        async fn noop(&self) -> i32 {
            0
        }
    }

    fn schema() -> Schema<Query, Mutation, EmptySubscription> {
        Schema::build(Query, Mutation, EmptySubscription)
            .limit_depth(3)
            .limit_complexity(5)
            .limit_recursive_depth(8)
            .limit_directives(2)
            .finish()
    }

    async fn first_message(request: async_graphql::Request) -> String {
        let response = schema().execute(request).await;
        response
            .errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default()
    }

    async fn message(query: &str) -> String {
        first_message(async_graphql::Request::new(query)).await
    }

    /// Each message of the table, provoked from a real schema, is recognised with its code.
    #[tokio::test]
    async fn every_message_the_server_depends_on_is_still_worded_as_expected() {
        let cases: Vec<(String, Stage, ErrorCode)> = vec![
            (
                message("{ nested { nested { nested { leaf } } } }").await,
                Stage::Request,
                ErrorCode::QueryTooComplex,
            ),
            (
                message("{ a: leaf b: leaf c: leaf d: leaf e: leaf f: leaf }").await,
                Stage::Request,
                ErrorCode::QueryTooComplex,
            ),
            (
                message(&format!("{}{}", "{ nested ".repeat(20), "}".repeat(20))).await,
                Stage::Request,
                ErrorCode::QueryTooComplex,
            ),
            (
                message("{ leaf @skip(if: false) @skip(if: false) @skip(if: false) }").await,
                Stage::Request,
                ErrorCode::QueryTooComplex,
            ),
            (
                message("{ take(input: { year: \"x\" }, n: 1) }").await,
                Stage::Request,
                ErrorCode::BadUserInput,
            ),
            (
                first_message(async_graphql::Request::new("query A { leaf }").operation_name("B"))
                    .await,
                Stage::Request,
                ErrorCode::BadRequest,
            ),
            (
                message("query A { leaf } query B { leaf }").await,
                Stage::Request,
                ErrorCode::BadRequest,
            ),
        ];
        for (message, stage, code) in cases {
            assert_eq!(code_of(stage, &message), code, "{message:?}");
        }
        let invalid = message("{ take(input: { year: \"x\" }, n: 1) }").await;
        assert_eq!(argument_path(&invalid), Some("input.year"), "{invalid}");
        assert_eq!(expected_type(&invalid), Some("Int"), "{invalid}");
        let shape = message("{ take(input: { year: 1, nope: 2 }, n: 1) }").await;
        assert!(is_shape_error(&shape), "{shape}");
        let missing = message("{ take(input: {}, n: 1) }").await;
        assert!(is_shape_error(&missing), "{missing}");
    }

    #[tokio::test]
    async fn execution_messages_are_recognised() {
        // A variable of an input type given a scalar is refused while the field runs.
        let request = async_graphql::Request::new("query($i: Input!) { take(input: $i, n: 1) }")
            .variables(async_graphql::Variables::from_json(
                serde_json::json!({ "i": 3 }),
            ));
        let fast = Schema::build(Query, Mutation, EmptySubscription)
            .validation_mode(async_graphql::ValidationMode::Fast)
            .finish();
        let response = fast.execute(request).await;
        let msg = response
            .errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        assert_eq!(
            code_of(Stage::Execution, &msg),
            ErrorCode::BadUserInput,
            "{msg}"
        );
        assert_eq!(
            code_of(Stage::Execution, "anything else"),
            ErrorCode::InternalServerError
        );
        assert_eq!(
            code_of(Stage::Request, "anything else"),
            ErrorCode::GraphqlValidationFailed
        );
    }
}
