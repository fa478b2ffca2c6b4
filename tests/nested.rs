//! Nested reads at constant cost: one statement per nesting level whatever the page sizes,
//! exact keyset paging per parent, and index seeks without sorts on a million investments.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashSet;

use common::{TestApp, codes, field};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use titanbay::{
    db::rows::ColumnSet,
    entity::fund,
    service::{
        investment::{
            Include, PageQuery, Parent, investment_pages, page::parent_with_page_statement,
            page_statements,
        },
        page::{Direction, PageWindow},
    },
};
use uuid::Uuid;

/// Fills the app's database with the benchmark generator (`bench/generate.sql`).
async fn generate(
    app: &TestApp,
    funds: u32,
    investors: u32,
    investments: u32,
    hot_funds: u32,
    hot_size: u32,
) {
    let sql = include_str!("../bench/generate.sql")
        .replace("__FUNDS__", &funds.to_string())
        .replace("__INVESTORS__", &investors.to_string())
        .replace("__INVESTMENTS__", &investments.to_string())
        .replace("__HOT_FUNDS__", &hot_funds.to_string())
        .replace("__HOT_SIZE__", &hot_size.to_string());
    // One connection: the generator's helper functions live in its session.
    let mut opt = ConnectOptions::new(app.url.clone());
    opt.max_connections(1).sqlx_logging(false);
    let conn = Database::connect(opt).await.unwrap();
    for statement in sql.split(";\n") {
        let code: String = statement
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if !code.trim().is_empty() {
            conn.execute_unprepared(&code)
                .await
                .unwrap_or_else(|e| panic!("{code}: {e}"));
        }
    }
    conn.close().await.unwrap();
    // A bulk load outside the API: its totals are rewritten as `check-totals --repair` does.
    titanbay::service::totals::repair(&app.db).await.unwrap();
}

/// Statements one request costs.
async fn statements_for(app: &TestApp, query: &str, variables: Value) -> (u64, Value) {
    let before = app.statements();
    let body = app.gql(query, variables).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    (app.statements() - before, body)
}

const FUND_TREE: &str = "query($n: Int) { funds(first: $n) { nodes { name investments(first: 10) { nodes { amountUsd investor { name } } } } } }";

#[tokio::test]
async fn a_fund_tree_costs_one_statement_per_level_whatever_the_page_size() {
    let app = TestApp::spawn().await;
    generate(&app, 120, 40, 3000, 1, 500).await;
    for n in [1, 10, 100] {
        let (count, body) = statements_for(&app, FUND_TREE, json!({ "n": n })).await;
        let funds = body["data"]["funds"]["nodes"].as_array().unwrap();
        assert_eq!(funds.len(), n);
        let sizes: Vec<usize> = funds
            .iter()
            .map(|f| f["investments"]["nodes"].as_array().unwrap().len())
            .collect();
        assert!(
            sizes.iter().all(|s| *s <= 10) && sizes[0] == 10,
            "{sizes:?}"
        );
        assert_eq!(
            count, 2,
            "funds, then their pages joined with the investors (n = {n})"
        );
    }
    let with_aggregates = "query($n: Int) { funds(first: $n) { totalCount nodes { totalCommittedUsd investorCount investments(first: 5) { totalCount nodes { investor { totalCommittedUsd } } } } } }";
    for n in [1, 10, 100] {
        let (count, _) = statements_for(&app, with_aggregates, json!({ "n": n })).await;
        // funds + count(funds) + the funds' kept totals (sums, distinct investors and page
        // counts: one lookup) + pages with investors + the investors' kept totals
        assert_eq!(count, 5, "n = {n}");
    }
}

#[tokio::test]
async fn an_investor_tree_costs_one_statement_per_level_too() {
    let app = TestApp::spawn().await;
    generate(&app, 50, 120, 3000, 1, 200).await;
    let query = "query($n: Int) { investors(first: $n) { nodes { name totalCommittedUsd investments(first: 10) { totalCount nodes { fund { name } } } } } }";
    for n in [1, 10, 100] {
        let (count, body) = statements_for(&app, query, json!({ "n": n })).await;
        assert_eq!(
            body["data"]["investors"]["nodes"].as_array().unwrap().len(),
            n
        );
        assert_eq!(
            count, 3,
            "investors, their kept totals (sums and page counts), pages joined with funds (n = {n})"
        );
    }
}

