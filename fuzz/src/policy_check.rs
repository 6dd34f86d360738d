//! The policy fuzz target's body: one input becomes one OP_MSG, decoded by the real wire codec
//! (so invalid BSON is refused exactly as the proxy refuses it), then decided three times — for a
//! principal bound to tenant `bank1`, for `super_admin` acting as `bank1` (`actAs` in the
//! comment) and for `super_admin` itself — and every outcome is checked against the isolation
//! invariants, not just for panics:
//!
//! - a forwarded body and its document sequences re-encode as an OP_MSG that the codec decodes
//!   again under the default limits (size, depth): the proxy never sends what it would refuse;
//! - for a command run as a tenant, every filter the engine forwards (`find`/`count`/`distinct`
//!   filter, each `update`/`delete` statement's `q`, `findAndModify` query, the first stage of
//!   every pipeline that reads a collection, recursively through `$lookup`, `$unionWith`,
//!   `$graphLookup` and `$facet`, and the command inside `explain`) has only the scope's keys at
//!   its top: `tenantId: "bank1"` first (tenant collections), `deletedAt: null` (soft-delete
//!   collections, unless a comment could have asked for deleted documents), each exactly once,
//!   then the caller's conditions (flat, or under `$and`); every inserted document carries exactly one top-level
//!   `tenantId`, equal to `bank1`; nothing outside the tenant allowlist, and no denied stage, is
//!   forwarded; `$db` is unchanged and open to tenants;
//! - a `super_admin` acting as a tenant is audited (except the commands documented as unaudited);
//! - a rejection names its rule in `errmsg`, carries an audit record for that rule, a bounded
//!   message, and an audit shape with every value redacted;
//! - `super_admin` without options gets its command forwarded byte for byte, or refused.
//!
//! The first input byte picks the mode: even, the rest are the OP_MSG sections as raw bytes
//! (seeds are real driver commands); odd, the rest drive [`super::grammar`]. The file compiles
//! both in the cargo-fuzz crate and, through `#[path]`, in `policy/tests/fuzz_regressions.rs`,
//! so the checked-in corpus replays in an ordinary `cargo test`.

use std::sync::LazyLock;

use bson::{Bson, DateTime, Document, RawDocument};
use bytes::Bytes;
use tenantgate_policy::{
    AuditKind, CollectionMode, CollectionPolicy, Context, Decision, Forward, Outcome, PolicyConfig,
    Principal, Rule, TenantId, decide, decide_command,
};
use tenantgate_wire::element::{DocBuilder, Value, elements, get};
use tenantgate_wire::{
    DocumentSequence, Limits, MAX_BSON_DEPTH, MAX_DOCUMENT_SIZE_BYTES, Message, OpMsg, Payload,
    RawDoc,
};

use super::grammar::{Gen, sections};

/// The tenant the tenant principal is bound to and `super_admin` acts as.
pub const TENANT: &str = "bank1";

/// A realistic configuration: one tenant database, and one collection per mode and option.
pub static CONFIG: LazyLock<PolicyConfig> = LazyLock::new(|| {
    let mut cfg = PolicyConfig {
        databases: vec!["payments".into(), "reports".into()],
        ..PolicyConfig::default()
    };
    let mut put = |name: &str, mode, soft_delete, timestamps| {
        cfg.collections.insert(
            name.into(),
            CollectionPolicy {
                mode,
                soft_delete,
                timestamps,
            },
        );
    };
    put("currencies", CollectionMode::Global, true, false);
    put("rates", CollectionMode::Global, false, false);
    put("tenantgate_secrets", CollectionMode::Admin, true, false);
    put("payment_summary", CollectionMode::View, true, false);
    put("ledger", CollectionMode::Tenant, false, false);
    put("invoices", CollectionMode::Tenant, true, true);
    cfg.validate()
        .expect("the fuzz policy configuration is valid");
    cfg
});

const NOW: DateTime = DateTime::from_millis(1_700_000_000_000);

