//! Rules added after the security review of the first engine: collation, schema-validation
//! bypass, variable paths to the tenant field, command cursors, audited `actAs`, bounded audit
//! shapes, and upserts whose filter repeats the scope.

use bson::{DateTime, Document, RawDocumentBuf, doc, rawdoc};
use tenantgate_policy::{
    AuditKind, Context, Decision, PolicyConfig, Principal, Rule, TenantId, decide_command,
};
use tenantgate_wire::RawDoc;

fn config() -> PolicyConfig {
    PolicyConfig {
        databases: vec!["payments".into()],
        ..PolicyConfig::default()
    }
}

fn run(principal: &Principal, body: RawDocumentBuf) -> tenantgate_policy::Outcome {
    let config = config();
    let ctx = Context {
        principal,
        config: &config,
        now: DateTime::from_millis(1_000),
    };
    decide_command(&RawDoc::from_buf(body).expect("valid"), &[], &ctx)
}

fn bank1() -> Principal {
    Principal::tenant("svc-bank1", TenantId::new("bank1"))
}

fn rule(body: RawDocumentBuf) -> Option<Rule> {
    match run(&bank1(), body).decision {
        Decision::Reject(r) => Some(r.rule),
        _ => None,
    }
}

fn forwarded(body: RawDocumentBuf) -> Document {
    match run(&bank1(), body).decision {
        Decision::Forward(f) => Document::try_from(f.body.as_raw()).expect("decodes"),
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn only_the_simple_collation_is_allowed() {
    for collation in [
        rawdoc! { "locale": "en", "strength": 2 },
        rawdoc! { "locale": "en", "alternate": "shifted" },
        rawdoc! { "locale": "en", "numericOrdering": true },
        rawdoc! { "locale": "simple", "strength": 1 },
    ] {
        assert_eq!(
            rule(
                rawdoc! { "find": "payments", "filter": {}, "collation": collation.clone(), "$db": "payments" }
            ),
            Some(Rule::CollationNotAllowed),
            "{collation:?}"
        );
        assert_eq!(
            rule(
                rawdoc! { "update": "payments", "updates": [ { "q": {}, "u": { "$set": { "a": 1 } }, "collation": collation.clone() } ], "$db": "payments" }
            ),
            Some(Rule::CollationNotAllowed)
        );
        assert_eq!(
            rule(
                rawdoc! { "delete": "payments", "deletes": [ { "q": {}, "limit": 1, "collation": collation.clone() } ], "$db": "payments" }
            ),
            Some(Rule::CollationNotAllowed)
        );
        assert_eq!(
            rule(
                rawdoc! { "aggregate": "payments", "pipeline": [], "cursor": {}, "collation": collation, "$db": "payments" }
            ),
            Some(Rule::CollationNotAllowed)
        );
    }
    let ok = forwarded(
        rawdoc! { "find": "payments", "filter": {}, "collation": { "locale": "simple" }, "$db": "payments" },
    );
    assert_eq!(
        ok.get_document("collation").ok(),
        Some(&doc! { "locale": "simple" })
    );
}

#[test]
fn schema_validation_bypass_is_for_super_admin_only() {
    assert_eq!(
        rule(
            rawdoc! { "insert": "payments", "documents": [ {} ], "bypassDocumentValidation": true, "$db": "payments" }
        ),
        Some(Rule::CommandNotAllowed)
    );
    assert_eq!(
        rule(
            rawdoc! { "insert": "payments", "documents": [ {} ], "bypassDocumentValidation": false, "$db": "payments" }
        ),
        None
    );
}

#[test]
fn variable_paths_to_the_tenant_field_are_overrides() {
    for filter in [
        rawdoc! { "$expr": { "$let": { "vars": { "r": "$$ROOT" }, "in": { "$eq": ["$$r.tenantId", "bank2"] } } } },
        rawdoc! { "$expr": { "$eq": ["$$CURRENT.tenantId", "bank2"] } },
    ] {
        assert_eq!(
            rule(rawdoc! { "find": "payments", "filter": filter.clone(), "$db": "payments" }),
            Some(Rule::TenantOverride),
            "{filter:?}"
        );
    }
}

#[test]
fn cursors_of_database_level_commands_can_be_iterated() {
    for coll in ["$cmd.aggregate", "$cmd.listCollections"] {
        assert_eq!(
            rule(rawdoc! { "getMore": 42_i64, "collection": coll, "$db": "payments" }),
            None,
            "{coll}"
        );
        assert_eq!(
            rule(rawdoc! { "killCursors": coll, "cursors": [42_i64], "$db": "payments" }),
            None,
            "{coll}"
        );
    }
    assert_eq!(
        rule(rawdoc! { "getMore": 42_i64, "collection": "$cmd.other", "$db": "payments" }),
        Some(Rule::CollectionNotAllowed)
    );
}

#[test]
fn super_admin_acting_as_a_tenant_is_audited() {
    let admin = Principal::super_admin("platform-admin");
    let out = run(
        &admin,
        rawdoc! { "find": "payments", "comment": "tenantgate:actAs=bank2", "$db": "payments" },
    );
    assert!(matches!(out.decision, Decision::Forward(_)));
    let audit = out.audit.expect("acting as a tenant is audited");
    assert_eq!((audit.kind, audit.rule), (AuditKind::Bypass, Rule::Bypass));
    assert_eq!(audit.tenant.as_deref(), Some("bank2"));
    // an ordinary tenant's forwarded command is not
    assert!(
        run(&bank1(), rawdoc! { "find": "payments", "$db": "payments" })
            .audit
            .is_none()
    );
}

#[test]
fn audit_shapes_are_bounded_and_keep_duplicates_visible() {
    let mut filter = RawDocumentBuf::new();
    for i in 0..200 {
        let key = format!("k{i}{}", "x".repeat(100));
        filter.append(<&bson::raw::CStr>::try_from(key.as_str()).expect("key"), i);
    }
    let out = run(
        &bank1(),
        rawdoc! { "find": "payments", "filter": filter, "$where": "1", "$db": "payments" },
    );
    let shape = out.audit.expect("audited").shape;
    let f = shape.get_document("filter").expect("filter shape");
    assert!(f.len() <= 49, "{} keys kept", f.len());
    assert_eq!(f.get_i64("<more keys>").ok(), Some(152));
    assert!(f.keys().all(|k| k.chars().count() <= 65));

    let mut dup = rawdoc! { "tenantId": "bank1" };
    dup.append(bson::raw::cstr!("tenantId"), "bank2");
    let out = run(
        &bank1(),
        rawdoc! { "find": "payments", "filter": dup, "$db": "payments" },
    );
    let shape = out.audit.expect("audited").shape;
    assert_eq!(
        shape.get_document("filter").map(|f| f.len()).ok(),
        Some(2),
        "{shape:?}"
    );
}

#[test]
fn an_upsert_naming_its_own_tenant_keeps_one_equality() {
    let body = forwarded(rawdoc! {
        "update": "payments",
        "updates": [ { "q": { "tenantId": "bank1", "ref": "r1" }, "u": { "$set": { "a": 1 } }, "upsert": true } ],
        "$db": "payments",
    });
    let q = body.get_array("updates").expect("updates")[0]
        .as_document()
        .expect("doc")
        .get_document("q")
        .expect("q")
        .clone();
    assert_eq!(
        q,
        doc! { "tenantId": "bank1", "deletedAt": null, "ref": "r1" }
    );
}

#[test]
fn messages_and_audit_names_are_bounded() {
    let long = "c".repeat(10_000);
    let out = run(
        &bank1(),
        rawdoc! { "find": long.as_str(), "filter": { "$where": "1" }, "$db": "payments" },
    );
    let Decision::Reject(r) = out.decision else {
        panic!("javascript is refused")
    };
    assert!(r.message.chars().count() <= 257);
    let audit = out.audit.expect("audited");
    assert!(audit.collection.expect("collection").chars().count() <= 65);
    let mut cmd = RawDocumentBuf::new();
    cmd.append(<&bson::raw::CStr>::try_from(long.as_str()).expect("key"), 1);
    cmd.append(bson::raw::cstr!("$db"), "payments");
    let out = run(&bank1(), cmd);
    let Decision::Reject(r) = out.decision else {
        panic!("unknown command")
    };
    assert!(r.errmsg().len() < 400, "{}", r.errmsg().len());
    assert!(out.audit.expect("audited").command.chars().count() <= 65);
}
