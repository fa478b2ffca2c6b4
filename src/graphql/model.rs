//! The one declaration of every object field.
//!
//! Each object type lists its fields once, with [`object!`]: the GraphQL name, the description
//! (the doc comment), the type, who may read it ([`Access`]), which column it reads, and how it
//! is answered. From that single list the macro generates both
//!
//! - the async-graphql resolver of every field (an `#[Object]` impl), which checks the access
//!   and answers, and
//! - the type's [`Declared::FIELDS`] table, which the rest of the server reads: the fast path
//!   (`fast.rs`), the columns a page fetches for a related row ([`columns`]), and the access
//!   tests.
//!
//! So a new field is one entry, and it cannot be answered one way by the resolvers and another
//! way by the fast path: both evaluate the same expression.
//!
//! The kinds of field:
//!
//! - `column`: a value of the row, with the entity column it reads (`|f| expr` gives the value);
//! - `related`: another object of the row (an investment's fund), carried along when it came
//!   with a page (`|r| embedded`) and otherwise loaded in a batch by a key (`|r| key`);
//! - `investments`: the investments connection of a parent (fund or investor);
//! - `loaded`: anything else, answered only by its resolver body (aggregates through loaders).

use std::borrow::Cow;

use async_graphql::{
    Context, ContextSelectionSet, Name, Positioned, Value,
    dataloader::Loader,
    parser::types::{Field as QueryField, Selection, SelectionSet},
    resolver_utils::EnumType,
};

use super::{
    context::loader,
    fast::{ConnectionPlanFn, ConnectionWriter, Plan, PlanFn},
    loader::{DbLoader, LoadError},
};
use crate::{
    auth::Scope,
    db::rows::ColumnSet,
    error::AppError,
    service::investment::{Include, Parent, Relation},
};

/// What reading a field needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing beyond reaching the parent object.
    Open,
    /// The scope (the field crosses into another entity, personal data or a write).
    Needs(Scope),
}

/// How a field is answered, for the code that reads the declarations.
pub enum Answer<T: 'static> {
    /// A value of the object, written as JSON by this function.
    Leaf(fn(&T, &mut Vec<u8>)),
    /// A related object (see [`Related`]).
    Related(Related<T>),
    /// The parent's investments connection.
    Investments(Investments<T>),
    /// Only the field's resolver answers it.
    Loaded,
}

/// A related object of a row: which relation of a page row it is, how to plan and write its
/// selection, and which of its columns a selection reads.
pub struct Related<T: 'static> {
    /// The related row a page statement joins for it.
    pub relation: Relation,
    /// Plans the related object's selection (the target type's [`super::fast::plan`]).
    pub plan: PlanFn,
    /// The target's columns a selection reads (the target type's [`columns`]).
    pub columns: fn(&ContextSelectionSet<'_>, &SelectionSet) -> ColumnSet,
    /// Writes the related object when it is in memory (false: it is not, the resolver loads it).
    pub write: fn(&T, &Plan, &mut Vec<u8>) -> bool,
}

/// A parent's investments connection.
pub struct Investments<T: 'static> {
    /// Whose investments.
    pub parent: Parent,
    /// The parent's id.
    pub parent_id: fn(&T) -> uuid::Uuid,
    /// Plans a selection of the connection.
    pub plan: ConnectionPlanFn,
    /// The related rows a page must fetch for a selection of the connection.
    pub include: fn(&ContextSelectionSet<'_>, &SelectionSet) -> Include,
    /// Writes a page of the connection's node type.
    pub write: ConnectionWriter,
}

/// One field of an object type.
pub struct Field<T: 'static> {
    /// The GraphQL name.
    pub name: &'static str,
    /// Who may read it.
    pub access: Access,
    /// The entity column it reads (its discriminant in the entity's `Column` enum), if any.
    pub column: Option<u32>,
    /// How it is answered.
    pub answer: Answer<T>,
}

/// An object type declared with [`object!`].
pub trait Declared: Sized + Send + Sync + 'static {
    /// The GraphQL type name.
    const NAME: &'static str;
    /// Every field, in declaration order.
    const FIELDS: &'static [Field<Self>];

    /// The declaration of field `name`.
    fn field(name: &str) -> Option<&'static Field<Self>> {
        Self::FIELDS.iter().find(|f| f.name == name)
    }
}