/// A page whose `pageInfo` is not selected reads exactly its rows, without the extra one that
/// tells whether more follow; a sibling asking for `pageInfo` on the same pages shares the
/// statement and still gets the right answer.
#[tokio::test]
async fn pages_without_page_info_share_the_statement_of_pages_with_it() {
    let app = TestApp::spawn().await;
    generate(&app, 30, 20, 600, 1, 100).await;
    let query = "{ funds(first: 20) { nodes { a: investments(first: 2) { nodes { id } } b: investments(first: 2) { pageInfo { hasNextPage endCursor } nodes { id } } c: investments(first: 100) { pageInfo { hasNextPage } } } } }";
    let (count, body) = statements_for(&app, query, json!({})).await;
    assert_eq!(count, 1 + 2, "the funds, then one statement per page size");
    for fund in body["data"]["funds"]["nodes"].as_array().unwrap() {
        let (a, b) = (&fund["a"]["nodes"], &fund["b"]["nodes"]);
        assert_eq!(a, b);
        let beyond = fund["c"]["pageInfo"]["hasNextPage"].as_bool().unwrap();
        assert_eq!(beyond, fund_size(&app, fund).await > 100);
        let n = a.as_array().unwrap().len();
        assert!(n <= 2);
        // More than two investments exactly when the fund's first hundred hold more than two.
        let more = fund["b"]["pageInfo"]["hasNextPage"].as_bool().unwrap();
        assert_eq!(more, n == 2 && fund_size(&app, fund).await > 2);
    }
    // Alone, the page without pageInfo still answers its rows.
    let (count, body) = statements_for(
        &app,
        "{ funds(first: 20) { nodes { investments(first: 2) { nodes { id } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(count, 2);
    let first = &body["data"]["funds"]["nodes"][0]["investments"]["nodes"];
    assert_eq!(first.as_array().unwrap().len(), 2);
}

/// How many investments the fund (an answer object with `b.nodes[].id`) has, from SQL.
async fn fund_size(app: &TestApp, fund: &Value) -> i64 {
    let Some(id) = fund["b"]["nodes"][0]["id"].as_str() else {
        return 0;
    };
    app.sql_scalar(&format!(
        "SELECT count(*) FROM investments WHERE fund_id = (SELECT fund_id FROM investments WHERE id = '{id}')"
    ))
    .await
}

#[tokio::test]
async fn different_page_arguments_per_parent_still_batch_by_shape() {
    let app = TestApp::spawn().await;
    generate(&app, 30, 20, 600, 1, 100).await;
    let query = "{ a: funds(first: 20) { nodes { investments(first: 3) { nodes { id } } } } b: funds(first: 20) { nodes { investments(first: 7) { nodes { id } } } } }";
    let (count, body) = statements_for(&app, query, json!({})).await;
    assert_eq!(
        body["data"]["a"]["nodes"][0]["investments"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        body["data"]["b"]["nodes"][0]["investments"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        count,
        2 + 2,
        "one statement per list, one page statement per page size (whatever the timing)"
    );
}

/// Walks a connection with `first`/`after` (or `last`/`before`) pages of `size`, returning ids.
async fn walk(app: &TestApp, root: &str, id: &str, size: i64, forward: bool) -> Vec<String> {
    let query = format!(
        "query($id: UUID!, $n: Int, $c: String) {{ {root}(id: $id) {{ investments({}) {{ edges {{ cursor node {{ id investmentDate }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }} }}",
        if forward {
            "first: $n, after: $c"
        } else {
            "last: $n, before: $c"
        }
    );
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let data = app
            .gql_ok(&query, json!({ "id": id, "n": size, "c": cursor }))
            .await;
        let conn = &data[root]["investments"];
        let mut ids: Vec<String> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        let info = &conn["pageInfo"];
        if forward {
            seen.append(&mut ids);
            if !info["hasNextPage"].as_bool().unwrap() {
                return seen;
            }
            cursor = info["endCursor"].clone();
        } else {
            ids.append(&mut seen);
            seen = ids;
            if !info["hasPreviousPage"].as_bool().unwrap() {
                return seen;
            }
            cursor = info["startCursor"].clone();
        }
    }
}

#[tokio::test]
async fn paging_visits_every_investment_once_in_order_even_when_dates_tie() {
    let app = TestApp::spawn().await;
    generate(&app, 3, 5, 0, 0, 1).await;
    let fund: String = app
        .sql_scalar("SELECT id::text FROM funds ORDER BY id LIMIT 1")
        .await;
    let other: String = app
        .sql_scalar("SELECT id::text FROM funds ORDER BY id DESC LIMIT 1")
        .await;
    let investor: String = app
        .sql_scalar("SELECT id::text FROM investors ORDER BY id LIMIT 1")
        .await;
    // 230 investments on only 4 distinct dates, by one investor (so both parents page them).
    app.sql(&format!(
        "INSERT INTO investments (id, fund_id, investor_id, amount_usd, investment_date) \
         SELECT gen_random_uuid(), '{fund}', '{investor}', g, DATE '2024-01-01' + (g % 4) \
         FROM generate_series(1, 230) g"
    ))
    .await;
    titanbay::service::totals::repair(&app.db).await.unwrap();
    let expected: Vec<String> = {
        let rows = app
            .sql_conn
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT id::text FROM investments WHERE fund_id = '{fund}' ORDER BY investment_date DESC, id DESC"),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect()
    };
    assert_eq!(expected.len(), 230);
    for root in ["fund", "investor"] {
        let id = if root == "fund" { &fund } else { &investor };
        for size in [1, 3, 100] {
            for forward in [true, false] {
                let ids = walk(&app, root, id, size, forward).await;
                assert_eq!(ids, expected, "{root} size {size} forward {forward}");
                assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 230);
            }
        }
    }
    // A cursor of one fund's list is refused on another fund, and on the investor's list.
    let data = app
        .gql_ok("query($id: UUID!) { fund(id: $id) { investments(first: 1) { pageInfo { endCursor } } } }", json!({ "id": fund }))
        .await;
    let cursor = data["fund"]["investments"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql("query($id: UUID!, $c: String) { fund(id: $id) { investments(after: $c) { totalCount } } }", json!({ "id": other, "c": cursor }))
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(field(&body).as_deref(), Some("after"));
    let body = app
        .gql("query($id: UUID!, $c: String) { investor(id: $id) { investments(before: $c) { totalCount } } }", json!({ "id": investor, "c": cursor }))
        .await;
    assert_eq!(field(&body).as_deref(), Some("before"));
    // Both cursors bound a range; hasNextPage is cheap when paging backward.
    let page = app
        .gql_ok(
            "query($id: UUID!) { fund(id: $id) { investments(first: 0) { totalCount edges { cursor } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }",
            json!({ "id": fund }),
        )
        .await;
    assert_eq!(
        page["fund"]["investments"],
        json!({ "totalCount": 230, "edges": [], "pageInfo": { "hasNextPage": true, "hasPreviousPage": false, "startCursor": null, "endCursor": null } })
    );
}

/// `fund(id)` / `investor(id)` and their first investments page cost one statement together;
/// the answer is the one the page's own statement gives (a second `investments` field turns
/// the shared statement off, which the comparison uses).
#[tokio::test]
async fn a_root_lookup_and_its_investments_page_cost_one_statement() {
    let app = TestApp::spawn().await;
    generate(&app, 20, 60, 1500, 1, 400).await;
    let fund: String = app
        .sql_scalar(
            "SELECT fund_id::text FROM investments GROUP BY fund_id ORDER BY count(*) DESC LIMIT 1",
        )
        .await;
    let investor: String = app
        .sql_scalar("SELECT investor_id::text FROM investments GROUP BY investor_id ORDER BY count(*) DESC LIMIT 1")
        .await;
    let empty = app
        .gql_ok(
            r#"mutation { createFund(input: { name: "Empty", vintageYear: 2020, targetSizeUsd: "1000.00" }) { id } }"#,
            json!({}),
        )
        .await["createFund"]["id"]
        .clone();
    let cases = [
        (
            "query($id: UUID!) { fund(id: $id) { name investments(first: 5) { nodes { amountUsd investor { name email } } } } }",
            json!({ "id": fund }),
        ),
        (
            "query($id: UUID!) { investor(id: $id) { investments(first: 100) { nodes { amountUsd fund { name } } } } }",
            json!({ "id": investor }),
        ),
        (
            "query($id: UUID!) { fund(id: $id) { id status investments { nodes { id } } } }",
            json!({ "id": empty }),
        ),
        (
            "query($id: UUID!) { fund(id: $id) { name investments(first: 5) { nodes { id } } } }",
            json!({ "id": Uuid::now_v7() }),
        ),
        // Without a page: the lookup alone, which is counted like every other statement.
        (
            "query($id: UUID!) { fund(id: $id) { id name vintageYear targetSizeUsd status createdAt updatedAt } }",
            json!({ "id": fund }),
        ),
    ];
    for (query, variables) in &cases {
        let (count, _) = statements_for(&app, query, variables.clone()).await;
        assert_eq!(count, 1, "{query}");
    }
    let data = app.gql_ok(cases[2].0, cases[2].1.clone()).await;
    assert_eq!(data["fund"]["id"], empty);
    assert_eq!(data["fund"]["status"], "FUNDRAISING");
    assert_eq!(data["fund"]["investments"]["nodes"], json!([]));
    let data = app.gql_ok(cases[3].0, cases[3].1.clone()).await;
    assert_eq!(data["fund"], Value::Null);
    // `createInvestment` is one statement too (the fund's lock, the checks, the insert and
    // its audit row), counted like the reads.
    let (count, body) = statements_for(
        &app,
        r#"mutation($f: UUID!, $i: UUID!) { createInvestment(input: { fundId: $f, investorId: $i, amountUsd: "10.00", investmentDate: "2024-01-02" }) { id amountUsd } }"#,
        json!({ "f": empty, "i": investor }),
    )
    .await;
    assert_eq!(count, 1);
    assert_eq!(body["data"]["createInvestment"]["amountUsd"], "10.00");

    // Every field of the root, every page position, both directions: as the page's own
    // statement answers.
    let fund_doc = |extra: &str| {
        format!(
            "query($id: UUID!, $first: Int, $after: String, $last: Int, $before: String) {{ fund(id: $id) {{ \
               id name vintageYear targetSizeUsd status createdAt updatedAt totalCommittedUsd {extra} \
               investments(first: $first, after: $after, last: $last, before: $before) {{ totalCount \
                 pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} \
                 edges {{ cursor node {{ id amountUsd investmentDate createdAt investor {{ id name investorType email createdAt updatedAt }} }} }} }} }} }}"
        )
    };
    let investor_doc = |extra: &str| {
        format!(
            "query($id: UUID!, $first: Int, $after: String, $last: Int, $before: String) {{ investor(id: $id) {{ \
               id name investorType email createdAt updatedAt {extra} \
               investments(first: $first, after: $after, last: $last, before: $before) {{ \
                 pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} \
                 nodes {{ id amountUsd fund {{ id name vintageYear targetSizeUsd status createdAt updatedAt }} }} }} }} }}"
        )
    };
    for (root, id, doc) in [
        ("fund", &fund, &fund_doc as &dyn Fn(&str) -> String),
        ("investor", &investor, &investor_doc),
    ] {
        let shared = doc("");
        let separate = doc("other: investments(first: 1) { pageInfo { hasNextPage } }");
        for forward in [true, false] {
            let mut cursor = Value::Null;
            for _ in 0..4 {
                let variables = if forward {
                    json!({ "id": id, "first": 7, "after": cursor })
                } else {
                    json!({ "id": id, "last": 7, "before": cursor })
                };
                let a = app.gql_ok(&shared, variables.clone()).await;
                let mut b = app.gql_ok(&separate, variables).await;
                b[root].as_object_mut().unwrap().remove("other");
                assert_eq!(a, b, "{root} forward {forward}");
                let info = &a[root]["investments"]["pageInfo"];
                cursor = info[if forward { "endCursor" } else { "startCursor" }].clone();
            }
        }
    }
    // Arguments the page refuses are reported by the field, as without the shared statement.
    let body = app
        .gql(
            "query($id: UUID!) { fund(id: $id) { name investments(first: 1000) { totalCount } } }",
            json!({ "id": fund }),
        )
        .await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(field(&body).as_deref(), Some("first"));
}

/// Every node of a JSON plan, depth first.
fn plan_nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            plan_nodes(child, out);
        }
    }
}

