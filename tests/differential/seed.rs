//! The seeded data: three tenants (`bank1` a prefix of `bank10`) in every combination of field
//! shapes — numeric types, null/missing, arrays, nested documents, dates — with every kind of
//! liveness, plus documents whose `tenantId` is not a plain string.

use bson::{Bson, DateTime, Document, doc};

/// The tenants of the proxy's config; `bank1` is a prefix of `bank10` on purpose.
pub const TENANTS: [&str; 3] = ["bank1", "bank10", "bank2"];

/// A fixed base time for the seeded dates.
pub const T0: i64 = 1_780_000_000_000;
pub const DAY: i64 = 86_400_000;

pub fn s(v: &str) -> Bson {
    Bson::String(v.to_owned())
}

pub fn dec(v: &str) -> Bson {
    Bson::Decimal128(v.parse().expect("a valid decimal literal"))
}

pub fn date(offset_days: i64) -> Bson {
    Bson::DateTime(DateTime::from_millis(T0 + offset_days * DAY))
}

/// Values of `amount`: every numeric type at equal and different values, a numeric string,
/// null, arrays. `None` leaves the field out.
pub fn amounts() -> Vec<Option<Bson>> {
    vec![
        Some(Bson::Int32(100)),
        Some(Bson::Int64(100)),
        Some(Bson::Double(100.0)),
        Some(dec("100")),
        Some(Bson::Int32(50)),
        Some(Bson::Double(150.5)),
        Some(Bson::Int64(200)),
        Some(dec("250")),
        Some(s("100")),
        Some(Bson::Null),
        Some(Bson::Array(vec![Bson::Int32(50), Bson::Int64(200)])),
        Some(Bson::Array(vec![])),
        None,
    ]
}

pub fn statuses() -> Vec<Option<Bson>> {
    vec![
        Some(s("succeeded")),
        Some(s("failed")),
        Some(Bson::Null),
        None,
        Some(Bson::Array(vec![s("failed"), s("disputed")])),
        Some(s("")),
    ]
}

/// `customerId` values: own, other tenants', deleted, shared, tenantless, arrays.
pub fn customer_refs() -> Vec<Option<Bson>> {
    vec![
        Some(s("c-bank1-1")),
        Some(s("c-bank10-1")),
        Some(s("c-bank2-1")),
        Some(s("c-bank1-2")),
        Some(Bson::Array(vec![s("c-bank1-1"), s("c-bank2-1")])),
        Some(s("c-shared")),
        Some(s("c-none")),
        None,
    ]
}

/// Liveness: missing, null and `[null]` are live to MongoDB's `deletedAt: null`; a date, `false`
/// and `[null, date]`… the last one is live too (an array holding null matches).
pub fn deleted_ats() -> Vec<Option<Bson>> {
    vec![
        None,
        Some(Bson::Null),
        Some(date(-3)),
        Some(Bson::Array(vec![Bson::Null])),
        Some(Bson::Boolean(false)),
        Some(date(-1)),
        Some(Bson::Array(vec![Bson::Null, date(-2)])),
    ]
}

pub fn pick(list: &[Option<Bson>], i: usize) -> Option<Bson> {
    list[i % list.len()].clone()
}