/// Whether the caller of this request holds `scope` (no principal: nothing).
pub fn granted<T>(ctx: &async_graphql::ContextBase<'_, T>, scope: Scope) -> bool {
    ctx.data_opt::<crate::auth::Principal>()
        .is_some_and(|p| p.has(scope))
}

/// Whether the caller may read a field with `access`.
pub fn allows<T>(ctx: &async_graphql::ContextBase<'_, T>, access: Access) -> bool {
    match access {
        Access::Open => true,
        Access::Needs(scope) => granted(ctx, scope),
    }
}

/// `FORBIDDEN` (naming the scope) unless the caller may read a field with `access`.
pub fn authorize(ctx: &Context<'_>, access: Access) -> Result<(), AppError> {
    match access {
        Access::Needs(scope) if !granted(ctx, scope) => Err(AppError::Forbidden {
            scope,
            argument: None,
        }),
        _ => Ok(()),
    }
}

/// A root field's access rule, as an async-graphql guard (`#[graphql(guard = "...")]`): the
/// rule sits on the field it guards, and the check runs before the resolver.
impl async_graphql::Guard for Access {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        authorize(ctx, *self).map_err(Into::into)
    }
}

/// The fields of `set` on an object of type `type_name`, fragments expanded (only those whose
/// type condition is the type: the schema has no interfaces or unions).
pub fn selected_fields<'s>(
    ctx: &'s ContextSelectionSet<'_>,
    set: &'s SelectionSet,
    type_name: &str,
    out: &mut Vec<&'s Positioned<QueryField>>,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => out.push(field),
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = ctx.query_env.fragments.get(&spread.node.fragment_name.node)
                    && fragment.node.type_condition.node.on.node.as_str() == type_name
                {
                    selected_fields(ctx, &fragment.node.selection_set.node, type_name, out);
                }
            }
            Selection::InlineFragment(inline) => {
                let applies = inline
                    .node
                    .type_condition
                    .as_ref()
                    .is_none_or(|tc| tc.node.on.node.as_str() == type_name);
                if applies {
                    selected_fields(ctx, &inline.node.selection_set.node, type_name, out);
                }
            }
        }
    }
}

/// Whether `set` (on an object of type `type_name`) selects a field named `name`.
pub fn selects(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    type_name: &str,
    name: &str,
) -> bool {
    let mut fields = Vec::new();
    selected_fields(ctx, set, type_name, &mut fields);
    fields.iter().any(|f| f.node.name.node == name)
}

/// The columns of `T`'s row that the fields selected in `set` read. A row fetched with only
/// these may be answered for exactly this selection.
pub fn columns<T: Declared>(ctx: &ContextSelectionSet<'_>, set: &SelectionSet) -> ColumnSet {
    let mut fields = Vec::new();
    selected_fields(ctx, set, T::NAME, &mut fields);
    fields
        .iter()
        .filter_map(|f| T::field(f.node.name.node.as_str())?.column)
        .fold(ColumnSet::NONE, ColumnSet::with)
}

/// The related rows (and their columns) that a page of `N` must fetch for the selection `set`
/// of its connection (under `nodes` and `edges { node }`): those selected and readable by the
/// caller. The rest is resolved without them.
pub fn page_include<N: Declared>(ctx: &ContextSelectionSet<'_>, set: &SelectionSet) -> Include {
    let connection = format!("{}Connection", N::NAME);
    let edge = format!("{}Edge", N::NAME);
    let mut fields = Vec::new();
    selected_fields(ctx, set, &connection, &mut fields);
    let mut nodes = Vec::new();
    for field in fields {
        match field.node.name.node.as_str() {
            "nodes" => selected_fields(ctx, &field.node.selection_set.node, N::NAME, &mut nodes),
            "edges" => {
                let mut edge_fields = Vec::new();
                selected_fields(ctx, &field.node.selection_set.node, &edge, &mut edge_fields);
                for node in edge_fields.iter().filter(|f| f.node.name.node == "node") {
                    selected_fields(ctx, &node.node.selection_set.node, N::NAME, &mut nodes);
                }
            }
            _ => {}
        }
    }
    nodes.iter().fold(Include::default(), |include, field| {
        match N::field(field.node.name.node.as_str()) {
            Some(Field {
                access,
                answer: Answer::Related(related),
                ..
            }) if allows(ctx, *access) => include.with(
                related.relation,
                (related.columns)(ctx, &field.node.selection_set.node),
            ),
            _ => include,
        }
    })
}

