//! SeaORM entities for the three tables. Storage shapes only: no rules, no GraphQL.

pub mod audit_event;
pub mod fund;
pub mod investment;
pub mod investor;