/// Commands a `super_admin` runs as a tenant without an audit record (`admin::UNAUDITED`).
const UNAUDITED: [&str; 9] = [
    "endSessions",
    "refreshSessions",
    "commitTransaction",
    "abortTransaction",
    "buildInfo",
    "ping",
    "getMore",
    "killCursors",
    "listDatabases",
];

/// Stages no tenant pipeline may carry, at any depth.
const DENIED_STAGES: [&str; 9] = [
    "$out",
    "$merge",
    "$collStats",
    "$indexStats",
    "$currentOp",
    "$listSessions",
    "$changeStream",
    "$search",
    "$listCatalog",
];

/// Runs one fuzz input (see the module docs for the format).
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        let (body, sequences) = Gen::new(rest).command(0);
        if let Some(s) = sections(&body, &sequences) {
            check_sections(&s);
        }
    } else {
        check_sections(rest);
    }
}

/// An OP_MSG frame (flags 0) around `sections`.
pub fn op_msg_frame(sections: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + sections.len();
    let mut frame = Vec::with_capacity(len);
    frame.extend(i32::try_from(len).unwrap_or(i32::MAX).to_le_bytes());
    frame.extend(1i32.to_le_bytes());
    frame.extend(0i32.to_le_bytes());
    frame.extend(2013i32.to_le_bytes());
    frame.extend(0u32.to_le_bytes());
    frame.extend(sections);
    frame
}

/// Decodes `sections` as the proxy would and checks every principal's outcome.
pub fn check_sections(sections: &[u8]) {
    let Ok(msg) = Message::decode(Bytes::from(op_msg_frame(sections)), &Limits::default()) else {
        return;
    };
    let op = msg
        .as_op_msg()
        .expect("an OP_MSG frame decodes as an OP_MSG");
    let cfg = &*CONFIG;
    let body = op.body().as_raw();
    let sequences = op.sequences();

    let tenant = Principal::tenant("svc-bank1", TenantId::new(TENANT));
    let out = decide(op, &ctx(&tenant));
    check_outcome(&out, body, cfg, false);

    let admin = Principal::super_admin("root");
    let as_tenant = with_act_as(body);
    let out = decide_command(&as_tenant, sequences, &ctx(&admin));
    check_outcome(&out, as_tenant.as_raw(), cfg, true);

    let out = decide(op, &ctx(&admin));
    check_admin(&out, op);
}

/// The tenant principal's outcome for raw-mode input `data`, for tests that pin what the seeds
/// exercise (`None`: the codec refused the frame).
pub fn tenant_outcome(data: &[u8]) -> Option<Outcome> {
    let sections = data.get(1..)?;
    let msg = Message::decode(Bytes::from(op_msg_frame(sections)), &Limits::default()).ok()?;
    let tenant = Principal::tenant("svc-bank1", TenantId::new(TENANT));
    Some(decide(msg.as_op_msg()?, &ctx(&tenant)))
}

fn ctx(principal: &Principal) -> Context<'_> {
    Context {
        principal,
        config: &CONFIG,
        now: NOW,
    }
}

/// The body with every `comment` replaced by `comment: "tenantgate:actAs=bank1"`.
fn with_act_as(body: &RawDocument) -> RawDoc {
    let mut out = DocBuilder::with_capacity(body.as_bytes().len() + 48);
    for e in elements(body).flatten() {
        if e.key_bytes() != b"comment" {
            out.copy(&e);
        }
    }
    out.str("comment", &format!("tenantgate:actAs={TENANT}"))
        .expect("a literal key and value build");
    out.into_raw_doc()
        .expect("a copy of a valid body plus one string is valid")
}

/// [`check_outcome`] for the tenant principal, so tests can show the checks are able to fail.
pub fn check_outcome_for_test(out: &Outcome, body: &RawDocument) {
    check_outcome(out, body, &CONFIG, false);
}

