//! Titanbay private-markets GraphQL API: funds, investors and their investments on PostgreSQL.
//!
//! Requests flow one way: [`http`] → [`executor`] → [`graphql`] → [`service`] → [`db`] →
//! [`entity`] (ARCHITECTURE.md draws it).

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod entity;
pub mod error;
pub mod executor;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod seed;
pub mod service;
pub mod slots;
pub mod startup;
pub mod telemetry;
