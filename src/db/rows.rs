//! Reading rows by position, and the column subsets a statement fetches.
//!
//! The server's statements are its own and fixed, so the position and type of every column is
//! known: rows are read by position (no name lookups) and the hot types (`NUMERIC`, `DATE`,
//! `TIMESTAMPTZ`) are decoded straight from their binary form ([`super::numeric`],
//! [`super::temporal`]), falling back to sqlx's decoders for anything unusual. A row of a related
//! table can be fetched with only some of its columns ([`ColumnSet`]); the entity decoders here
//! are the one place that knows each entity's column order, and their select lists come from the
//! same entity definition, so the two cannot disagree (a test reads every column of every
//! entity both ways).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveEnum, DbErr, EntityTrait, IdenStatic, Iterable,
    sqlx::{self, Row as _, ValueRef as _, postgres::PgRow, postgres::PgValueFormat},
};
use uuid::Uuid;

use crate::entity::{audit_event, fund, investment, investor};

/// Some columns of one entity, by their position in the entity's `Column` enum.
///
/// A statement fetching a related row reads only the columns its client selected; the others
/// hold placeholder values in the decoded model. The GraphQL layer derives the set from the
/// declarations of exactly the fields it will resolve, so nothing reads a placeholder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ColumnSet(u64);

impl ColumnSet {
    /// Every column.
    pub const ALL: ColumnSet = ColumnSet(u64::MAX);

    /// No column (the id, which the referencing row carries, is always known).
    pub const NONE: ColumnSet = ColumnSet(0);

    /// The set with `column` added (a `Column` variant of the entity, as its discriminant).
    #[must_use]
    pub const fn with(self, column: u32) -> ColumnSet {
        // Entities have far fewer than 64 columns; a test checks every entity.
        ColumnSet(self.0 | (1 << column))
    }

    /// Whether column number `column` is in the set.
    pub const fn contains(self, column: u32) -> bool {
        column < 64 && self.0 & (1 << column) != 0
    }

    /// Both sets' columns.
    #[must_use]
    pub const fn union(self, other: ColumnSet) -> ColumnSet {
        ColumnSet(self.0 | other.0)
    }

    /// The set without the id (column 0 of every entity): a related row's id is known from the
    /// row that references it, and never fetched again.
    #[must_use]
    pub const fn without_id(self) -> ColumnSet {
        ColumnSet(self.0 & !1)
    }
}

/// `, alias.column AS alias_column` for each column of entity `E` in `set`, in column order:
/// the select list that [`Columns`]'s entity decoders read from `alias_…` onwards.
pub fn select_list<E: EntityTrait>(out: &mut String, alias: &str, set: ColumnSet) {
    for (i, column) in E::Column::iter().enumerate() {
        if set.contains(i as u32) {
            let name = column.as_str();
            out.push_str(&format!(", {alias}.{name} AS {alias}_{name}"));
        }
    }
}

/// `, source.alias_column` for each column of `E` in `set` (the names [`select_list`] gives).
pub fn forward_list<E: EntityTrait>(out: &mut String, source: &str, alias: &str, set: ColumnSet) {
    for (i, column) in E::Column::iter().enumerate() {
        if set.contains(i as u32) {
            out.push_str(&format!(", {source}.{alias}_{}", column.as_str()));
        }
    }
}

/// How many columns of `E` a set holds.
pub fn width<E: EntityTrait>(set: ColumnSet) -> usize {
    (0..E::Column::iter().count())
        .filter(|i| set.contains(*i as u32))
        .count()
}

/// Typed access to a row's columns by position, counted from `base` (a row may hold several
/// entities' columns one after the other).
pub struct Columns<'r> {
    row: &'r PgRow,
    base: usize,
}

impl<'r> Columns<'r> {
    /// The columns of `row` from position `base`.
    pub fn of(row: &'r PgRow, base: usize) -> Columns<'r> {
        Columns { row, base }
    }

    /// The same row's columns from `by` positions further on.
    pub fn shifted(&self, by: usize) -> Columns<'r> {
        Columns {
            row: self.row,
            base: self.base + by,
        }
    }

    /// Column `index` (from the base), decoded by sqlx without its per-value type-name check
    /// (the statement is ours, so the type is known; a wrong type still fails to decode).
    pub fn get<T>(&self, index: usize) -> Result<T, DbErr>
    where
        T: for<'a> sqlx::Decode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        let index = self.base + index;
        self.row
            .try_get_unchecked(index)
            .map_err(|e| DbErr::Type(format!("column {index}: {e}")))
    }

    /// The binary bytes of column `index` when it is of type `oid`, not null and in binary form.
    fn binary(&self, index: usize, oid: u32) -> Option<&'r [u8]> {
        let raw = self.row.try_get_raw(self.base + index).ok()?;
        if raw.is_null()
            || raw.format() != PgValueFormat::Binary
            || raw.type_info().oid().map(|o| o.0) != Some(oid)
        {
            return None;
        }
        raw.as_bytes().ok()
    }

    /// A `NUMERIC` column (decoded directly in the common case, see [`super::numeric`]).
    pub fn decimal(&self, index: usize) -> Result<Decimal, DbErr> {
        match self
            .binary(index, super::numeric::NUMERIC_OID)
            .and_then(super::numeric::decode_binary)
        {
            Some(value) => Ok(value),
            None => self.get(index),
        }
    }

    /// A `DATE` column (decoded directly in the common case, see [`super::temporal`]).
    pub fn date(&self, index: usize) -> Result<NaiveDate, DbErr> {
        match self
            .binary(index, super::temporal::DATE_OID)
            .and_then(super::temporal::decode_date)
        {
            Some(date) => Ok(date),
            None => self.get(index),
        }
    }

    /// A `TIMESTAMPTZ` column (decoded directly in the common case).
    pub fn timestamp(&self, index: usize) -> Result<DateTime<Utc>, DbErr> {
        match self
            .binary(index, super::temporal::TIMESTAMPTZ_OID)
            .and_then(super::temporal::decode_timestamptz)
        {
            Some(at) => Ok(at),
            None => self.get(index),
        }
    }
}