/// Invariants of an outcome for a command run as [`TENANT`].
fn check_outcome(out: &Outcome, body: &RawDocument, cfg: &PolicyConfig, by_admin: bool) {
    match &out.decision {
        Decision::Reject(r) => {
            assert_ne!(r.rule, Rule::Bypass, "bypass is not a rejection rule");
            assert!(
                r.errmsg().contains(&format!("'{}'", r.rule.as_str())),
                "errmsg names the rule: {}",
                r.errmsg()
            );
            assert!(r.message.chars().count() <= 257, "message is bounded");
            let audit = out.audit.as_ref().expect("a rejection is audited");
            assert_eq!(audit.kind, AuditKind::Rejection);
            assert_eq!(audit.rule, r.rule, "the audit record names the same rule");
            check_redacted(&audit.shape, "");
        }
        Decision::Reply(reply) => {
            RawDoc::from_raw(reply).expect("a local reply is valid BSON");
        }
        Decision::Forward(f) => {
            check_wire(f);
            let name = first_key(f.body.as_raw());
            let original = first_key(body);
            if by_admin && !UNAUDITED.contains(&original) {
                let audit = out
                    .audit
                    .as_ref()
                    .expect("super_admin acting as a tenant is audited");
                assert_eq!(audit.kind, AuditKind::Bypass, "{name}");
                check_redacted(&audit.shape, "");
            }
            let db = get(f.body.as_raw(), "$db")
                .ok()
                .flatten()
                .and_then(|e| e.as_str())
                .expect("a forwarded command keeps a string $db");
            let db_before = get(body, "$db").ok().flatten().and_then(|e| e.as_str());
            assert_eq!(Some(db), db_before, "$db is unchanged");
            let soft = !has_key(body, "comment") || by_admin;
            check_command(f.body.as_raw(), &f.sequences, body, db, soft, cfg);
        }
    }
}

/// The forwarded command re-encodes and decodes under the default limits.
fn check_wire(f: &Forward) {
    let limits = Limits::default();
    assert!(f.body.len() <= MAX_DOCUMENT_SIZE_BYTES, "body size");
    RawDoc::from_bytes(f.body.bytes().clone(), MAX_BSON_DEPTH)
        .expect("the forwarded body is valid BSON within the depth limit");
    let mut op = OpMsg::new(f.body.clone());
    for s in &f.sequences {
        for d in &s.documents {
            RawDoc::from_bytes(d.bytes().clone(), MAX_BSON_DEPTH)
                .expect("a forwarded sequence document is valid BSON within the depth limit");
        }
        op = op.with_sequence(s.identifier.clone(), s.documents.clone());
    }
    let bytes = Message::new(1, 0, Payload::Msg(op))
        .to_bytes()
        .expect("a forwarded command encodes");
    Message::decode(bytes, &limits).expect("a forwarded command decodes under the default limits");
}

