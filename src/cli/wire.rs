//! `tenantgate wire decode`: print captured frames as JSON.
//!
//! Reads a file (or standard input) holding one or more raw wire messages back to back — a
//! fixture, or bytes saved from a packet capture — and prints one JSON object per message:
//! opcode, ids, flags, the command name and `$db`, and the documents in relaxed Extended JSON.
//! OP_COMPRESSED is shown with its compressor and the message it wraps.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use clap::Subcommand;
use serde_json::{Value, json};
use tenantgate_wire::{Limits, Message, Payload, RawDoc, SectionRef, split_frame};

#[derive(Debug, Subcommand)]
pub enum WireCommand {
    /// Decode raw wire messages and print them as JSON lines.
    Decode {
        /// File with one or more messages back to back; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

pub fn run(cmd: WireCommand) -> Result<()> {
    match cmd {
        WireCommand::Decode { file } => decode(file),
    }
}

fn decode(file: Option<PathBuf>) -> Result<()> {
    let mut bytes = Vec::new();
    match file.as_deref() {
        None => std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?,
        Some(p) => std::fs::File::open(p)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("reading {}", p.display()))?,
    };
    let limits = Limits::default();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut count = 0usize;
    while let Some(frame) =
        split_frame(&mut buf, &limits).with_context(|| format!("frame {count}"))?
    {
        let msg = Message::decode(frame, &limits).with_context(|| format!("message {count}"))?;
        println!("{}", describe(&msg, &limits)?);
        count += 1;
    }
    if !buf.is_empty() {
        bail!(
            "{} trailing bytes do not form a complete message",
            buf.len()
        );
    }
    if count == 0 {
        bail!("no message found");
    }
    Ok(())
}

fn json_doc(doc: &RawDoc) -> Result<Value> {
    Ok(bson::Bson::Document(doc.to_document()?).into_relaxed_extjson())
}

fn describe(msg: &Message, limits: &Limits) -> Result<Value> {
    let mut out = json!({
        "opCode": format!("{:?}", msg.op_code()),
        "requestId": msg.request_id,
        "responseTo": msg.response_to,
        "length": msg.encoded_len(),
    });
    match &msg.payload {
        Payload::Msg(m) => {
            let sections = m
                .sections()
                .map(|s| match s {
                    SectionRef::Body(d) => Ok(json!({ "kind": 0, "body": json_doc(d)? })),
                    SectionRef::Sequence(seq) => Ok(json!({
                        "kind": 1,
                        "identifier": seq.identifier,
                        "documents": seq.documents.iter().map(json_doc).collect::<Result<Vec<_>>>()?,
                    })),
                })
                .collect::<Result<Vec<_>>>()?;
            out["flags"] = json!({
                "bits": m.flags().bits(),
                "checksumPresent": m.flags().checksum_present(),
                "moreToCome": m.flags().more_to_come(),
                "exhaustAllowed": m.flags().exhaust_allowed(),
            });
            out["command"] = json!(m.command_name());
            out["db"] = json!(m.database());
            out["sections"] = Value::Array(sections);
        }
        Payload::Query(q) => {
            out["flags"] = json!(q.flags.bits());
            out["fullCollectionName"] = json!(q.full_collection_name);
            out["numberToSkip"] = json!(q.number_to_skip);
            out["numberToReturn"] = json!(q.number_to_return);
            out["command"] = json!(q.command_name());
            out["query"] = json_doc(&q.query)?;
            if let Some(sel) = &q.return_fields_selector {
                out["returnFieldsSelector"] = json_doc(sel)?;
            }
        }
        Payload::Reply(r) => {
            out["flags"] = json!(r.flags.bits());
            out["cursorId"] = json!(r.cursor_id);
            out["startingFrom"] = json!(r.starting_from);
            out["documents"] = Value::Array(
                r.documents
                    .iter()
                    .map(json_doc)
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        Payload::Compressed(c) => {
            out["compressor"] = json!(c.compressor.name());
            out["originalOpCode"] = json!(format!("{:?}", c.original_op_code));
            out["uncompressedSize"] = json!(c.uncompressed_size);
            let (inner, _) = msg.clone().decompressed(limits).context("decompressing")?;
            out["message"] = describe(&inner, limits)?;
        }
    }
    Ok(out)
}
