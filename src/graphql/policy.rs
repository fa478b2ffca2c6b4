//! Who may resolve which field. Every field of every object type is listed here, either as open
//! (reachable by whoever may read its parent) or as needing a scope; resolvers of guarded fields
//! call [`authorize`], which looks the field up in this one table. A test walks the schema and
//! fails when a field is missing from the table, and exercises every guarded field without and
//! with its scope, so a new field cannot ship unchecked.

use async_graphql::{Context, ContextBase};

use crate::{
    auth::{Principal, Scope},
    error::AppError,
};

/// What resolving a field needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing beyond reaching the parent object (its scalar data).
    Open,
    /// The scope (the field crosses into another entity, personal data or a write).
    Needs(Scope),
}

use Access::{Needs, Open};
use Scope::*;

/// Every field of every object type of the schema.
pub const FIELD_POLICY: &[(&str, &str, Access)] = &[
    ("Query", "funds", Needs(FundsRead)),
    ("Query", "fund", Needs(FundsRead)),
    ("Query", "investors", Needs(InvestorsRead)),
    ("Query", "investor", Needs(InvestorsRead)),
    ("Query", "investment", Needs(InvestmentsRead)),
    ("Query", "auditEvents", Needs(AuditRead)),
    ("Mutation", "createFund", Needs(FundsWrite)),
    ("Mutation", "updateFund", Needs(FundsWrite)),
    ("Mutation", "createInvestor", Needs(InvestorsWrite)),
    ("Mutation", "createInvestment", Needs(InvestmentsWrite)),
    ("Fund", "id", Open),
    ("Fund", "name", Open),
    ("Fund", "vintageYear", Open),
    ("Fund", "targetSizeUsd", Open),
    ("Fund", "status", Open),
    ("Fund", "createdAt", Open),
    ("Fund", "updatedAt", Open),
    ("Fund", "investments", Needs(InvestmentsRead)),
    ("Fund", "totalCommittedUsd", Needs(InvestmentsRead)),
    ("Fund", "investorCount", Needs(InvestmentsRead)),
    ("Investor", "id", Open),
    ("Investor", "name", Open),
    ("Investor", "investorType", Open),
    ("Investor", "email", Needs(PiiRead)),
    ("Investor", "createdAt", Open),
    ("Investor", "updatedAt", Open),
    ("Investor", "investments", Needs(InvestmentsRead)),
    ("Investor", "totalCommittedUsd", Needs(InvestmentsRead)),
    ("Investment", "id", Open),
    ("Investment", "fundId", Open),
    ("Investment", "investorId", Open),
    ("Investment", "amountUsd", Open),
    ("Investment", "investmentDate", Open),
    ("Investment", "createdAt", Open),
    ("Investment", "fund", Needs(FundsRead)),
    ("Investment", "investor", Needs(InvestorsRead)),
    ("AuditEvent", "id", Open),
    ("AuditEvent", "occurredAt", Open),
    ("AuditEvent", "subject", Open),
    ("AuditEvent", "operation", Open),
    ("AuditEvent", "entity", Open),
    ("AuditEvent", "entityId", Open),
    ("AuditEvent", "relatedIds", Open),
    ("AuditEvent", "requestId", Open),
    ("PageInfo", "hasNextPage", Open),
    ("PageInfo", "hasPreviousPage", Open),
    ("PageInfo", "startCursor", Open),
    ("PageInfo", "endCursor", Open),
    ("FundConnection", "edges", Open),
    ("FundConnection", "nodes", Open),
    ("FundConnection", "pageInfo", Open),
    ("FundConnection", "totalCount", Open),
    ("FundEdge", "cursor", Open),
    ("FundEdge", "node", Open),
    ("InvestorConnection", "edges", Open),
    ("InvestorConnection", "nodes", Open),
    ("InvestorConnection", "pageInfo", Open),
    ("InvestorConnection", "totalCount", Open),
    ("InvestorEdge", "cursor", Open),
    ("InvestorEdge", "node", Open),
    ("InvestmentConnection", "edges", Open),
    ("InvestmentConnection", "nodes", Open),
    ("InvestmentConnection", "pageInfo", Open),
    ("InvestmentConnection", "totalCount", Open),
    ("InvestmentEdge", "cursor", Open),
    ("InvestmentEdge", "node", Open),
    ("AuditEventConnection", "edges", Open),
    ("AuditEventConnection", "nodes", Open),
    ("AuditEventConnection", "pageInfo", Open),
    ("AuditEventConnection", "totalCount", Open),
    ("AuditEventEdge", "cursor", Open),
    ("AuditEventEdge", "node", Open),
];