/// Reads the columns of a set one after the other, leaving placeholders for the others.
struct Cursor<'c, 'r> {
    columns: &'c Columns<'r>,
    set: ColumnSet,
    at: usize,
}

impl Cursor<'_, '_> {
    /// Whether `column` was fetched; if so, `read` decodes it at the next position.
    fn next<T>(
        &mut self,
        column: u32,
        placeholder: T,
        read: impl FnOnce(&Columns<'_>, usize) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        if !self.set.contains(column) {
            return Ok(placeholder);
        }
        let value = read(self.columns, self.at)?;
        self.at += 1;
        Ok(value)
    }
}

fn text(c: &Columns<'_>, i: usize) -> Result<String, DbErr> {
    c.get(i)
}

const EPOCH: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// A fund with `id` whose columns of `set` (without `id`) start at position 0 of `columns`.
pub fn fund(columns: &Columns<'_>, id: Uuid, set: ColumnSet) -> Result<fund::Model, DbErr> {
    use fund::Column as C;
    let mut c = Cursor {
        columns,
        set: set.without_id(),
        at: 0,
    };
    Ok(fund::Model {
        id,
        name: c.next(C::Name as u32, String::new(), text)?,
        vintage_year: c.next(C::VintageYear as u32, 0, |c, i| c.get(i))?,
        target_size_usd: c.next(C::TargetSizeUsd as u32, Decimal::ZERO, |c, i| c.decimal(i))?,
        status: c.next(C::Status as u32, fund::FundStatus::Fundraising, |c, i| {
            fund::FundStatus::try_from_value(&text(c, i)?)
        })?,
        created_at: c.next(C::CreatedAt as u32, EPOCH, |c, i| c.timestamp(i))?,
        updated_at: c.next(C::UpdatedAt as u32, EPOCH, |c, i| c.timestamp(i))?,
    })
}

/// An investor with `id` whose columns of `set` (without `id`) start at position 0.
pub fn investor(columns: &Columns<'_>, id: Uuid, set: ColumnSet) -> Result<investor::Model, DbErr> {
    use investor::Column as C;
    let mut c = Cursor {
        columns,
        set: set.without_id(),
        at: 0,
    };
    Ok(investor::Model {
        id,
        name: c.next(C::Name as u32, String::new(), text)?,
        investor_type: c.next(
            C::InvestorType as u32,
            investor::InvestorType::Individual,
            |c, i| investor::InvestorType::try_from_value(&text(c, i)?),
        )?,
        email: c.next(C::Email as u32, String::new(), text)?,
        created_at: c.next(C::CreatedAt as u32, EPOCH, |c, i| c.timestamp(i))?,
        updated_at: c.next(C::UpdatedAt as u32, EPOCH, |c, i| c.timestamp(i))?,
    })
}

/// An investment (every column, `id` first) from position 0.
pub fn investment(columns: &Columns<'_>) -> Result<investment::Model, DbErr> {
    Ok(investment::Model {
        id: columns.get(0)?,
        fund_id: columns.get(1)?,
        investor_id: columns.get(2)?,
        amount_usd: columns.decimal(3)?,
        investment_date: columns.date(4)?,
        created_at: columns.timestamp(5)?,
    })
}

/// An audit event (every column, in entity order) from position 0.
pub fn audit_event(columns: &Columns<'_>) -> Result<audit_event::Model, DbErr> {
    Ok(audit_event::Model {
        id: columns.get(0)?,
        occurred_at: columns.timestamp(1)?,
        subject: columns.get(2)?,
        operation: columns.get(3)?,
        entity: columns.get(4)?,
        entity_id: columns.get(5)?,
        related_ids: columns.get(6)?,
        request_id: columns.get(7)?,
    })
}

/// Every column of `E` except `id`, in entity order, as `alias.column` (for fetching a whole
/// row whose id is already known): with [`fund`]/[`investor`] and [`ColumnSet::ALL`].
pub fn all_but_id<E: EntityTrait>(alias: &str) -> String {
    E::Column::iter()
        .map(|c| c.as_str())
        .filter(|name| *name != "id")
        .map(|name| format!("{alias}.{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every column of `E`, in entity order (for [`investment`] and [`audit_event`]).
pub fn all_columns<E: EntityTrait>(alias: &str) -> String {
    E::Column::iter()
        .map(|c| format!("{alias}.{}", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_fits_a_column_set_and_starts_with_its_id() {
        fn check<E: EntityTrait>() {
            let names: Vec<&str> = E::Column::iter().map(|c| c.as_str()).collect();
            assert!(names.len() < 64, "{names:?}");
            assert_eq!(names.first(), Some(&"id"), "{names:?}");
        }
        check::<fund::Entity>();
        check::<investor::Entity>();
        check::<investment::Entity>();
        check::<audit_event::Entity>();
    }

    #[test]
    fn sets_hold_what_was_added() {
        let set = ColumnSet::NONE.with(1).with(3);
        assert!(set.contains(1) && set.contains(3) && !set.contains(2));
        assert!(!set.contains(64));
        assert_eq!(set.union(ColumnSet::NONE.with(2)), set.with(2));
        assert_eq!(width::<fund::Entity>(set), 2);
        let mut list = String::new();
        select_list::<fund::Entity>(&mut list, "f", set);
        assert_eq!(
            list,
            ", f.name AS f_name, f.target_size_usd AS f_target_size_usd"
        );
    }
}