/// The first column of the one row `sql` returns.
async fn first_column<T: sea_orm::TryGetable>(conn: &impl ConnectionTrait, sql: &str) -> T {
    conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

/// The plan the server's own connections run `stmt` with: the app's pooled connections carry
/// `plan_cache_mode = force_generic_plan` (checked), so the statement is prepared with that
/// setting and explained through `EXECUTE`: the cached generic plan, made without the
/// parameters' values.
async fn explain(app: &TestApp, stmt: Statement) -> Vec<Value> {
    explain_with(app, stmt, "FORMAT JSON").await
}

/// [`explain`] with other `EXPLAIN` options (e.g. `ANALYZE, FORMAT JSON`: the plan run).
async fn explain_with(app: &TestApp, stmt: Statement, options: &str) -> Vec<Value> {
    use sea_orm::TransactionTrait;
    assert_eq!(
        app.pool_text("SHOW plan_cache_mode").await,
        "force_generic_plan"
    );
    let txn = app.sql_conn.begin().await.unwrap();
    txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    txn.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("PREPARE tb_explain AS {}", stmt.sql),
    ))
    .await
    .unwrap();
    // `EXECUTE` takes no bind parameters inside `EXPLAIN`: the arguments are written as
    // literals of the prepared statement's parameter types, in PostgreSQL's own text form.
    let types: Vec<String> = first_column(
        &txn,
        "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = 'tb_explain'",
    )
    .await;
    let texts: Vec<String> = if types.is_empty() {
        Vec::new()
    } else {
        // The types are written out: the pool caches statements by text, and the same text
        // with other parameter types would reuse a statement prepared for those.
        let casts: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(n, ty)| format!("${}::{ty}::text", n + 1))
            .collect();
        let row = txn
            .query_one_raw(Statement {
                sql: format!("SELECT ARRAY[{}]", casts.join(", ")),
                ..stmt.clone()
            })
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    };
    let arguments: Vec<String> = texts
        .iter()
        .zip(&types)
        .map(|(text, ty)| format!("'{}'::{ty}", text.replace('\'', "''")))
        .collect();
    let explained = Statement::from_string(
        DbBackend::Postgres,
        if arguments.is_empty() {
            format!("EXPLAIN ({options}) EXECUTE tb_explain")
        } else {
            format!(
                "EXPLAIN ({options}) EXECUTE tb_explain({})",
                arguments.join(", ")
            )
        },
    );
    let row = txn.query_one_raw(explained).await.unwrap().unwrap();
    let json: Value = row.try_get_by_index(0).unwrap();
    // Prepared statements outlive transactions.
    txn.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        "DEALLOCATE tb_explain",
    ))
    .await
    .unwrap();
    txn.rollback().await.unwrap();
    let mut nodes = Vec::new();
    plan_nodes(&json[0]["Plan"], &mut nodes);
    nodes
}