/// The columns of `T` that the selection of the current field reads (a root lookup's row).
pub fn selected_columns<T: Declared>(ctx: &Context<'_>) -> ColumnSet {
    let set = &ctx.item.node.selection_set.node;
    columns::<T>(&ctx.with_selection_set(&ctx.item.node.selection_set), set)
}

/// A related object: the one that came with the row, or the one loaded in a batch by `key`.
pub async fn related<'a, T, K>(
    ctx: &Context<'_>,
    embedded: Option<&'a T>,
    key: K,
) -> async_graphql::Result<Cow<'a, T>>
where
    T: Clone + Send + Sync + 'static,
    K: Send + Sync + std::hash::Hash + Eq + Clone + std::fmt::Debug + 'static,
    DbLoader: Loader<K, Value = T, Error = LoadError>,
{
    if let Some(found) = embedded {
        return Ok(Cow::Borrowed(found));
    }
    let found = loader(ctx)?.load_one(key.clone()).await?;
    // The foreign key guarantees the row: its absence is a bug, not the client's error.
    found
        .map(Cow::Owned)
        .ok_or_else(|| AppError::Internal(format!("related row {key:?} is missing")).into())
}

/// Writes a field value as JSON, byte for byte as async-graphql's resolver would answer it
/// (a test compares the two for every field of the schema).
pub trait Leaf {
    /// Appends the JSON of the value.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// Writes `text` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

impl Leaf for &str {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_str(out, self);
    }
}

impl Leaf for String {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_str(out, self);
    }
}

impl Leaf for i32 {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl Leaf for bool {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

impl<T: Leaf> Leaf for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl<T: Leaf> Leaf for Vec<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_json(out);
        }
        out.push(b']');
    }
}

/// Writes an enum value as its GraphQL name.
pub fn write_enum<E: EnumType>(value: E, out: &mut Vec<u8>) {
    let name = E::items()
        .iter()
        .find(|item| item.value == value)
        .map_or("", |item| item.name);
    write_str(out, name);
}

/// The response value of an enum, as async-graphql writes it.
pub fn enum_value<E: EnumType>(value: E) -> Value {
    Value::Enum(Name::new(
        E::items()
            .iter()
            .find(|item| item.value == value)
            .map_or("", |item| item.name),
    ))
}