/// The scope invariants of one forwarded command (`orig` is what the client sent).
fn check_command(
    fwd: &RawDocument,
    sequences: &[DocumentSequence],
    orig: &RawDocument,
    db: &str,
    soft: bool,
    cfg: &PolicyConfig,
) {
    let name = first_key(fwd);
    let original = first_key(orig);
    let data = !matches!(
        original,
        "endSessions" | "refreshSessions" | "commitTransaction" | "abortTransaction" | "buildInfo"
    );
    if data {
        assert!(cfg.tenant_database(db), "{original} forwarded in '{db}'");
    }
    let collection = || {
        elements(fwd)
            .next()
            .and_then(Result::ok)
            .and_then(|e| e.as_str())
            .expect("a collection command names its collection")
    };
    let statements = |field: &str, f: &mut dyn FnMut(&RawDocument)| {
        if let Some(arr) = get(fwd, field).ok().flatten().and_then(|e| e.as_array()) {
            for item in elements(arr) {
                let d = item.ok().and_then(|e| e.as_document());
                f(d.expect("statements are documents"));
            }
        }
        for s in sequences.iter().filter(|s| s.identifier == field) {
            for d in &s.documents {
                f(d.as_raw());
            }
        }
    };
    match original {
        "find" | "count" | "distinct" => {
            assert_eq!(name, original);
            let field = if original == "find" {
                "filter"
            } else {
                "query"
            };
            let filter = doc_field(fwd, field).expect("a read carries its filter");
            check_filter(filter, collection(), soft, cfg);
        }
        "aggregate" => {
            assert_eq!(name, original);
            let stages = get(fwd, "pipeline")
                .ok()
                .flatten()
                .and_then(|e| e.as_array())
                .expect("aggregate carries a pipeline");
            let input = elements(fwd)
                .next()
                .and_then(Result::ok)
                .and_then(|e| e.as_str());
            check_pipeline(
                stages,
                input.map_or(Input::Documents, Input::Collection),
                db,
                soft,
                cfg,
            );
        }
        "insert" => {
            assert_eq!(name, original);
            let policy = cfg.collection(collection());
            assert_eq!(
                policy.mode,
                CollectionMode::Tenant,
                "insert into a non-tenant collection"
            );
            let mut n = 0;
            statements("documents", &mut |d| {
                n += 1;
                check_stamped(d);
            });
            assert!(
                n > 0 || sequences.is_empty(),
                "insert forwards its documents"
            );
        }
        "update" => {
            assert_eq!(name, original);
            let coll = collection();
            statements("updates", &mut |s| {
                let q = doc_field(s, "q").expect("an update statement has q");
                check_filter(q, coll, soft, cfg);
            });
        }
        "delete" => {
            let coll = collection();
            let policy = cfg.collection(coll);
            if policy.soft_delete {
                assert_eq!(name, "update", "a soft delete is sent as an update");
                statements("updates", &mut |s| {
                    let q = doc_field(s, "q").expect("a soft delete statement has q");
                    check_filter(q, coll, soft, cfg);
                    let u = doc_field(s, "u").expect("a soft delete statement has u");
                    let set = doc_field(u, "$set").expect("a soft delete sets");
                    assert!(
                        matches!(
                            get(set, &cfg.soft_delete_field)
                                .ok()
                                .flatten()
                                .map(|e| e.element_type()),
                            Some(0x09)
                        ),
                        "a soft delete sets the soft-delete field to a date"
                    );
                });
                assert!(
                    get(fwd, "deletes").ok().flatten().is_none()
                        && sequences.iter().all(|s| s.identifier == "updates"),
                    "no delete statement survives a soft delete"
                );
            } else {
                assert_eq!(name, "delete");
                statements("deletes", &mut |s| {
                    let q = doc_field(s, "q").expect("a delete statement has q");
                    check_filter(q, coll, soft, cfg);
                });
            }
        }
        "findAndModify" | "findandmodify" => {
            assert_eq!(name, original);
            let q = doc_field(fwd, "query").expect("findAndModify carries a query");
            check_filter(q, collection(), soft, cfg);
        }
        "explain" => {
            assert_eq!(name, original);
            let inner = doc_field(fwd, "explain").expect("explain wraps a command");
            let inner_orig = doc_field(orig, "explain").expect("the original wraps a command");
            let soft = soft && !has_key(inner_orig, "comment");
            check_command(inner, &[], inner_orig, db, soft, cfg);
        }
        "getMore" | "killCursors" | "listCollections" | "listIndexes" | "endSessions"
        | "refreshSessions" | "commitTransaction" | "abortTransaction" | "buildInfo" => {
            assert_eq!(name, original);
        }
        other => panic!("'{other}' is outside the tenant allowlist but was forwarded"),
    }
}