fn assert_index_seek_without_sort(nodes: &[Value], index: &str) {
    let types: Vec<&str> = nodes
        .iter()
        .map(|n| n["Node Type"].as_str().unwrap_or(""))
        .collect();
    assert!(
        !types.contains(&"Sort") && !types.contains(&"Incremental Sort"),
        "{types:?}"
    );
    // The related rows are probed by primary key as each page's rows are found: a Memoize
    // node's cache, which the batch form got when it joined them after the LATERAL, never
    // hits (a page rarely holds the same investor twice) and cost about a quarter of the
    // statement's time.
    assert!(!types.contains(&"Memoize"), "{types:?}");
    assert!(!types.contains(&"Hash Join"), "{types:?}");
    assert!(
        !nodes
            .iter()
            .any(|n| n["Node Type"] == "Seq Scan" && n["Relation Name"] == "investments"),
        "{types:?}"
    );
    // On the partitioned layout each partition's index is `<index>_pNN`.
    let partition_index = format!("{index}_p");
    assert!(
        nodes.iter().any(|n| n["Node Type"] == "Index Scan"
            && n["Index Name"]
                .as_str()
                .is_some_and(|name| name == index || name.starts_with(&partition_index))),
        "no index scan on {index}: {nodes:#?}"
    );
}