/// 14 payments per tenant in every combination of shapes, plus documents whose `tenantId` is not
/// a plain string (array, nested document, number, null, missing, case or whitespace variants).
pub fn payments() -> Vec<Document> {
    let (amounts, statuses, refs, deleted) =
        (amounts(), statuses(), customer_refs(), deleted_ats());
    let mut out = Vec::new();
    for (ti, tenant) in TENANTS.iter().enumerate() {
        for i in 0..14usize {
            let mut d = doc! { "_id": format!("{tenant}-{i:02}"), "tenantId": *tenant };
            fill(&mut d, i + ti * 5, &amounts, &statuses, &refs, &deleted);
            out.push(d);
        }
    }
    let odd: [(&str, Option<Bson>); 10] = [
        ("odd-array", Some(Bson::Array(vec![s("bank1"), s("bank2")]))),
        ("odd-array10", Some(Bson::Array(vec![s("bank10")]))),
        ("odd-nested", Some(Bson::Document(doc! { "id": "bank1" }))),
        (
            "odd-deep-array",
            Some(Bson::Array(vec![Bson::Array(vec![s("bank1")])])),
        ),
        ("odd-number", Some(Bson::Int32(1))),
        ("odd-null", Some(Bson::Null)),
        ("odd-missing", None),
        ("odd-upper", Some(s("BANK1"))),
        ("odd-space", Some(s("bank1 "))),
        ("odd-prefix", Some(s("bank"))),
    ];
    for (i, (id, tenant)) in odd.into_iter().enumerate() {
        let mut d = doc! { "_id": id };
        if let Some(t) = tenant {
            d.insert("tenantId", t);
        }
        // Live, so only the tenant id decides whether a tenant sees it.
        fill(&mut d, i * 3, &amounts, &statuses, &refs, &[None]);
        out.push(d);
    }
    out
}

pub fn fill(
    d: &mut Document,
    i: usize,
    amounts: &[Option<Bson>],
    statuses: &[Option<Bson>],
    refs: &[Option<Bson>],
    deleted: &[Option<Bson>],
) {
    let mut put = |k: &str, v: Option<Bson>| {
        if let Some(v) = v {
            d.insert(k, v);
        }
    };
    put("amount", pick(amounts, i));
    put("status", pick(statuses, i * 5 + 1));
    put(
        "tags",
        match i % 4 {
            0 => Some(Bson::Array(vec![s("a"), s("b")])),
            1 => Some(Bson::Array(vec![])),
            2 => Some(s("a")),
            _ => None,
        },
    );
    put(
        "meta",
        match i % 5 {
            0 => Some(Bson::Document(doc! { "score": i as i32, "kind": "card" })),
            1 => Some(Bson::Document(
                doc! { "score": i as i64, "kind": "wire", "tenantId": "bank2" },
            )),
            2 => Some(Bson::Null),
            3 => Some(Bson::Document(doc! { "kind": Bson::Null })),
            _ => None,
        },
    );
    put(
        "items",
        match i % 3 {
            0 => Some(Bson::Array(vec![
                Bson::Document(doc! { "qty": 1, "sku": "x" }),
                Bson::Document(doc! { "qty": 3_i64, "sku": "y" }),
            ])),
            // An embedded `tenantId` naming another tenant: data, not scope.
            1 => Some(Bson::Array(vec![Bson::Document(
                doc! { "qty": 2.0, "sku": "x", "tenantId": "bank2" },
            )])),
            _ => None,
        },
    );
    put("at", Some(date(i as i64)));
    put("customerId", pick(refs, i * 3 + 2));
    put("deletedAt", pick(deleted, i / 2));
}

/// Per tenant: `-1` live, `-2` soft-deleted, `-3` live with a tier; plus a customer shared by
/// an array tenant id and one without a tenant.
pub fn customers() -> Vec<Document> {
    let mut out = Vec::new();
    for tenant in TENANTS {
        out.push(doc! { "_id": format!("c-{tenant}-1"), "tenantId": tenant, "name": "Ada" });
        out.push(doc! {
            "_id": format!("c-{tenant}-2"), "tenantId": tenant, "name": "Grace",
            "deletedAt": date(-5),
        });
        out.push(doc! {
            "_id": format!("c-{tenant}-3"), "tenantId": tenant, "name": "Alan", "tier": "gold",
            "deletedAt": Bson::Null,
        });
    }
    out.push(doc! { "_id": "c-shared", "tenantId": ["bank1", "bank2"], "name": "Edsger" });
    out.push(doc! { "_id": "c-none", "name": "Barbara", "tier": "gold" });
    out
}