/// A scoped filter for a read or write of `coll`: the scope's keys first, each once (the tenant
/// field at the very top and equal to [`TENANT`], the soft-delete field null), then the caller's
/// conditions — flat, or under `$and` when they name a scope field. MongoDB ANDs the top-level
/// fields, so any user condition after them can only narrow the result.
fn check_filter(filter: &RawDocument, coll: &str, soft: bool, cfg: &PolicyConfig) {
    let policy = cfg.collection(coll);
    assert!(
        matches!(policy.mode, CollectionMode::Tenant | CollectionMode::Global),
        "'{coll}' ({:?}) reached by a tenant",
        policy.mode
    );
    let want_tenant = policy.mode == CollectionMode::Tenant;
    let want_live = soft && policy.soft_delete;
    let (mut tenant, mut deleted, mut user) = (0, 0, false);
    for (i, e) in elements(filter).enumerate() {
        let e = e.expect("a forwarded filter reads");
        match e.key() {
            k if k == cfg.tenant_field && want_tenant => {
                assert_eq!(
                    e.value(),
                    Value::String(TENANT),
                    "the tenant condition pins {TENANT}"
                );
                assert_eq!(i, 0, "the tenant condition comes first");
                tenant += 1;
            }
            k if k == cfg.soft_delete_field && want_live => {
                assert_eq!(e.value(), Value::Null, "the soft-delete condition is null");
                assert!(
                    !user,
                    "the soft-delete condition precedes the caller's conditions"
                );
                deleted += 1;
            }
            // A field the scope does not set here (a global collection's tenant field, the
            // soft-delete field when deleted documents were asked for) is the caller's own.
            k if k == cfg.tenant_field || k == cfg.soft_delete_field => user = true,
            "$and" => {
                e.as_array().expect("$and is an array");
                user = true;
            }
            // The caller's own top-level conditions: ANDed with the scope's.
            _ => user = true,
        }
    }
    assert_eq!(
        tenant,
        usize::from(want_tenant),
        "tenant conditions in a filter on '{coll}'"
    );
    if want_live {
        assert_eq!(deleted, 1, "live-only condition in a filter on '{coll}'");
    }
}

/// An inserted document: exactly one top-level tenant field, equal to [`TENANT`].
fn check_stamped(doc: &RawDocument) {
    let tenant: Vec<_> = elements(doc)
        .filter_map(Result::ok)
        .filter(|e| e.key() == CONFIG.tenant_field)
        .collect();
    assert_eq!(
        tenant.len(),
        1,
        "an inserted document carries one tenant field"
    );
    assert_eq!(
        tenant[0].value(),
        Value::String(TENANT),
        "and it is the caller's"
    );
}

#[derive(Clone, Copy)]
enum Input<'a> {
    Collection(&'a str),
    Documents,
    Scoped,
}

fn scope_is_empty(coll: &str, soft: bool, cfg: &PolicyConfig) -> bool {
    let p = cfg.collection(coll);
    p.mode != CollectionMode::Tenant && !(soft && p.soft_delete)
}

/// A forwarded pipeline: scoped first stage for a collection, and every sub-read scoped.
fn check_pipeline(
    stages: &RawDocument,
    input: Input<'_>,
    db: &str,
    soft: bool,
    cfg: &PolicyConfig,
) {
    for (i, item) in elements(stages).enumerate() {
        let stage = item
            .ok()
            .and_then(|e| e.as_document())
            .expect("stages are documents");
        let mut fields = elements(stage);
        let spec = fields
            .next()
            .and_then(Result::ok)
            .expect("a stage has a field");
        assert!(fields.next().is_none(), "a stage has one field");
        let name = spec.key();
        if i == 0 {
            match input {
                Input::Collection(coll) if !scope_is_empty(coll, soft, cfg) => match name {
                    "$match" => {
                        check_filter(spec.as_document().expect("$match doc"), coll, soft, cfg)
                    }
                    "$geoNear" => {
                        let d = spec.as_document().expect("$geoNear doc");
                        let q = doc_field(d, "query").expect("$geoNear gets the scope as query");
                        check_filter(q, coll, soft, cfg);
                    }
                    other => panic!("a pipeline on '{coll}' starts with {other}, not the scope"),
                },
                Input::Documents => assert_eq!(name, "$documents", "a collection-less pipeline"),
                _ => {}
            }
        }
        assert!(
            !DENIED_STAGES.contains(&name),
            "{name} forwarded to a tenant"
        );
        let sub = |field: &str| -> Option<&RawDocument> {
            spec.as_document()
                .and_then(|d| get(d, field).ok().flatten())
                .and_then(|e| e.as_array())
        };
        let foreign = |field: &str| -> Option<&str> {
            let e = get(spec.as_document()?, field).ok().flatten()?;
            match e.value() {
                Value::String(s) => Some(s),
                Value::Document(d) => {
                    let other = get(d, "db").ok().flatten().and_then(|e| e.as_str());
                    assert_eq!(other, Some(db), "a sub-read in another database");
                    get(d, "coll").ok().flatten().and_then(|e| e.as_str())
                }
                _ => panic!("{name}.{field} is neither a name nor {{db, coll}}"),
            }
        };
        match name {
            "$lookup" | "$unionWith" => {
                let field = if name == "$lookup" { "from" } else { "coll" };
                match (foreign(field), sub("pipeline")) {
                    (Some(coll), Some(p)) => {
                        check_pipeline(p, Input::Collection(coll), db, soft, cfg)
                    }
                    (Some(coll), None) => assert!(
                        scope_is_empty(coll, soft, cfg),
                        "{name} of '{coll}' without a scoped pipeline"
                    ),
                    (None, Some(p)) => check_pipeline(p, Input::Documents, db, soft, cfg),
                    (None, None) => panic!("{name} reads nothing"),
                }
            }
            "$graphLookup" => {
                let coll = foreign("from").expect("$graphLookup names from");
                let restrict = spec
                    .as_document()
                    .and_then(|d| doc_field(d, "restrictSearchWithMatch"));
                match restrict {
                    Some(r) => check_filter(r, coll, soft, cfg),
                    None => assert!(scope_is_empty(coll, soft, cfg), "$graphLookup unscoped"),
                }
            }
            "$facet" => {
                for branch in elements(spec.as_document().expect("$facet doc")) {
                    let b = branch
                        .ok()
                        .and_then(|e| e.as_array())
                        .expect("facet branch");
                    check_pipeline(b, Input::Scoped, db, soft, cfg);
                }
            }
            _ => {}
        }
    }
    if let Input::Collection(coll) = input {
        assert!(
            elements(stages).next().is_some() || scope_is_empty(coll, soft, cfg),
            "an empty pipeline on '{coll}' is forwarded unscoped"
        );
    }
}