#[tokio::test]
async fn pages_of_a_fund_seek_the_index_without_sorting_on_a_million_investments() {
    let app = TestApp::spawn().await;
    generate(&app, 1000, 100_000, 1_000_000, 1, 100_000).await;
    let total: i64 = app.sql_scalar("SELECT count(*) FROM investments").await;
    assert!(total >= 1_000_000);
    let hot: String = app
        .sql_scalar("SELECT fund_id::text FROM investments GROUP BY fund_id HAVING count(*) >= 100000 LIMIT 1")
        .await;
    let hot = Uuid::parse_str(&hot).unwrap();
    let deep: String = app
        .sql_scalar(&format!(
            "SELECT investment_date::text || '/' || id::text FROM investments WHERE fund_id = '{hot}' \
             ORDER BY investment_date DESC, id DESC OFFSET 90000 LIMIT 1"
        ))
        .await;
    let (date, id) = deep.split_once('/').unwrap();
    let key = (date.parse().unwrap(), Uuid::parse_str(id).unwrap());
    let small: Vec<Uuid> = {
        let rows = app
            .sql_conn
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT id FROM funds ORDER BY id DESC LIMIT 50",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get_by_index::<Uuid>(0).unwrap())
            .collect()
    };
    let window = |direction, after, before| PageWindow {
        direction,
        limit: 20,
        after,
        before,
        probe: true,
    };
    let cases = [
        (
            "first page",
            vec![PageQuery {
                parent_id: hot,
                window: window(Direction::Forward, None, None),
            }],
        ),
        (
            "deep page",
            vec![PageQuery {
                parent_id: hot,
                window: window(Direction::Forward, Some(key), None),
            }],
        ),
        (
            "deep page backward",
            vec![PageQuery {
                parent_id: hot,
                window: window(Direction::Backward, None, Some(key)),
            }],
        ),
        (
            "fifty funds",
            small
                .iter()
                .chain(std::iter::once(&hot))
                .map(|id| PageQuery {
                    parent_id: *id,
                    window: window(Direction::Forward, None, None),
                })
                .collect(),
        ),
    ];
    for (name, queries) in cases {
        for include in [
            Include::default(),
            Include {
                investor: Some(ColumnSet::ALL),
                fund: Some(ColumnSet::ALL),
            },
        ] {
            let statements = page_statements(Parent::Fund, include, &queries);
            assert_eq!(statements.len(), 1, "{name}");
            for (_, stmt) in statements {
                let nodes = explain(&app, stmt).await;
                assert_index_seek_without_sort(&nodes, "ix_investments_fund_date");
            }
            // A fund with its page in one statement (`fund(id) { investments }`).
            if let [query] = queries.as_slice() {
                let stmt = parent_with_page_statement::<fund::Entity>(
                    Parent::Fund,
                    ColumnSet::ALL,
                    include,
                    query,
                )
                .unwrap();
                let nodes = explain(&app, stmt).await;
                assert_index_seek_without_sort(&nodes, "ix_investments_fund_date");
                assert_index_seek_without_sort(&nodes, "pk_funds");
            }
        }
    }
    // An investor's page seeks its own index.
    let investor: Uuid = {
        let text: String = app
            .sql_scalar("SELECT investor_id::text FROM investments LIMIT 1")
            .await;
        Uuid::parse_str(&text).unwrap()
    };
    let queries = [PageQuery {
        parent_id: investor,
        window: window(Direction::Forward, Some(key), None),
    }];
    for (_, stmt) in page_statements(Parent::Investor, Include::default(), &queries) {
        assert_index_seek_without_sort(&explain(&app, stmt).await, "ix_investments_investor_date");
    }
    // And through the API, the deep page answers with the rows after the cursor.
    let data = app
        .gql_ok(
            "query($id: UUID!) { fund(id: $id) { investments(first: 3) { totalCount nodes { investmentDate } } totalCommittedUsd investorCount } }",
            json!({ "id": hot.to_string() }),
        )
        .await;
    assert_eq!(data["fund"]["investments"]["totalCount"], 100_000);
}

