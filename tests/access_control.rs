//! Access control: bearer tokens (HS256, and RS256/ES256 from a JWKS file or URL, with key
//! rotation), scopes on every root and nested field (table-driven over the schema, so a new
//! field without a rule or a check fails here), the audit trail committing and rolling back with
//! its mutation, production refusing to start unconfigured, CORS and the CSRF guard.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_graphql::registry::{MetaType, Registry};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::{TestApp, codes, fixtures::*};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use titanbay::{
    auth::{Scope, TokenRequest, mint_hs256},
    config::{AppEnv, Config},
    db::Db,
    graphql::{declared_access, model::Access, registry as type_registry},
    startup::build_state,
};

const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
const ISSUER: &str = "https://auth.titanbay.test";
const AUDIENCE: &str = "titanbay-api";
const SPEC: &str = "application/graphql-response+json";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

/// Tokens required: HS256 with [`SECRET`].
fn hs256(config: &mut Config) {
    config.auth.hs256_secret = Some(SECRET.to_owned());
    config.auth.issuer = Some(ISSUER.to_owned());
    config.auth.audience = Some(AUDIENCE.to_owned());
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A valid HS256 token for `subject` with `scopes`.
fn token_for(subject: &str, scopes: &[Scope]) -> String {
    mint_hs256(
        SECRET,
        &TokenRequest {
            issuer: ISSUER,
            audience: AUDIENCE,
            subject,
            scopes,
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap()
}

fn token(scopes: &[Scope]) -> String {
    token_for("tester", scopes)
}

fn admin() -> String {
    token_for("admin", &Scope::ALL)
}

/// Claims of a valid token (tests then break one thing).
fn claims() -> Value {
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "tester", "scope": "funds:read",
            "iat": now(), "nbf": now(), "exp": now() + 600 })
}

fn sign_hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A token signed with a test private key (`es256-a.pem`, `rs256-a.pem`, ...) naming `kid`.
fn sign_pem(claims: &Value, pem: &str, kid: &str) -> String {
    let bytes = std::fs::read(fixture(pem)).unwrap();
    let (alg, key) = if pem.starts_with("es256") {
        (Algorithm::ES256, EncodingKey::from_ec_pem(&bytes).unwrap())
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(&bytes).unwrap())
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned token (`alg: none`).
fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

fn request(token: Option<&str>, accept: &str, query: &str, variables: Value) -> Request<Body> {
    let mut builder = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("accept", accept);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder
        .body(Body::from(
            json!({ "query": query, "variables": variables }).to_string(),
        ))
        .unwrap()
}

async fn call(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.send(request(Some(token), "application/json", query, variables))
        .await
        .body
}

async fn call_ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let body = call(app, token, query, variables).await;
    assert!(body.get("errors").is_none(), "{query}: {body:#}");
    body["data"].clone()
}

/// One fund with one investment by one investor (and the audit events their creation wrote).
struct World {
    fund: String,
    investor: String,
    investment: String,
}

async fn world(app: &TestApp) -> World {
    let admin = admin();
    let fund = call_ok(
        app,
        &admin,
        CREATE_FUND,
        json!({ "input": { "name": "Growth I", "vintageYear": 2024, "targetSizeUsd": "1000000.00", "status": "FUNDRAISING" } }),
    )
    .await["createFund"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let investor = call_ok(
        app,
        &admin,
        CREATE_INVESTOR,
        json!({ "input": { "name": "Pension A", "investorType": "INSTITUTION", "email": "ops@pension-a.example" } }),
    )
    .await["createInvestor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let investment = call_ok(
        app,
        &admin,
        CREATE_INVESTMENT,
        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "2500.00", "investmentDate": "2024-05-01" } }),
    )
    .await["createInvestment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    World {
        fund,
        investor,
        investment,
    }
}

