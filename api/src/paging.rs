//! Cursor pagination parameters, shared by every list route: `limit` (1 to 100) and
//! `starting_after` (the id of the last object of the previous page: the kind's prefix and an
//! ObjectId's 24 hex digits, so ids sort by creation and a cursor is checked before it reaches
//! a query). One parser, so every list names the same mistakes the same way.

use crate::problem::FieldError;

/// `limit` and `starting_after` of one list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Objects per page, 1 to 100.
    pub limit: i64,
    /// Only objects older than this id.
    pub starting_after: Option<String>,
}

/// What a list's ids look like: `pay_…`, `cus_…`, `evt_…`.
#[derive(Debug, Clone, Copy)]
pub struct IdKind {
    /// The prefix before the hex digits.
    pub prefix: &'static str,
    /// The message for a malformed cursor, e.g. "must be a payment id".
    pub message: &'static str,
}

impl Page {
    /// A page of `default_limit` from the newest object.
    pub fn new(default_limit: i64) -> Page {
        Page {
            limit: default_limit,
            starting_after: None,
        }
    }

    /// Reads `key=value` if `key` is `limit` or `starting_after` (a bad value becomes an error
    /// naming it) and returns true; returns false for any other key.
    pub fn take(
        &mut self,
        key: &str,
        value: &str,
        ids: IdKind,
        errors: &mut Vec<FieldError>,
    ) -> bool {
        match key {
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => self.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 100",
                )),
            },
            "starting_after" => {
                if is_id(value, ids.prefix) {
                    self.starting_after = Some(value.to_owned());
                } else {
                    errors.push(FieldError::new("starting_after", ids.message));
                }
            }
            _ => return false,
        }
        true
    }
}

/// Whether `s` is `prefix` and 24 hex digits.
pub fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAY: IdKind = IdKind {
        prefix: "pay_",
        message: "must be a payment id",
    };

    #[test]
    fn limits_and_cursors_are_checked() {
        let mut errors = Vec::new();
        let mut p = Page::new(10);
        assert!(p.take("limit", "100", PAY, &mut errors));
        assert!(p.take(
            "starting_after",
            "pay_6b0000000000000000000001",
            PAY,
            &mut errors
        ));
        assert!(errors.is_empty());
        assert_eq!(p.limit, 100);
        for (k, v) in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("starting_after", "cus_6b0000000000000000000001"),
            ("starting_after", "pay_6b00"),
            ("starting_after", "pay_6b000000000000000000000g"),
        ] {
            let mut errors = Vec::new();
            assert!(p.take(k, v, PAY, &mut errors));
            assert_eq!(errors.len(), 1, "{k}={v}");
        }
        assert!(!p.take("status", "x", PAY, &mut errors));
    }
}