/// The batch form (several parents, each with its own cursor in the `unnest` arrays) answers
/// exactly what the single-parent form answers for each parent alone, in both directions.
#[tokio::test]
async fn a_batch_with_a_cursor_per_parent_answers_as_each_parent_alone() {
    let app = TestApp::spawn().await;
    generate(&app, 12, 80, 1200, 2, 300).await;
    let funds: Vec<Uuid> = {
        let text: String = app
            .sql_scalar(
                "SELECT string_agg(fund_id::text, ',' ORDER BY n DESC, fund_id) FROM \
                 (SELECT fund_id, count(*) AS n FROM investments GROUP BY fund_id ORDER BY n DESC, fund_id LIMIT 4) t",
            )
            .await;
        text.split(',')
            .map(|id| Uuid::parse_str(id).unwrap())
            .collect()
    };
    assert_eq!(funds.len(), 4);
    // Each fund's own cursor: the key of its 5th, 9th, ... newest investment.
    let mut keys = Vec::new();
    for (i, fund) in funds.iter().enumerate() {
        let text: String = app
            .sql_scalar(&format!(
                "SELECT investment_date::text || '/' || id::text FROM investments WHERE fund_id = '{fund}' \
                 ORDER BY investment_date DESC, id DESC OFFSET {} LIMIT 1",
                4 + 4 * i
            ))
            .await;
        let (date, id) = text.split_once('/').unwrap();
        keys.push((date.parse().unwrap(), Uuid::parse_str(id).unwrap()));
    }
    let include = Include {
        investor: Some(ColumnSet::ALL),
        fund: None,
    };
    for direction in [Direction::Forward, Direction::Backward] {
        let queries: Vec<PageQuery> = funds
            .iter()
            .zip(&keys)
            .map(|(fund, key)| PageQuery {
                parent_id: *fund,
                window: PageWindow {
                    direction,
                    limit: 3,
                    after: (direction == Direction::Forward).then_some(*key),
                    before: (direction == Direction::Backward).then_some(*key),
                    probe: true,
                },
            })
            .collect();
        assert!(
            page_statements(Parent::Fund, include, &queries)[0]
                .1
                .sql
                .contains("unnest")
        );
        let batch = investment_pages(app.db(), Parent::Fund, include, &queries)
            .await
            .unwrap();
        for (query, from_batch) in queries.iter().zip(&batch) {
            let one = std::slice::from_ref(query);
            assert!(
                !page_statements(Parent::Fund, include, one)[0]
                    .1
                    .sql
                    .contains("unnest")
            );
            let alone = investment_pages(app.db(), Parent::Fund, include, one)
                .await
                .unwrap();
            assert_eq!(from_batch, &alone[0], "{direction:?}");
            assert_eq!(from_batch.items.len(), 3);
            assert!(from_batch.items.iter().all(|r| r.investor.is_some()));
        }
        // Different parents' pages are different rows.
        let ids: HashSet<Uuid> = batch
            .iter()
            .flat_map(|p| p.items.iter().map(|r| r.investment.id))
            .collect();
        assert_eq!(ids.len(), 12);
    }
}