/// Where `@@` stands for a selection on an object of `ty`: the ways to reach one, with the scopes
/// the way itself needs. A type missing here fails the test: say how to reach it.
fn reach(ty: &str, w: &World) -> Vec<(String, Vec<Scope>)> {
    use Scope::*;
    let (fund, investor, investment) = (&w.fund, &w.investor, &w.investment);
    let ways: Vec<(String, Vec<Scope>)> = match ty {
        "Query" => vec![("@@".into(), vec![])],
        "Fund" => vec![
            (format!(r#"fund(id: "{fund}") {{ @@ }}"#), vec![FundsRead]),
            ("funds(first: 5) { nodes { @@ } }".into(), vec![FundsRead]),
            (
                "funds(first: 5) { edges { node { @@ } } }".into(),
                vec![FundsRead],
            ),
            (
                format!(r#"investment(id: "{investment}") {{ fund {{ @@ }} }}"#),
                vec![InvestmentsRead, FundsRead],
            ),
        ],
        "Investor" => vec![
            (
                format!(r#"investor(id: "{investor}") {{ @@ }}"#),
                vec![InvestorsRead],
            ),
            (
                "investors(first: 5) { nodes { @@ } }".into(),
                vec![InvestorsRead],
            ),
            (
                format!(
                    r#"fund(id: "{fund}") {{ investments {{ nodes {{ investor {{ @@ }} }} }} }}"#
                ),
                vec![FundsRead, InvestmentsRead, InvestorsRead],
            ),
        ],
        "Investment" => vec![
            (
                format!(r#"investment(id: "{investment}") {{ @@ }}"#),
                vec![InvestmentsRead],
            ),
            (
                format!(r#"fund(id: "{fund}") {{ investments(first: 5) {{ nodes {{ @@ }} }} }}"#),
                vec![FundsRead, InvestmentsRead],
            ),
            (
                format!(
                    r#"investor(id: "{investor}") {{ investments {{ edges {{ node {{ @@ }} }} }} }}"#
                ),
                vec![InvestorsRead, InvestmentsRead],
            ),
            (
                format!(r#"investor(id: "{investor}") {{ investments {{ nodes {{ @@ }} }} }}"#),
                vec![InvestorsRead, InvestmentsRead],
            ),
            (
                "investors { nodes { investments { nodes { @@ } } } }".into(),
                vec![InvestorsRead, InvestmentsRead],
            ),
            (
                "funds(first: 5) { nodes { investments { nodes { @@ } } } }".into(),
                vec![FundsRead, InvestmentsRead],
            ),
        ],
        "AuditEvent" => vec![
            ("auditEvents { nodes { @@ } }".into(), vec![AuditRead]),
            (
                "auditEvents { edges { node { @@ } } }".into(),
                vec![AuditRead],
            ),
        ],
        "FundConnection" => vec![("funds(first: 5) { @@ }".into(), vec![FundsRead])],
        "FundEdge" => vec![("funds(first: 5) { edges { @@ } }".into(), vec![FundsRead])],
        "InvestorConnection" => vec![("investors { @@ }".into(), vec![InvestorsRead])],
        "InvestorEdge" => vec![("investors { edges { @@ } }".into(), vec![InvestorsRead])],
        "InvestmentConnection" => vec![(
            format!(r#"fund(id: "{fund}") {{ investments {{ @@ }} }}"#),
            vec![FundsRead, InvestmentsRead],
        )],
        "InvestmentEdge" => vec![(
            format!(r#"fund(id: "{fund}") {{ investments {{ edges {{ @@ }} }} }}"#),
            vec![FundsRead, InvestmentsRead],
        )],
        "AuditEventConnection" => vec![("auditEvents { @@ }".into(), vec![AuditRead])],
        "AuditEventEdge" => vec![("auditEvents { edges { @@ } }".into(), vec![AuditRead])],
        "PageInfo" => vec![
            ("funds { pageInfo { @@ } }".into(), vec![FundsRead]),
            ("auditEvents { pageInfo { @@ } }".into(), vec![AuditRead]),
        ],
        other => panic!("the access test does not know how to reach {other}: add it to reach()"),
    };
    ways
}

/// The type a field returns, without list and non-null wrappers.
fn named_type(ty: &str) -> &str {
    ty.trim_matches(|c| c == '[' || c == ']' || c == '!')
}

/// A selection of `field` of `ty`: arguments for required ones, and a sub-selection for objects.
fn selection(registry: &Registry, ty: &str, field: &str, w: &World) -> String {
    let Some(MetaType::Object { fields, .. }) = registry.types.get(ty) else {
        panic!("{ty} is not an object type");
    };
    let meta = &fields[field];
    let returns = named_type(&meta.ty);
    let mut args = Vec::new();
    for (name, arg) in &meta.args {
        if !arg.ty.ends_with('!') || arg.default_value.is_some() {
            continue;
        }
        let id = match (name.as_str(), returns) {
            ("id", "Fund") => &w.fund,
            ("id", "Investor") => &w.investor,
            ("id", "Investment") => &w.investment,
            _ => panic!("{ty}.{field} needs argument {name}: teach selection() a value"),
        };
        args.push(format!(r#"{name}: "{id}""#));
    }
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    };
    match registry.types.get(returns) {
        Some(MetaType::Object { .. }) => format!("{field}{args} {{ __typename }}"),
        _ => format!("{field}{args}"),
    }
}

/// The mutations: a document and variables each (a new mutation fails the test until it is
/// listed), and the table whose row count must not change when it is refused.
fn mutation(name: &str, w: &World, n: usize) -> (&'static str, Value, &'static str) {
    match name {
        "createFund" => (
            "mutation($input: CreateFundInput!) { createFund(input: $input) { id name status } }",
            json!({ "input": { "name": format!("New {n}"), "vintageYear": 2025, "targetSizeUsd": "10.00", "status": "FUNDRAISING" } }),
            "funds",
        ),
        "updateFund" => (
            "mutation($input: UpdateFundInput!) { updateFund(input: $input) { id name } }",
            json!({ "input": { "id": w.fund, "name": format!("Renamed {n}") } }),
            "funds",
        ),
        "createInvestor" => (
            "mutation($input: CreateInvestorInput!) { createInvestor(input: $input) { id name } }",
            json!({ "input": { "name": "New LP", "investorType": "INDIVIDUAL", "email": format!("lp{n}@example.com") } }),
            "investors",
        ),
        "createInvestment" => (
            "mutation($input: CreateInvestmentInput!) { createInvestment(input: $input) { id amountUsd } }",
            json!({ "input": { "fundId": w.fund, "investorId": w.investor, "amountUsd": "1.00", "investmentDate": "2024-06-01" } }),
            "investments",
        ),
        other => panic!("the access test has no document for mutation {other}: add one"),
    }
}

/// Scopes `base` plus `extra`.
fn with(base: &[Scope], extra: Option<Scope>) -> Vec<Scope> {
    base.iter().copied().chain(extra).collect()
}

fn all_but(scope: Scope) -> Vec<Scope> {
    Scope::ALL.into_iter().filter(|s| *s != scope).collect()
}

/// Asserts that a refused response is FORBIDDEN for `scope` on `field`, and nothing else.
fn assert_forbidden(body: &Value, scope: Scope, field: &str, what: &str) {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: expected FORBIDDEN, got {body:#}"));
    assert!(!errors.is_empty(), "{what}: {body:#}");
    for e in errors {
        assert_eq!(e["extensions"]["code"], "FORBIDDEN", "{what}: {body:#}");
        assert_eq!(e["extensions"]["scope"], scope.as_str(), "{what}: {body:#}");
        let last = e["path"].as_array().and_then(|p| p.last()).cloned();
        assert_eq!(last, Some(json!(field)), "{what}: {body:#}");
    }
}

#[tokio::test]
async fn every_field_of_the_schema_checks_its_scope() {
    let app = TestApp::spawn_with(hs256).await;
    let w = world(&app).await;
    let registry = type_registry();
    let entity_read = |ty: &str| match ty {
        "Fund" | "FundConnection" => Some(Scope::FundsRead),
        "Investor" | "InvestorConnection" => Some(Scope::InvestorsRead),
        "Investment" | "InvestmentConnection" => Some(Scope::InvestmentsRead),
        "AuditEvent" | "AuditEventConnection" => Some(Scope::AuditRead),
        _ => None,
    };
    let mut checked = BTreeSet::new();
    let mut refused = BTreeSet::new();
    let mut rules = std::collections::BTreeMap::new();
    let mut mutations = 0;
    for (ty, meta) in &registry.types {
        let MetaType::Object { fields, .. } = meta else {
            continue;
        };
        if ty.starts_with("__") {
            continue;
        }
        for (field, meta_field) in fields {
            if field.starts_with("__") {
                continue;
            }
            let what = format!("{ty}.{field}");
            let rule = match declared_access(ty, field) {
                Some(rule) => rule,
                // A root field carries its rule as a guard: called with no scope at all, it
                // must name the one it needs (fail closed: an unguarded root field answers).
                None if ty == "Query" || ty == "Mutation" => {
                    let body = if ty == "Query" {
                        let select = selection(&registry, ty, field, &w);
                        call(&app, &token(&[]), &format!("{{ {select} }}"), json!({})).await
                    } else {
                        let (doc, vars, _) = mutation(field, &w, checked.len() + 5000);
                        call(&app, &token(&[]), doc, vars).await
                    };
                    let scope = body["errors"][0]["extensions"]["scope"]
                        .as_str()
                        .and_then(Scope::parse)
                        .unwrap_or_else(|| panic!("{what} is not guarded by a scope: {body:#}"));
                    Access::Needs(scope)
                }
                None => panic!("{what} has no declaration"),
            };
            rules.insert(what.clone(), rule);
            // A field that crosses into another entity needs that entity's read scope
            // (connection and edge wrappers only pass their parent's objects on; mutations need
            // their write scope instead).
            let wrapper = ty.ends_with("Connection") || ty.ends_with("Edge");
            if let Some(needed) = entity_read(named_type(&meta_field.ty))
                && !wrapper
                && ty != "Mutation"
            {
                assert_eq!(
                    rule,
                    Access::Needs(needed),
                    "{what} crosses into another entity"
                );
            }
            if ty == "Mutation" {
                let Access::Needs(scope) = rule else {
                    panic!("{what}: a mutation must need a write scope");
                };
                mutations += 1;
                for (case, scopes) in [("no scopes", vec![]), ("all but its scope", all_but(scope))]
                {
                    let (doc, vars, table) = mutation(field, &w, checked.len());
                    let rows = format!("SELECT count(*) FROM {table}");
                    let (before, audit_before): (i64, i64) = (
                        app.sql_scalar(&rows).await,
                        app.sql_scalar("SELECT count(*) FROM audit_events").await,
                    );
                    let body = call(&app, &token(&scopes), doc, vars).await;
                    assert_forbidden(&body, scope, field, &format!("{what} with {case}"));
                    assert_eq!(body["data"], Value::Null, "{what}: {body:#}");
                    assert_eq!(app.sql_scalar::<i64>(&rows).await, before, "{what} wrote");
                    let audit: i64 = app.sql_scalar("SELECT count(*) FROM audit_events").await;
                    assert_eq!(audit, audit_before, "{what} audited a refused mutation");
                }
                let (doc, vars, _) = mutation(field, &w, checked.len() + 1000);
                call_ok(&app, &token(&[scope]), doc, vars).await;
                checked.insert(what.clone());
                refused.insert(what);
                continue;
            }
            let select = selection(&registry, ty, field, &w);
            for (way, way_scopes) in reach(ty, &w) {
                let query = format!("{{ {} }}", way.replace("@@", &select));
                match rule {
                    Access::Open => {
                        let data = call_ok(&app, &token(&way_scopes), &query, json!({})).await;
                        assert!(
                            data.as_object()
                                .is_some_and(|d| d.values().all(|v| !v.is_null()))
                        );
                    }
                    Access::Needs(scope) => {
                        call_ok(
                            &app,
                            &token(&with(&way_scopes, Some(scope))),
                            &query,
                            json!({}),
                        )
                        .await;
                        if way_scopes.contains(&scope) {
                            continue;
                        }
                        for (case, scopes) in [
                            ("only the way's scopes", way_scopes.clone()),
                            ("all but its scope", all_but(scope)),
                        ] {
                            let body = call(&app, &token(&scopes), &query, json!({})).await;
                            assert_forbidden(&body, scope, field, &format!("{query} with {case}"));
                        }
                        refused.insert(what.clone());
                    }
                }
            }
            checked.insert(what);
        }
    }
    assert_eq!(mutations, 4);
    let guarded: BTreeSet<String> = rules
        .iter()
        .filter(|(_, a)| matches!(a, Access::Needs(_)))
        .map(|(what, _)| what.clone())
        .collect();
    assert_eq!(
        refused, guarded,
        "every guarded field was refused without its scope"
    );
    assert_eq!(checked.len(), rules.len());
}

#[tokio::test]
async fn without_pii_read_email_is_null_with_one_error_and_the_rest_stays() {
    let app = TestApp::spawn_with(hs256).await;
    let w = world(&app).await;
    let admin = admin();
    call_ok(
        &app,
        &admin,
        CREATE_INVESTOR,
        json!({ "input": { "name": "Family Office B", "investorType": "FAMILY_OFFICE", "email": "cio@fo-b.example" } }),
    )
    .await;
    let reader = token(&[Scope::InvestorsRead, Scope::InvestmentsRead]);
    let body = call(
        &app,
        &reader,
        &format!(
            r#"{{ investor(id: "{}") {{ id name email totalCommittedUsd }}
                 investors(first: 10) {{ totalCount nodes {{ id name email }} }} }}"#,
            w.investor
        ),
        json!({}),
    )
    .await;
    let data = &body["data"];
    assert_eq!(data["investor"]["id"], w.investor.as_str());
    assert_eq!(data["investor"]["name"], "Pension A");
    assert_eq!(data["investor"]["email"], Value::Null);
    assert_eq!(data["investor"]["totalCommittedUsd"], "2500.00");
    assert_eq!(data["investors"]["totalCount"], 2);
    let nodes = data["investors"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(
        nodes
            .iter()
            .all(|n| n["email"].is_null() && n["name"].is_string())
    );
    assert_eq!(codes(&body), ["FORBIDDEN"; 3], "{body:#}");
    let paths: Vec<&Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["path"])
        .collect();
    assert!(paths.contains(&&json!(["investor", "email"])), "{paths:?}");
    assert!(paths.contains(&&json!(["investors", "nodes", 0, "email"])));
    assert!(paths.contains(&&json!(["investors", "nodes", 1, "email"])));

    // With pii:read the emails are there.
    let pii = token(&[Scope::InvestorsRead, Scope::PiiRead]);
    let data = call_ok(&app, &pii, "{ investors { nodes { email } } }", json!({})).await;
    let emails: BTreeSet<&str> = data["investors"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        BTreeSet::from(["cio@fo-b.example", "ops@pension-a.example"])
    );

    // Filtering by email is a PII lookup too: refused without pii:read, naming the argument,
    // whether or not the address exists.
    for email in ["ops@pension-a.example", "nobody@example.com"] {
        let body = call(
            &app,
            &reader,
            "query($e: String) { investors(filter: { email: $e }) { totalCount } }",
            json!({ "e": email }),
        )
        .await;
        assert_eq!(codes(&body), ["FORBIDDEN"], "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "filter.email");
        assert_eq!(body["data"], Value::Null);
    }
    let data = call_ok(
        &app,
        &pii,
        "{ investors(filter: { email: \"OPS@pension-a.example\" }) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(data["investors"]["totalCount"], 1);
}

#[tokio::test]
async fn a_funds_only_token_cannot_reach_investors_through_the_tree() {
    let app = TestApp::spawn_with(hs256).await;
    let w = world(&app).await;
    let funds_only = token(&[Scope::FundsRead]);
    let body = call(
        &app,
        &funds_only,
        "{ funds { nodes { id name investments { nodes { investor { name email } } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["scope"], "investments:read");
    assert!(!body.to_string().contains("Pension A"));
    // Funds and investments, but not investors.
    let body = call(
        &app,
        &token(&[Scope::FundsRead, Scope::InvestmentsRead]),
        &format!(
            r#"{{ fund(id: "{}") {{ name investments {{ nodes {{ amountUsd investor {{ name }} }} }} }} }}"#,
            w.fund
        ),
        json!({}),
    )
    .await;
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["scope"], "investors:read");
    assert!(!body.to_string().contains("Pension A"));
}

#[tokio::test]
async fn refusals_do_not_reveal_whether_an_id_exists() {
    let app = TestApp::spawn_with(hs256).await;
    let w = world(&app).await;
    let missing = "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d";
    let nobody = token(&[]);
    let mut answers = Vec::new();
    for id in [w.fund.as_str(), missing] {
        let body = call(
            &app,
            &nobody,
            "query($id: UUID!) { fund(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
        answers.push((codes(&body), body["data"].clone()));
        let body = call(
            &app,
            &nobody,
            "mutation($input: UpdateFundInput!) { updateFund(input: $input) { id } }",
            json!({ "input": { "id": id, "name": "X" } }),
        )
        .await;
        answers.push((codes(&body), body["data"].clone()));
        let body = call(
            &app,
            &token(&[Scope::FundsRead]),
            "mutation($input: CreateInvestmentInput!) { createInvestment(input: $input) { id } }",
            json!({ "input": { "fundId": id, "investorId": missing, "amountUsd": "1.00", "investmentDate": "2024-01-01" } }),
        )
        .await;
        answers.push((codes(&body), body["data"].clone()));
    }
    assert!(
        answers.iter().all(|(c, _)| c == &["FORBIDDEN"]),
        "{answers:?}"
    );
    assert_eq!(
        answers[..3],
        answers[3..],
        "same answer for an existing and a missing id"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_unauthenticated() {
    let app = TestApp::spawn_with(|c| {
        hs256(c);
        c.auth.leeway = Duration::from_secs(30);
    })
    .await;
    let query = "{ funds { totalCount } }";
    let mut expired = claims();
    expired["exp"] = json!(now() - 120);
    let mut not_yet = claims();
    not_yet["nbf"] = json!(now() + 120);
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut no_sub = claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("expired", Some(sign_hs256(&expired, SECRET))),
        ("not yet valid", Some(sign_hs256(&not_yet, SECRET))),
        ("wrong audience", Some(sign_hs256(&wrong_aud, SECRET))),
        ("wrong issuer", Some(sign_hs256(&wrong_iss, SECRET))),
        ("no subject", Some(sign_hs256(&no_sub, SECRET))),
        ("no expiry", Some(sign_hs256(&no_exp, SECRET))),
        (
            "wrong signature",
            Some(sign_hs256(
                &claims(),
                "another-secret-0123456789abcdefghijkl",
            )),
        ),
        ("alg none", Some(unsigned(&claims()))),
        (
            "ES256 without a JWKS",
            Some(sign_pem(&claims(), "es256-a.pem", "ec-a")),
        ),
        ("garbage", Some("not.a.jwt".to_owned())),
    ];
    for (case, token) in &cases {
        // The spec media type: 401 with a challenge.
        let response = app
            .send(request(token.as_deref(), SPEC, query, json!({})))
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case}");
        let challenge = response.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
        assert_eq!(response.codes(), ["UNAUTHENTICATED"], "{case}");
        assert!(response.body.get("data").is_none(), "{case}");
        // Legacy JSON: 200 with the code.
        let response = app
            .send(request(
                token.as_deref(),
                "application/json",
                query,
                json!({}),
            ))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{case}");
        assert_eq!(response.codes(), ["UNAUTHENTICATED"], "{case}");
    }
    // Not a bearer token at all.
    let response = app
        .send(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .header("accept", SPEC)
                .header("authorization", "Basic dXNlcjpwYXNz")
                .body(Body::from(json!({ "query": query }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    // GET queries are authenticated too.
    let response = app
        .send(
            Request::get("/graphql?query=%7Bfunds%7BtotalCount%7D%7D")
                .header("accept", SPEC)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);

    // Inside the clock-skew allowance the token is still good.
    let mut just_expired = claims();
    just_expired["exp"] = json!(now() - 5);
    let mut almost_valid = claims();
    almost_valid["nbf"] = json!(now() + 5);
    for c in [just_expired, almost_valid, claims()] {
        call_ok(&app, &sign_hs256(&c, SECRET), query, json!({})).await;
    }
    // `scp` as a list works as well as `scope`; unknown scopes are ignored.
    let mut scp = claims();
    scp.as_object_mut().unwrap().remove("scope");
    scp["scp"] = json!(["funds:read", "admin:everything"]);
    call_ok(&app, &sign_hs256(&scp, SECRET), query, json!({})).await;
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_it_expires() {
    let app = TestApp::spawn_with(|c| {
        hs256(c);
        c.auth.leeway = Duration::ZERO;
    })
    .await;
    let query = "{ funds { totalCount } }";
    let mut short = claims();
    short["exp"] = json!(now() + 2);
    let token = sign_hs256(&short, SECRET);
    // Verified once, then answered from memory.
    call_ok(&app, &token, query, json!({})).await;
    call_ok(&app, &token, query, json!({})).await;
    while now() <= short["exp"].as_u64().unwrap() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        codes(&call(&app, &token, query, json!({})).await),
        ["UNAUTHENTICATED"]
    );
    // A token that failed is never remembered as good.
    let mut bad = claims();
    bad["aud"] = json!("someone-else");
    let bad = sign_hs256(&bad, SECRET);
    for _ in 0..2 {
        assert_eq!(
            codes(&call(&app, &bad, query, json!({})).await),
            ["UNAUTHENTICATED"]
        );
    }
}

#[tokio::test]
async fn es256_and_rs256_tokens_verify_against_the_jwks_file() {
    let app = TestApp::spawn_with(|c| {
        c.auth.jwks_file = Some(fixture("jwks-a.json"));
        c.auth.issuer = Some(ISSUER.to_owned());
        c.auth.audience = Some(AUDIENCE.to_owned());
    })
    .await;
    let query = "{ funds { totalCount } }";
    call_ok(
        &app,
        &sign_pem(&claims(), "es256-a.pem", "ec-a"),
        query,
        json!({}),
    )
    .await;
    call_ok(
        &app,
        &sign_pem(&claims(), "rs256-a.pem", "rsa-a"),
        query,
        json!({}),
    )
    .await;
    let refused = [
        (
            "signed by another key",
            sign_pem(&claims(), "es256-b.pem", "ec-a"),
        ),
        ("unknown kid", sign_pem(&claims(), "es256-b.pem", "ec-b")),
        (
            "algorithm confusion",
            sign_pem(&claims(), "rs256-a.pem", "ec-a"),
        ),
        (
            "HS256 when only keys are configured",
            sign_hs256(&claims(), SECRET),
        ),
    ];
    for (case, token) in refused {
        let body = call(&app, &token, query, json!({})).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{case}");
    }
}

#[tokio::test]
async fn a_rotated_jwks_file_is_picked_up_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("titanbay-jwks-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::copy(fixture("jwks-a.json"), &path).unwrap();
    let app = TestApp::spawn_with(|c| {
        c.auth.jwks_file = Some(path.clone());
        c.auth.issuer = Some(ISSUER.to_owned());
        c.auth.audience = Some(AUDIENCE.to_owned());
        c.auth.jwks_refresh = Duration::from_secs(1);
    })
    .await;
    let query = "{ funds { totalCount } }";
    let old = sign_pem(&claims(), "es256-a.pem", "ec-a");
    let new = sign_pem(&claims(), "es256-b.pem", "ec-b");
    call_ok(&app, &old, query, json!({})).await;
    assert_eq!(
        codes(&call(&app, &new, query, json!({})).await),
        ["UNAUTHENTICATED"]
    );
    // Rotate: the new key replaces the old one. The old token, verified (and remembered)
    // above, is refused as soon as the key set it was checked against is stale.
    std::fs::copy(fixture("jwks-b.json"), &path).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        codes(&call(&app, &old, query, json!({})).await),
        ["UNAUTHENTICATED"]
    );
    call_ok(&app, &new, query, json!({})).await;
    assert_eq!(
        codes(&call(&app, &old, query, json!({})).await),
        ["UNAUTHENTICATED"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A JWKS endpoint whose document the test can change, and whose fetches it counts.
async fn jwks_server(document: Arc<Mutex<(String, u32)>>) -> String {
    use axum::{Router, extract::State, routing::get};
    async fn serve(State(doc): State<Arc<Mutex<(String, u32)>>>) -> (StatusCode, String) {
        let mut doc = doc.lock().unwrap();
        doc.1 += 1;
        if doc.0.is_empty() {
            (StatusCode::SERVICE_UNAVAILABLE, String::new())
        } else {
            (StatusCode::OK, doc.0.clone())
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/.well-known/jwks.json", get(serve))
        .with_state(document);
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn the_jwks_url_is_cached_refreshed_on_rotation_and_survives_an_outage() {
    let keys_a = std::fs::read_to_string(fixture("jwks-a.json")).unwrap();
    let keys_b = std::fs::read_to_string(fixture("jwks-b.json")).unwrap();
    let document = Arc::new(Mutex::new((keys_a, 0u32)));
    let url = jwks_server(document.clone()).await;
    let app = TestApp::spawn_with(|c| {
        c.auth.jwks_url = Some(url);
        c.auth.issuer = Some(ISSUER.to_owned());
        c.auth.audience = Some(AUDIENCE.to_owned());
        c.auth.jwks_refresh = Duration::from_secs(1);
    })
    .await;
    let query = "{ funds { totalCount } }";
    let old = sign_pem(&claims(), "es256-a.pem", "ec-a");
    let new = sign_pem(&claims(), "es256-b.pem", "ec-b");
    // Cached: many requests, one fetch (the one at start).
    for _ in 0..20 {
        call_ok(&app, &old, query, json!({})).await;
    }
    assert_eq!(document.lock().unwrap().1, 1);
    // Unknown kids do not make us hammer the key server.
    for _ in 0..20 {
        assert_eq!(
            codes(&call(&app, &new, query, json!({})).await),
            ["UNAUTHENTICATED"]
        );
    }
    assert!(document.lock().unwrap().1 <= 2);
    // Rotation.
    document.lock().unwrap().0 = keys_b;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    call_ok(&app, &new, query, json!({})).await;
    assert_eq!(
        codes(&call(&app, &old, query, json!({})).await),
        ["UNAUTHENTICATED"]
    );
    // The key server goes down: the keys we have keep working.
    document.lock().unwrap().0 = String::new();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fetches = document.lock().unwrap().1;
    call_ok(&app, &new, query, json!({})).await;
    call_ok(&app, &new, query, json!({})).await;
    assert_eq!(
        document.lock().unwrap().1,
        fetches + 1,
        "one failed refresh attempt"
    );
}

#[tokio::test]
async fn the_audit_trail_records_who_did_what_in_the_same_transaction() {
    let app = TestApp::spawn_with(hs256).await;
    let alice = token_for("alice", &Scope::ALL);
    let response = app
        .send(request(
            Some(&alice),
            "application/json",
            CREATE_FUND,
            json!({ "input": { "name": "Audit I", "vintageYear": 2023, "targetSizeUsd": "500.00", "status": "FUNDRAISING" } }),
        ))
        .await;
    let fund = response.body["data"]["createFund"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let request_id = response.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let investor = call_ok(
        &app,
        &alice,
        CREATE_INVESTOR,
        json!({ "input": { "name": "LP", "investorType": "INDIVIDUAL", "email": "lp@audit.example" } }),
    )
    .await["createInvestor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = token_for("bob", &Scope::ALL);
    let investment = call_ok(
        &app,
        &bob,
        CREATE_INVESTMENT,
        json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "100.00", "investmentDate": "2024-02-02" } }),
    )
    .await["createInvestment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call_ok(
        &app,
        &bob,
        UPDATE_FUND,
        json!({ "input": { "id": fund, "status": "CLOSED" } }),
    )
    .await;

    // Failing mutations leave no audit row.
    let failures = [
        (
            CREATE_INVESTMENT,
            json!({ "input": { "fundId": fund, "investorId": investor, "amountUsd": "1.00", "investmentDate": "2024-02-03" } }),
            "FUND_CLOSED",
        ),
        (
            CREATE_INVESTOR,
            json!({ "input": { "name": "Dup", "investorType": "INDIVIDUAL", "email": "LP@audit.example" } }),
            "CONFLICT",
        ),
        (
            UPDATE_FUND,
            json!({ "input": { "id": fund, "status": "FUNDRAISING" } }),
            "INVALID_STATUS_TRANSITION",
        ),
        (
            UPDATE_FUND,
            json!({ "input": { "id": "0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d", "name": "X" } }),
            "NOT_FOUND",
        ),
        (
            CREATE_FUND,
            json!({ "input": { "name": " ", "vintageYear": 2023, "targetSizeUsd": "1.00", "status": "FUNDRAISING" } }),
            "BAD_USER_INPUT",
        ),
    ];
    for (doc, vars, code) in failures {
        assert_eq!(codes(&call(&app, &alice, doc, vars).await), [code]);
    }
    let count: i64 = app.sql_scalar("SELECT count(*) FROM audit_events").await;
    assert_eq!(count, 4);

    let data = call_ok(
        &app,
        &token(&[Scope::AuditRead]),
        "{ auditEvents(first: 10) { totalCount nodes { id occurredAt subject operation entity entityId relatedIds requestId } } }",
        json!({}),
    )
    .await;
    assert_eq!(data["auditEvents"]["totalCount"], 4);
    let events = data["auditEvents"]["nodes"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
                e["entityId"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest first.
    assert_eq!(
        summary,
        [
            ("updateFund", "bob", fund.as_str()),
            ("createInvestment", "bob", investment.as_str()),
            ("createInvestor", "alice", investor.as_str()),
            ("createFund", "alice", fund.as_str()),
        ]
    );
    assert_eq!(events[1]["entity"], "investment");
    assert_eq!(events[1]["relatedIds"], json!([fund, investor]));
    assert_eq!(events[3]["entity"], "fund");
    assert_eq!(events[3]["requestId"], request_id.as_str());
    // Paging newest-first with cursors.
    let first = call_ok(
        &app,
        &token(&[Scope::AuditRead]),
        "{ auditEvents(first: 3) { pageInfo { hasNextPage endCursor } nodes { operation } } }",
        json!({}),
    )
    .await;
    assert_eq!(first["auditEvents"]["pageInfo"]["hasNextPage"], true);
    let rest = call_ok(
        &app,
        &token(&[Scope::AuditRead]),
        "query($after: String) { auditEvents(first: 3, after: $after) { pageInfo { hasNextPage } nodes { operation } } }",
        json!({ "after": first["auditEvents"]["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(
        rest["auditEvents"]["nodes"],
        json!([{ "operation": "createFund" }])
    );

    // Append-only: the table refuses changes, even from the application's own role.
    for sql in [
        "UPDATE audit_events SET subject = 'mallory'",
        "DELETE FROM audit_events",
    ] {
        let result = sea_orm::ConnectionTrait::execute_unprepared(&app.sql_conn, sql).await;
        assert!(result.is_err(), "{sql} was allowed");
    }
    let count: i64 = app.sql_scalar("SELECT count(*) FROM audit_events").await;
    assert_eq!(count, 4);
}

#[tokio::test]
async fn a_mutation_whose_audit_row_fails_is_rolled_back() {
    let app = TestApp::spawn_with(hs256).await;
    let w = world(&app).await;
    // Make every audit insert fail, as a full disk or a broken trigger would.
    app.sql(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'audit refused'; END $$;
         CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
         FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
    )
    .await;
    let admin = admin();
    let counts = "SELECT (SELECT count(*) FROM funds) * 1000000 + (SELECT count(*) FROM investors) * 1000 + (SELECT count(*) FROM investments)";
    let before: i64 = app.sql_scalar(counts).await;
    let name_before: String = app
        .sql_scalar(&format!("SELECT name FROM funds WHERE id = '{}'", w.fund))
        .await;
    for (doc, vars) in [
        (
            CREATE_FUND,
            json!({ "input": { "name": "Never", "vintageYear": 2023, "targetSizeUsd": "1.00", "status": "FUNDRAISING" } }),
        ),
        (
            UPDATE_FUND,
            json!({ "input": { "id": w.fund, "name": "Never" } }),
        ),
        (
            CREATE_INVESTOR,
            json!({ "input": { "name": "Never", "investorType": "INDIVIDUAL", "email": "never@example.com" } }),
        ),
        (
            CREATE_INVESTMENT,
            json!({ "input": { "fundId": w.fund, "investorId": w.investor, "amountUsd": "1.00", "investmentDate": "2024-03-03" } }),
        ),
    ] {
        let body = call(&app, &admin, doc, vars).await;
        assert_eq!(codes(&body), ["INTERNAL_SERVER_ERROR"], "{body:#}");
        assert!(
            !body.to_string().contains("audit refused"),
            "internal detail leaked"
        );
    }
    assert_eq!(app.sql_scalar::<i64>(counts).await, before);
    let name_after: String = app
        .sql_scalar(&format!("SELECT name FROM funds WHERE id = '{}'", w.fund))
        .await;
    assert_eq!(name_after, name_before);
    let _ = w.investment;
}

#[tokio::test]
async fn production_refuses_to_start_without_auth_and_development_runs_open() {
    let app = TestApp::spawn().await;
    let url = app.url.clone();
    let conn = || async {
        Db::connect(&common::test_config(&url).database, &url)
            .await
            .unwrap()
    };
    let production = |adjust: &dyn Fn(&mut Config)| {
        let mut config = common::test_config(&url);
        config.app_env = AppEnv::Production;
        adjust(&mut config);
        config
    };
    type Adjust<'a> = &'a dyn Fn(&mut Config);
    let refused: [(&str, Adjust); 4] = [
        ("no auth at all", &|_| {}),
        ("no issuer or audience", &|c| {
            c.auth.hs256_secret = Some(SECRET.to_owned());
        }),
        ("a short secret", &|c| {
            hs256(c);
            c.auth.hs256_secret = Some("short".to_owned());
        }),
        ("an unreadable JWKS", &|c| {
            hs256(c);
            c.auth.jwks_file = Some(PathBuf::from("/nonexistent/jwks.json"));
        }),
    ];
    for (case, adjust) in refused {
        let result = build_state(conn().await, production(adjust)).await;
        assert!(result.is_err(), "production started with {case}");
    }
    // Configured production starts, and requires tokens.
    let state = build_state(conn().await, production(&hs256)).await.unwrap();
    assert!(!state.auth.is_open());

    // Development without auth: open, and mutations are audited without a subject.
    let response = app
        .send(request(
            None,
            SPEC,
            CREATE_FUND,
            json!({ "input": { "name": "Dev", "vintageYear": 2023, "targetSizeUsd": "1.00", "status": "FUNDRAISING" } }),
        ))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:#}", response.body);
    let data = app
        .gql_ok("{ auditEvents { nodes { subject operation } } }", json!({}))
        .await;
    assert_eq!(
        data["auditEvents"]["nodes"],
        json!([{ "subject": null, "operation": "createFund" }])
    );
}

#[tokio::test]
async fn cors_answers_only_allow_listed_origins_and_simple_requests_are_refused() {
    let app = TestApp::spawn_with(|c| {
        c.cors_allowed_origins = vec!["https://app.titanbay.test".to_owned()];
    })
    .await;
    let preflight = |origin: &str| {
        Request::options("/graphql")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app.send(preflight("https://app.titanbay.test")).await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.titanbay.test"
    );
    let allow_headers = allowed.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allow_headers.contains("authorization") && allow_headers.contains("content-type"));
    // Browser clients may send mutations retry-safely, and read whether an answer was replayed.
    assert!(allow_headers.contains("idempotency-key"), "{allow_headers}");
    let other = app.send(preflight("https://evil.example")).await;
    assert!(other.headers.get("access-control-allow-origin").is_none());

    // CSRF guard: a browser can send these without a preflight; none of them runs.
    let before: i64 = app.sql_scalar("SELECT count(*) FROM funds").await;
    let mutation = r#"mutation { createFund(input: { name: "CSRF", vintageYear: 2020, targetSizeUsd: "1.00", status: FUNDRAISING }) { id } }"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = app
            .send(
                Request::post("/graphql")
                    .header("content-type", content_type)
                    .header("origin", "https://evil.example")
                    .body(Body::from(json!({ "query": mutation }).to_string()))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    let get = format!("/graphql?query={}", url_escape(mutation));
    let response = app
        .send(Request::get(get).body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    let after: i64 = app.sql_scalar("SELECT count(*) FROM funds").await;
    assert_eq!(after, before);
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