/// Declares an object type and its fields once; see the module documentation.
///
/// ```text
/// object! {
///     /// Description of the type.
///     Fund = fund::Model, "Fund";
///     /// Description of the field.
///     column name("name"): &str, Access::Open, fund::Column::Name, |f| f.name.as_str();
/// }
/// ```
#[macro_export]
macro_rules! object {
    (
        $(#[$tmeta:meta])*
        $ty:ty, $tname:literal;
        $($fields:tt)*
    ) => {
        $crate::object!(@munch [$ty; $tname; $(#[$tmeta])*] [] [] $($fields)*);
    };

    // A value of the row.
    (@munch $head:tt [$($methods:tt)*] [$($entries:tt)*]
        $(#[$m:meta])*
        column $name:ident ($gql:literal): $fty:ty, $access:expr, $col:expr, |$r:ident| $read:expr;
        $($rest:tt)*
    ) => {
        $crate::object!(@munch $head
            [$($methods)*
                $(#[$m])*
                #[graphql(name = $gql)]
                async fn $name(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<$fty> {
                    $crate::graphql::model::authorize(ctx, $access)?;
                    let $r = self;
                    Ok($read)
                }
            ]
            [$($entries)*
                $crate::graphql::model::Field {
                    name: $gql,
                    access: $access,
                    column: Some(($col) as u32),
                    answer: $crate::graphql::model::Answer::Leaf({
                        fn write($r: &$crate::object!(@self $head), out: &mut Vec<u8>) {
                            <$fty as $crate::graphql::model::Leaf>::write_json(&$read, out)
                        }
                        write
                    }),
                },
            ]
            $($rest)*);
    };

    // Another object of the row: embedded when it came with a page, else loaded by key.
    (@munch $head:tt [$($methods:tt)*] [$($entries:tt)*]
        $(#[$m:meta])*
        related $name:ident ($gql:literal): $target:ty, $access:expr, $relation:expr,
            |$r:ident| $embedded:expr, |$k:ident| $key:expr;
        $($rest:tt)*
    ) => {
        $crate::object!(@munch $head
            [$($methods)*
                $(#[$m])*
                #[graphql(name = $gql)]
                async fn $name(&self, ctx: &async_graphql::Context<'_>)
                    -> async_graphql::Result<std::borrow::Cow<'_, $target>> {
                    $crate::graphql::model::authorize(ctx, $access)?;
                    let $r = self;
                    let $k = self;
                    $crate::graphql::model::related(ctx, $embedded, $key).await
                }
            ]
            [$($entries)*
                $crate::graphql::model::Field {
                    name: $gql,
                    access: $access,
                    column: None,
                    answer: $crate::graphql::model::Answer::Related($crate::graphql::model::Related {
                        relation: $relation,
                        plan: $crate::graphql::fast::plan::<$target>,
                        columns: $crate::graphql::model::columns::<$target>,
                        write: {
                            fn write(
                                $r: &$crate::object!(@self $head),
                                plan: &$crate::graphql::fast::Plan,
                                out: &mut Vec<u8>,
                            ) -> bool {
                                match $embedded {
                                    Some(child) => $crate::graphql::fast::write_object(child, plan, out),
                                    None => false,
                                }
                            }
                            write
                        },
                    }),
                },
            ]
            $($rest)*);
    };

    // The parent's investments connection.
    (@munch $head:tt [$($methods:tt)*] [$($entries:tt)*]
        $(#[$m:meta])*
        investments $name:ident ($gql:literal): $node:ty, $access:expr, $parent:expr, |$r:ident| $id:expr;
        $($rest:tt)*
    ) => {
        $crate::object!(@munch $head
            [$($methods)*
                $(#[$m])*
                #[graphql(name = $gql)]
                async fn $name(
                    &self,
                    ctx: &async_graphql::Context<'_>,
                    #[graphql(desc = "Page size from the start (0..=100; default 20).")] first: Option<i32>,
                    #[graphql(desc = "Start after this cursor.")] after: Option<String>,
                    #[graphql(desc = "Page size from the end (0..=100).")] last: Option<i32>,
                    #[graphql(desc = "End before this cursor.")] before: Option<String>,
                ) -> async_graphql::Result<$crate::graphql::connection::Connection<$node>> {
                    $crate::graphql::model::authorize(ctx, $access)?;
                    let $r = self;
                    $crate::graphql::connection::investments_of(
                        ctx,
                        $parent,
                        $id,
                        $crate::graphql::connection::PageArgs { first, after, last, before },
                    )
                    .await
                }
            ]
            [$($entries)*
                $crate::graphql::model::Field {
                    name: $gql,
                    access: $access,
                    column: None,
                    answer: $crate::graphql::model::Answer::Investments($crate::graphql::model::Investments {
                        parent: $parent,
                        parent_id: {
                            fn parent_id($r: &$crate::object!(@self $head)) -> uuid::Uuid { $id }
                            parent_id
                        },
                        plan: $crate::graphql::fast::connection_plan::<$node>,
                        include: $crate::graphql::model::page_include::<$node>,
                        write: $crate::graphql::fast::write_connection::<$node>,
                    }),
                },
            ]
            $($rest)*);
    };

    // Answered by its resolver only.
    (@munch $head:tt [$($methods:tt)*] [$($entries:tt)*]
        $(#[$m:meta])*
        loaded $name:ident ($gql:literal): $fty:ty, $access:expr, |$ctx:ident, $r:ident| $body:expr;
        $($rest:tt)*
    ) => {
        $crate::object!(@munch $head
            [$($methods)*
                $(#[$m])*
                #[graphql(name = $gql)]
                async fn $name(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<$fty> {
                    $crate::graphql::model::authorize(ctx, $access)?;
                    let $ctx = ctx;
                    let $r = self;
                    $body
                }
            ]
            [$($entries)*
                $crate::graphql::model::Field {
                    name: $gql,
                    access: $access,
                    column: None,
                    answer: $crate::graphql::model::Answer::Loaded,
                },
            ]
            $($rest)*);
    };

    (@self [$ty:ty; $tname:literal; $($tmeta:tt)*]) => { $ty };

    (@munch [$ty:ty; $tname:literal; $($tmeta:tt)*] [$($methods:tt)*] [$($entries:tt)*]) => {
        $($tmeta)*
        #[async_graphql::Object(name = $tname)]
        impl $ty {
            $($methods)*
        }

        impl $crate::graphql::model::Declared for $ty {
            const NAME: &'static str = $tname;
            const FIELDS: &'static [$crate::graphql::model::Field<Self>] = &[$($entries)*];
        }
    };
}
