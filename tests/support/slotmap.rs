//! The slot map as `CLUSTER SLOTS` reports it, parsed into plain values so
//! nodes' views can be compared.

use redis::Value;

/// One entry of `CLUSTER SLOTS`: a slot range, its master, its replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot of the range.
    pub start: u16,
    /// Last slot of the range (inclusive).
    pub end: u16,
    /// The master's address, `127.0.0.1:port`.
    pub master: String,
    /// The replicas' addresses, sorted.
    pub replicas: Vec<String>,
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// Parses a `CLUSTER SLOTS` reply into ranges sorted by first slot.
pub(crate) fn parse_slots(v: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(entries) = v else {
        return None;
    };
    let mut ranges = Vec::new();
    for entry in entries {
        let Value::Array(fields) = entry else {
            return None;
        };
        let (Value::Int(start), Value::Int(end)) = (fields.first()?, fields.get(1)?) else {
            return None;
        };
        let mut nodes = fields[2..].iter().map(|n| match n {
            Value::Array(n) => Some(format!("{}:{}", text(n.first()?), text(n.get(1)?))),
            _ => None,
        });
        let master = nodes.next()??;
        let mut replicas = nodes.collect::<Option<Vec<_>>>()?;
        replicas.sort();
        ranges.push(SlotRange {
            start: *start as u16,
            end: *end as u16,
            master,
            replicas,
        });
    }
    ranges.sort_by_key(|r| r.start);
    Some(ranges)
}
