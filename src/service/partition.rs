//! Hash partitioning of `investments` by `fund_id` (opt in): [`partition_investments`]
//! converts the table in place, in one transaction, and proves it lost nothing.
//!
//! The partitioned layout differs from the plain one in its keys only: the primary key becomes
//! `(fund_id, id)` (a unique index on a partitioned table must contain the partition key), and
//! `ix_investments_id` serves lookups by id, which cannot prune and probe every partition's
//! index. Every other index and constraint is recreated under its own name from its
//! definition, so plans and error mapping (constraint names) stay the same.
//!
//! **Not online.** The table is locked (`ACCESS EXCLUSIVE`) from the start of the copy to the
//! commit: reads and writes of investments wait for it (the server's statements then time out
//! after `DB_STATEMENT_TIMEOUT_MS` and requests answer `REQUEST_TIMEOUT`). Run it in a
//! maintenance window; the README gives its measured duration.

use sea_orm::{DbBackend, Statement};

use crate::{
    db::{Db, Tx, rows::Columns},
    error::AppError,
};

/// The default number of partitions (the design guide's).
pub const DEFAULT_PARTITIONS: u32 = 64;

/// Most partitions accepted.
pub const MAX_PARTITIONS: u32 = 1024;

/// What a conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    /// The table was converted; it holds this many rows, as before.
    Now {
        /// Rows copied (and checked).
        rows: i64,
        /// Partitions created.
        partitions: u32,
    },
    /// The table was partitioned already; nothing changed.
    Already,
}

fn sql(text: impl Into<String>) -> Statement {
    Statement::from_string(DbBackend::Postgres, text.into())
}

/// Rows, and a checksum of every column of every row (exact: a sum of 64-bit hashes as
/// `numeric`), of `investments`.
async fn fingerprint(tx: &mut Tx<'_>) -> Result<(i64, String), AppError> {
    let rows = tx
        .fetch_all(sql("SELECT count(*), coalesce(sum(hashtextextended(\
                 id::text || fund_id::text || investor_id::text || amount_usd::text || \
                 investment_date::text || created_at::text, 0)::numeric), 0)::text \
             FROM investments"))
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| AppError::Internal("count(*) returned no row".to_owned()))?;
    let columns = Columns::of(row, 0);
    Ok((columns.get(0)?, columns.get(1)?))
}

/// Converts `investments` to `partitions` hash partitions by `fund_id`, in one transaction:
/// lock, copy, recreate keys, indexes and foreign keys under their names, compare the row
/// count and checksum, commit (or roll back, changing nothing).
pub async fn partition_investments(db: &Db, partitions: u32) -> Result<Converted, AppError> {
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(AppError::bad_input(
            "partitions",
            format!("the number of partitions is 1 to {MAX_PARTITIONS}"),
        ));
    }
    let mut tx = db.begin(None).await?;
    let result = convert(&mut tx, partitions).await;
    tx.finish(result).await
}

async fn convert(tx: &mut Tx<'_>, partitions: u32) -> Result<Converted, AppError> {
    // A copy of a large table takes longer than a request's statement may.
    tx.execute(sql("SET LOCAL statement_timeout = 0")).await?;
    tx.execute(sql("LOCK TABLE investments IN ACCESS EXCLUSIVE MODE"))
        .await?;
    let kind = tx
        .fetch_optional(sql(
            "SELECT relkind::text FROM pg_class WHERE oid = 'investments'::regclass",
        ))
        .await?
        .map(|row| Columns::of(&row, 0).get::<String>(0))
        .transpose()?;
    if kind.as_deref() == Some("p") {
        return Ok(Converted::Already);
    }
    let before = fingerprint(tx).await?;
    // Every index but the primary key, and every foreign key, as PostgreSQL writes them.
    let indexes: Vec<String> = tx
        .fetch_all(sql("SELECT pg_get_indexdef(indexrelid) FROM pg_index \
             WHERE indrelid = 'investments'::regclass AND NOT indisprimary ORDER BY indexrelid"))
        .await?
        .iter()
        .map(|row| Columns::of(row, 0).get(0))
        .collect::<Result<_, _>>()?;
    let foreign_keys: Vec<(String, String)> = tx
        .fetch_all(sql(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = 'investments'::regclass AND contype = 'f' ORDER BY conname",
        ))
        .await?
        .iter()
        .map(|row| {
            let c = Columns::of(row, 0);
            Ok((c.get(0)?, c.get(1)?))
        })
        .collect::<Result<_, sea_orm::DbErr>>()?;

    tx.execute(sql("CREATE TABLE investments_partitioned \
         (LIKE investments INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY HASH (fund_id)"))
        .await?;
    let width = partitions.saturating_sub(1).to_string().len().max(2);
    for remainder in 0..partitions {
        tx.execute(sql(format!(
            "CREATE TABLE investments_p{remainder:0width$} PARTITION OF investments_partitioned \
             FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"
        )))
        .await?;
    }
    tx.execute(sql(
        "INSERT INTO investments_partitioned SELECT * FROM investments",
    ))
    .await?;
    tx.execute(sql("DROP TABLE investments")).await?;
    tx.execute(sql(
        "ALTER TABLE investments_partitioned RENAME TO investments",
    ))
    .await?;
    tx.execute(sql(
        "ALTER TABLE investments ADD CONSTRAINT pk_investments PRIMARY KEY (fund_id, id)",
    ))
    .await?;
    tx.execute(sql("CREATE INDEX ix_investments_id ON investments (id)"))
        .await?;
    for definition in &indexes {
        // The definitions name `public.investments`, now the partitioned table.
        tx.execute(sql(definition.clone())).await?;
    }
    for (name, definition) in &foreign_keys {
        tx.execute(sql(format!(
            "ALTER TABLE investments ADD CONSTRAINT {} {definition}",
            crate::db::quote_ident(name)
        )))
        .await?;
    }
    // Each partition's index named after its parent and partition (`ix_investments_fund_date_p07`)
    // instead of PostgreSQL's generated names, so plans read plainly.
    let children: Vec<(String, String)> = tx
        .fetch_all(sql("SELECT child.relname::text, parent.relname || '_' || \
                    substring(part.relname FROM 'p[0-9]+$') \
             FROM pg_inherits inh \
             JOIN pg_class child ON child.oid = inh.inhrelid \
             JOIN pg_class parent ON parent.oid = inh.inhparent \
             JOIN pg_index ix ON ix.indexrelid = child.oid \
             JOIN pg_class part ON part.oid = ix.indrelid \
             WHERE inh.inhparent IN \
                   (SELECT indexrelid FROM pg_index WHERE indrelid = 'investments'::regclass)"))
        .await?
        .iter()
        .map(|row| {
            let c = Columns::of(row, 0);
            Ok((c.get(0)?, c.get(1)?))
        })
        .collect::<Result<_, sea_orm::DbErr>>()?;
    for (generated, name) in &children {
        tx.execute(sql(format!(
            "ALTER INDEX {} RENAME TO {}",
            crate::db::quote_ident(generated),
            crate::db::quote_ident(name)
        )))
        .await?;
    }
    let after = fingerprint(tx).await?;
    if after != before {
        return Err(AppError::Internal(format!(
            "the partitioned copy differs from the table (rows and checksum {before:?} before, \
             {after:?} after); nothing was changed"
        )));
    }
    tx.execute(sql("ANALYZE investments")).await?;
    Ok(Converted::Now {
        rows: before.0,
        partitions,
    })
}
