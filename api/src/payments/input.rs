//! Validation of payment bodies and list queries; a 422 names every field at fault.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::currency::minor_units;
use crate::paging::{IdKind, Page};
use crate::problem::{FieldError, Problem};

/// The largest amount, in minor units (a 12-digit figure: 999,999,999.99 in a 2-digit currency).
pub const MAX_AMOUNT: i64 = 99_999_999_999;
const MAX_METADATA_KEYS: usize = 20;

/// A validated `POST /v1/payments` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// Minor units, positive.
    pub amount: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// The customer reference.
    pub customer: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// String keys and values.
    pub metadata: Vec<(String, String)>,
}

fn text(v: &Value, field: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    match v.as_str() {
        Some(s)
            if !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control) =>
        {
            Some(s.to_owned())
        }
        _ => {
            errors.push(FieldError::new(
                field,
                format!("must be a string of 1 to {max} printable characters"),
            ));
            None
        }
    }
}

/// Validates a payment body.
pub fn new_payment(body: &Map<String, Value>) -> Result<NewPayment, Problem> {
    let mut errors = Vec::new();
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "amount" | "currency" | "customer" | "description" | "metadata"
        ) {
            errors.push(FieldError::new(key.as_str(), "is not a payment field"));
        }
    }
    let amount = match body.get("amount") {
        Some(v) => match v.as_i64() {
            Some(n) if (1..=MAX_AMOUNT).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "amount",
                    format!("must be a whole number of minor units from 1 to {MAX_AMOUNT} (no decimals, no strings)"),
                ));
                0
            }
        },
        None => {
            errors.push(FieldError::new("amount", "is required"));
            0
        }
    };
    let currency = match body.get("currency").and_then(Value::as_str) {
        Some(c) if minor_units(&c.to_ascii_uppercase()).is_some() && c.len() == 3 => {
            c.to_ascii_uppercase()
        }
        Some(_) => {
            errors.push(FieldError::new(
                "currency",
                "must be a circulating ISO 4217 currency code such as EUR",
            ));
            String::new()
        }
        None => {
            errors.push(FieldError::new("currency", "is required"));
            String::new()
        }
    };
    let customer = body
        .get("customer")
        .filter(|v| !v.is_null())
        .and_then(|v| text(v, "customer", 64, &mut errors));
    let description = body
        .get("description")
        .filter(|v| !v.is_null())
        .and_then(|v| text(v, "description", 500, &mut errors));
    let mut metadata = Vec::new();
    match body.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            if m.len() > MAX_METADATA_KEYS {
                errors.push(FieldError::new(
                    "metadata",
                    format!("at most {MAX_METADATA_KEYS} keys"),
                ));
            }
            for (k, v) in m {
                let field = format!("metadata.{k}");
                let key_ok = (1..=40).contains(&k.chars().count())
                    && !k.starts_with('$')
                    && !k.contains('.')
                    && !k.chars().any(char::is_control);
                if !key_ok {
                    errors.push(FieldError::new(
                        field,
                        "keys are 1 to 40 characters, without '$' at the start, '.' or control characters",
                    ));
                } else if let Some(s) = text(v, &field, 500, &mut errors) {
                    metadata.push((k.clone(), s));
                }
            }
        }
        Some(_) => errors.push(FieldError::new("metadata", "must be an object of strings")),
    }
    if errors.is_empty() {
        Ok(NewPayment {
            amount,
            currency,
            customer,
            description,
            metadata,
        })
    } else {
        Err(Problem::validation(errors))
    }
}

/// A validated `GET /v1/payments` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// 1–100 (default 10).
    pub limit: i64,
    /// Return payments older than this id.
    pub starting_after: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// `created[gte]`, Unix milliseconds.
    pub created_gte: Option<i64>,
    /// `created[lte]`, Unix milliseconds.
    pub created_lte: Option<i64>,
}

/// A time bound: Unix seconds or RFC 3339.
fn instant(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    bson::DateTime::parse_rfc3339_str(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Validates the list query.
pub fn list_query(q: &HashMap<String, String>) -> Result<ListQuery, Problem> {
    let mut errors = Vec::new();
    let mut out = ListQuery {
        limit: 10,
        ..ListQuery::default()
    };
    let mut page = Page::new(out.limit);
    for (k, v) in q {
        if page.take(k, v, PAYMENT_IDS, &mut errors) {
            continue;
        }
        match k.as_str() {
            "status" => {
                if super::Status::parse(v).is_some() {
                    out.status = Some(v.clone());
                } else {
                    errors.push(FieldError::new(
                        "status",
                        "must be pending, succeeded, failed or refunded",
                    ));
                }
            }
            "created[gte]" | "created[lte]" => match instant(v) {
                Some(ms) => {
                    if k == "created[gte]" {
                        out.created_gte = Some(ms);
                    } else {
                        out.created_lte = Some(ms);
                    }
                }
                None => errors.push(FieldError::new(
                    k.as_str(),
                    "must be Unix seconds or an RFC 3339 time",
                )),
            },
            other => errors.push(FieldError::new(other, "is not a list parameter")),
        }
    }
    out.limit = page.limit;
    out.starting_after = page.starting_after;
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Problem::validation(errors))
    }
}

/// Payment ids as a list cursor.
const PAYMENT_IDS: IdKind = IdKind {
    prefix: "pay_",
    message: "must be a payment id",
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn amounts_are_whole_minor_units() {
        let ok = new_payment(&map(json!({ "amount": 1050, "currency": "eur" }))).expect("valid");
        assert_eq!((ok.amount, ok.currency.as_str()), (1050, "EUR"));
        for bad in [
            json!(10.5),
            json!("1050"),
            json!(0),
            json!(-5),
            json!(100_000_000_000_i64),
        ] {
            let e = new_payment(&map(json!({ "amount": bad, "currency": "EUR" })));
            assert!(e.is_err(), "{bad}");
        }
        assert!(new_payment(&map(json!({ "amount": 1, "currency": "XAU" }))).is_err());
    }

    #[test]
    fn metadata_keys_cannot_be_operators() {
        assert!(
            new_payment(&map(
                json!({ "amount": 1, "currency": "EUR", "metadata": { "$where": "x" } })
            ))
            .is_err()
        );
        assert!(
            new_payment(&map(
                json!({ "amount": 1, "currency": "EUR", "metadata": { "a.b": "x" } })
            ))
            .is_err()
        );
        assert!(
            new_payment(&map(
                json!({ "amount": 1, "currency": "EUR", "metadata": { "order": 5 } })
            ))
            .is_err()
        );
    }
}