/// `super_admin` without `actAs`: forwarded byte for byte when no options were given.
fn check_admin(out: &Outcome, op: &OpMsg) {
    match &out.decision {
        Decision::Forward(f) => {
            check_wire(f);
            if !has_key(op.body().as_raw(), "comment") {
                assert_eq!(
                    f.body.as_bytes(),
                    op.body().as_bytes(),
                    "bypass forwards as sent"
                );
                assert_eq!(f.sequences, op.sequences(), "bypass keeps its sequences");
            }
        }
        Decision::Reject(r) => {
            let audit = out.audit.as_ref().expect("a rejection is audited");
            assert_eq!(audit.rule, r.rule);
            check_redacted(&audit.shape, "");
        }
        Decision::Reply(_) => {}
    }
}

/// Every leaf of an audit shape is a type placeholder (`"<string>"`) or one of the shape's own
/// counters: no value the client sent reaches the audit trail.
fn check_redacted(shape: &Document, at: &str) {
    for (k, v) in shape {
        check_redacted_value(v, k, at);
    }
}

fn check_redacted_value(v: &Bson, key: &str, at: &str) {
    match v {
        Bson::Document(d) => check_redacted(d, key),
        Bson::Array(items) => items.iter().for_each(|i| check_redacted_value(i, key, at)),
        Bson::String(s) => assert!(
            s.starts_with('<') && s.ends_with('>'),
            "audit shape leaks a value at {at}.{key}"
        ),
        Bson::Boolean(true) if key == "<truncated>" => {}
        Bson::Int64(_) if key == "<more keys>" || key == "count" => {}
        other => panic!("audit shape leaks a value at {at}.{key}: {other:?}"),
    }
}

fn first_key(doc: &RawDocument) -> &str {
    elements(doc)
        .next()
        .and_then(Result::ok)
        .map_or("", |e| e.key())
}

fn has_key(doc: &RawDocument, key: &str) -> bool {
    elements(doc).filter_map(Result::ok).any(|e| e.key() == key)
}

fn doc_field<'a>(doc: &'a RawDocument, key: &str) -> Option<&'a RawDocument> {
    get(doc, key).ok().flatten().and_then(|e| e.as_document())
}