/// Arguments that need a scope of their own, beyond their field's: filtering investors by
/// email would let a caller without `pii:read` test whether an address is a customer.
pub const ARGUMENT_POLICY: &[(&str, &str, &str, Scope)] =
    &[("Query", "investors", "filter.email", PiiRead)];

/// Checks an argument's rule for the caller (call it when the argument is given): `FORBIDDEN`
/// naming the argument without the scope it needs; an argument missing from the table is
/// refused.
pub fn authorize_argument(
    ctx: &Context<'_>,
    type_name: &str,
    field: &str,
    argument: &'static str,
) -> Result<(), AppError> {
    let rule = ARGUMENT_POLICY
        .iter()
        .find(|(t, f, a, _)| *t == type_name && *f == field && *a == argument);
    match rule {
        Some((_, _, _, scope)) if granted(ctx, *scope) => Ok(()),
        Some((_, _, _, scope)) => Err(AppError::Forbidden {
            scope: *scope,
            argument: Some(argument),
        }),
        None => Err(AppError::Internal(format!(
            "{type_name}.{field}({argument}) has no access rule in graphql::policy"
        ))),
    }
}

/// The access rule of a field, if it is listed.
pub fn access(type_name: &str, field: &str) -> Option<Access> {
    FIELD_POLICY
        .iter()
        .find(|(t, f, _)| *t == type_name && *f == field)
        .map(|(_, _, a)| *a)
}

/// Whether the caller of this request holds `scope` (no principal: nothing).
pub fn granted<T>(ctx: &ContextBase<'_, T>, scope: Scope) -> bool {
    ctx.data_opt::<Principal>().is_some_and(|p| p.has(scope))
}

/// Checks the field's rule for the caller: `FORBIDDEN` without the scope it needs. A field
/// missing from the table is refused (fail closed) and logged as a bug.
pub fn authorize(ctx: &Context<'_>, type_name: &str, field: &str) -> Result<(), AppError> {
    match access(type_name, field) {
        Some(Open) => Ok(()),
        Some(Needs(scope)) if granted(ctx, scope) => Ok(()),
        Some(Needs(scope)) => Err(AppError::Forbidden {
            scope,
            argument: None,
        }),
        None => Err(AppError::Internal(format!(
            "{type_name}.{field} has no access rule in graphql::policy"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_the_schema_has_exactly_one_rule() {
        let registry = super::super::pipeline::type_registry();
        let mut missing = Vec::new();
        for (name, ty) in &registry.types {
            if name.starts_with("__") {
                continue;
            }
            if let async_graphql::registry::MetaType::Object { fields, .. } = ty {
                for field in fields.keys() {
                    if field.starts_with("__") {
                        continue;
                    }
                    let rules = FIELD_POLICY
                        .iter()
                        .filter(|(t, f, _)| t == name && f == field)
                        .count();
                    if rules != 1 {
                        missing.push(format!("{name}.{field} ({rules} rules)"));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "give these fields one rule in FIELD_POLICY: {missing:?}"
        );
        // And no stale rules for fields that no longer exist.
        for (t, f, _) in FIELD_POLICY {
            let exists = matches!(
                registry.types.get(*t),
                Some(async_graphql::registry::MetaType::Object { fields, .. }) if fields.contains_key(*f)
            );
            assert!(
                exists,
                "FIELD_POLICY lists {t}.{f}, which the schema does not have"
            );
        }
    }
}