/// A page row does not fetch its parent's column (it is the parent's id): both foreign keys of
/// every row still answer what the table holds, on fund pages and investor pages alike.
#[tokio::test]
async fn page_rows_carry_both_foreign_keys() {
    let app = TestApp::spawn().await;
    generate(&app, 10, 20, 200, 1, 50).await;
    let data = app
        .gql_ok(
            "{ funds(first: 3) { nodes { id investments(first: 5) { nodes { id fundId investorId } } } } \
               investors(first: 3) { nodes { id investments(first: 5) { nodes { id fundId investorId } } } } }",
            json!({}),
        )
        .await;
    let mut rows = 0;
    for (list, own) in [("funds", "fundId"), ("investors", "investorId")] {
        for parent in data[list]["nodes"].as_array().unwrap() {
            for row in parent["investments"]["nodes"].as_array().unwrap() {
                assert_eq!(row[own], parent["id"]);
                let stored: String = app
                    .sql_scalar(&format!(
                        "SELECT fund_id::text || '/' || investor_id::text FROM investments WHERE id = '{}'",
                        row["id"].as_str().unwrap()
                    ))
                    .await;
                let answered = format!(
                    "{}/{}",
                    row["fundId"].as_str().unwrap(),
                    row["investorId"].as_str().unwrap()
                );
                assert_eq!(stored, answered);
                rows += 1;
            }
        }
    }
    assert!(rows >= 10, "{rows}");
}

