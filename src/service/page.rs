//! Keyset pages: which slice of an ordered list to read, and what was read.
//!
//! A page is read by seeking to a position (never by OFFSET) and fetching one row more than
//! asked, which tells whether rows follow without a second query.

/// Which end the page starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `first` (with an optional `after`): the start of the range, in list order.
    Forward,
    /// `last` (with an optional `before`): the end of the range, read in reverse.
    Backward,
}

/// A slice of an ordered list: up to `limit` rows strictly between `after` and `before`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageWindow<K> {
    /// Which end to take the rows from.
    pub direction: Direction,
    /// How many rows to return (0 is allowed: it only answers whether rows exist).
    pub limit: u32,
    /// Only rows after this position (exclusive).
    pub after: Option<K>,
    /// Only rows before this position (exclusive).
    pub before: Option<K>,
    /// Whether to fetch one row more than the page, to know whether more rows follow (Relay's
    /// `hasNextPage` paging forward, `hasPreviousPage` backward). Without it (when the client
    /// does not select `pageInfo`) a page of fifty funds' investments reads a tenth fewer rows,
    /// and that flag of the page is false whatever follows: it must not be read.
    pub probe: bool,
}

impl<K> PageWindow<K> {
    /// Rows to fetch: the page, and one more when [`PageWindow::probe`] asks.
    pub fn fetch_limit(&self) -> u64 {
        u64::from(self.limit) + u64::from(self.probe)
    }

    /// Turns the rows fetched (in fetch order, at most [`PageWindow::fetch_limit`]; more
    /// are dropped) into a page in list order.
    pub fn into_page<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let more = self.probe && rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        match self.direction {
            Direction::Forward => Page {
                items: rows,
                has_next_page: more,
                has_previous_page: self.after.is_some(),
            },
            Direction::Backward => {
                rows.reverse();
                Page {
                    items: rows,
                    has_next_page: self.before.is_some(),
                    has_previous_page: more,
                }
            }
        }
    }
}

/// One page of rows in list order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Whether rows follow the last one (Relay `hasNextPage`).
    pub has_next_page: bool,
    /// Whether rows precede the first one (Relay `hasPreviousPage`).
    pub has_previous_page: bool,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            items: Vec::new(),
            has_next_page: false,
            has_previous_page: false,
        }
    }
}

/// Escapes `%`, `_` and `\` so a user's text matches literally inside a LIKE pattern.
pub fn like_contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(
        direction: Direction,
        limit: u32,
        after: Option<u8>,
        before: Option<u8>,
    ) -> PageWindow<u8> {
        PageWindow {
            direction,
            limit,
            after,
            before,
            probe: true,
        }
    }

    #[test]
    fn a_forward_page_reports_more_rows_from_the_extra_row() {
        let page = window(Direction::Forward, 2, Some(0), None).into_page(vec![1, 2, 3]);
        assert_eq!(page.items, vec![1, 2]);
        assert!(page.has_next_page && page.has_previous_page);
    }

    #[test]
    fn a_backward_page_is_returned_in_list_order() {
        let page = window(Direction::Backward, 2, None, None).into_page(vec![9, 8, 7]);
        assert_eq!(page.items, vec![8, 9]);
        assert!(page.has_previous_page && !page.has_next_page);
    }

    #[test]
    fn an_empty_page_still_says_whether_rows_follow() {
        let page = window(Direction::Forward, 0, None, None).into_page(vec![1]);
        assert!(page.items.is_empty() && page.has_next_page);
    }

    #[test]
    fn without_the_probe_the_page_is_fetched_exactly() {
        let mut w = window(Direction::Forward, 2, None, None);
        w.probe = false;
        assert_eq!(w.fetch_limit(), 2);
        // A batch statement shared with a probing sibling may bring the extra row: dropped.
        let page = w.into_page(vec![1, 2, 3]);
        assert_eq!(page.items, vec![1, 2]);
    }

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