/// The design guide suggests a partial index for FUNDRAISING funds "if the filter uses it". The
/// status filter is a bound parameter in a generic plan, which cannot use a partial index's
/// predicate; the composite `ix_funds_status_id` already serves every status with a keyset seek
/// in id order, so no partial index was added (README, "Totals kept with the data"). This proves the seek.
#[tokio::test]
async fn the_status_filter_seeks_the_status_index_in_id_order() {
    use titanbay::{
        entity::fund::FundStatus,
        service::fund::{FundFilter, list_funds_statement},
    };
    let app = TestApp::spawn().await;
    app.sql(
        "INSERT INTO funds (id, name, vintage_year, target_size_usd, status, created_at, updated_at) \
         SELECT gen_random_uuid(), 'F' || n, 2000 + n % 25, 1000, \
                CASE WHEN n % 50 = 0 THEN 'Fundraising' WHEN n % 3 = 0 THEN 'Investing' ELSE 'Closed' END, \
                now(), now() \
         FROM generate_series(1, 50000) n; ANALYZE funds",
    )
    .await;
    for after in [None, Some(Uuid::now_v7())] {
        let filter = FundFilter {
            status: Some(FundStatus::Fundraising),
            ..FundFilter::default()
        };
        let window = PageWindow {
            direction: Direction::Forward,
            limit: 20,
            after,
            before: None,
            probe: true,
        };
        let nodes = explain(&app, list_funds_statement(&filter, &window)).await;
        let types: Vec<&str> = nodes
            .iter()
            .map(|n| n["Node Type"].as_str().unwrap_or(""))
            .collect();
        assert!(!types.contains(&"Sort"), "{types:?}");
        assert!(!types.contains(&"Seq Scan"), "{types:?}");
        assert!(
            nodes
                .iter()
                .any(|n| n["Index Name"] == "ix_funds_status_id"),
            "{nodes:#?}"
        );
    }
}

/// Partitions of `investments` a run plan scanned, and how many scans it made of them.
fn partitions_scanned(nodes: &[Value]) -> (HashSet<String>, u64) {
    let scans: Vec<&Value> = nodes
        .iter()
        .filter(|n| {
            n["Relation Name"]
                .as_str()
                .is_some_and(|r| r.starts_with("investments_p"))
                && n["Actual Loops"].as_u64().unwrap_or(0) > 0
        })
        .collect();
    let names = scans
        .iter()
        .filter_map(|n| n["Relation Name"].as_str().map(str::to_owned))
        .collect();
    let loops = scans
        .iter()
        .map(|n| n["Actual Loops"].as_u64().unwrap_or(0))
        .sum();
    (names, loops)
}

/// On the partitioned layout every fund-keyed statement of the hot paths reads one partition
/// per fund: a fund's page, fifty funds' pages in one statement (one partition per parent),
/// a fund with its page. Lookups by investment id and an investor's investments cannot prune:
/// they probe every partition's index (measured in bench/README.md).
#[tokio::test]
async fn fund_keyed_statements_read_one_partition_per_fund() {
    let app = TestApp::spawn().await;
    let converted = titanbay::service::partition::partition_investments(app.db(), 16)
        .await
        .unwrap();
    assert!(matches!(
        converted,
        titanbay::service::partition::Converted::Now { .. }
            | titanbay::service::partition::Converted::Already
    ));
    generate(&app, 100, 1000, 20_000, 1, 2_000).await;
    let funds: Vec<Uuid> = {
        let text: Vec<String> = {
            use sea_orm::ConnectionTrait;
            app.sql_conn
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT DISTINCT fund_id::text FROM investments LIMIT 50",
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap())
                .collect()
        };
        text.iter().map(|t| Uuid::parse_str(t).unwrap()).collect()
    };
    let window = PageWindow {
        direction: Direction::Forward,
        limit: 20,
        after: None,
        before: None,
        probe: true,
    };
    let one = [PageQuery {
        parent_id: funds[0],
        window: window.clone(),
    }];
    for (_, stmt) in page_statements(Parent::Fund, Include::default(), &one) {
        let nodes = explain_with(&app, stmt, "ANALYZE, FORMAT JSON").await;
        let (partitions, loops) = partitions_scanned(&nodes);
        assert_eq!(partitions.len(), 1, "{partitions:?}");
        assert_eq!(loops, 1);
    }
    let stmt = parent_with_page_statement::<fund::Entity>(
        Parent::Fund,
        ColumnSet::ALL,
        Include::default(),
        &one[0],
    )
    .unwrap();
    let (partitions, _) =
        partitions_scanned(&explain_with(&app, stmt, "ANALYZE, FORMAT JSON").await);
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    let many: Vec<PageQuery> = funds
        .iter()
        .map(|id| PageQuery {
            parent_id: *id,
            window: window.clone(),
        })
        .collect();
    for (_, stmt) in page_statements(Parent::Fund, Include::default(), &many) {
        let nodes = explain_with(&app, stmt, "ANALYZE, FORMAT JSON").await;
        let (_, loops) = partitions_scanned(&nodes);
        assert_eq!(loops, funds.len() as u64, "one partition scan per fund");
    }
}
