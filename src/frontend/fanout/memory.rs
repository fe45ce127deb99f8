//! `MEMORY STATS` of the cluster: every master's map merged into one, in
//! the fields' order of a node's reply. Byte counts and `keys.count` are
//! summed (per `db.N` too; `peak.allocated` is the masters' peaks summed,
//! which may not have been reached at once). The ratios and averages are
//! recomputed from the sums as redis-server computes its own:
//! `peak.percentage`, `dataset.percentage`, `keys.bytes-per-key`,
//! `allocator-fragmentation.ratio`, `allocator-rss.ratio`,
//! `rss-overhead.ratio` and `fragmentation` (RSS over the memory in use
//! when the node last sampled it, both summed). A field keyway does not
//! know how to combine (a newer server's) keeps its largest value.

use bytes::BytesMut;

use crate::protocol::{encode, Protocol, Value};

/// One field of the merged map.
enum Field {
    /// Summed bytes or counts.
    Sum(i64),
    /// A `db.N` map: its fields summed, in order.
    Db(Vec<(Vec<u8>, i64)>),
    /// A ratio or share, recomputed after the sums.
    Ratio,
    /// Anything else: the largest.
    Other(Value),
}

/// Appends the merged reply of the masters' `MEMORY STATS` `values`.
pub fn stats(values: &[Value], proto: Protocol, out: &mut BytesMut) {
    let mut fields: Vec<(Vec<u8>, Field)> = Vec::new();
    for value in values {
        for (name, v) in value.pairs() {
            let Some(name) = name.as_bytes() else {
                continue;
            };
            let at = match fields.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    let field = match v {
                        Value::Int(_) => Field::Sum(0),
                        Value::Array(_) | Value::Map(_) => Field::Db(Vec::new()),
                        _ if is_ratio(name) => Field::Ratio,
                        other => Field::Other(other.clone()),
                    };
                    fields.push((name.to_vec(), field));
                    fields.len() - 1
                }
            };
            match (&mut fields[at].1, v) {
                (Field::Sum(sum), Value::Int(n)) => *sum += n,
                (Field::Db(sums), nested) => {
                    for (k, n) in nested.pairs() {
                        let (Some(k), Some(n)) = (k.as_bytes(), n.as_int()) else {
                            continue;
                        };
                        match sums.iter_mut().find(|(name, _)| name == k) {
                            Some((_, sum)) => *sum += n,
                            None => sums.push((k.to_vec(), n)),
                        }
                    }
                }
                (Field::Other(largest), v) if number(v) > number(largest) => *largest = v.clone(),
                _ => {}
            }
        }
    }
    let sum = |name: &str| -> f64 {
        fields
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map_or(0.0, |(_, f)| match f {
                Field::Sum(n) => *n as f64,
                _ => 0.0,
            })
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let net = sum("total.allocated") - sum("startup.allocated");
    let resident = sum("allocator.resident");
    let rss = resident + sum("rss-overhead.bytes");
    encode::map_header(out, proto, fields.len());
    for (name, field) in &fields {
        encode::bulk(out, name);
        match field {
            // An average, like the ratios: from the sums.
            Field::Sum(_) if name == b"keys.bytes-per-key" => {
                encode::integer(out, ratio(net, sum("keys.count")) as i64);
            }
            Field::Sum(n) => encode::integer(out, *n),
            Field::Db(sums) => {
                encode::map_header(out, proto, sums.len());
                for (k, n) in sums {
                    encode::bulk(out, k);
                    encode::integer(out, *n);
                }
            }
            Field::Ratio => {
                let d = match &name[..] {
                    b"peak.percentage" => {
                        ratio(sum("total.allocated") * 100.0, sum("peak.allocated"))
                    }
                    b"dataset.percentage" => ratio(sum("dataset.bytes") * 100.0, net),
                    b"allocator-fragmentation.ratio" => {
                        ratio(sum("allocator.active"), sum("allocator.allocated"))
                    }
                    b"allocator-rss.ratio" => ratio(resident, sum("allocator.active")),
                    b"rss-overhead.ratio" => ratio(rss, resident),
                    _ => ratio(rss, rss - sum("fragmentation.bytes")),
                };
                encode::double(out, proto, d);
            }
            Field::Other(v) => v.encode(out, proto),
        }
    }
}

/// The fields recomputed from the sums.
fn is_ratio(name: &[u8]) -> bool {
    matches!(
        name,
        b"peak.percentage"
            | b"dataset.percentage"
            | b"allocator-fragmentation.ratio"
            | b"allocator-rss.ratio"
            | b"rss-overhead.ratio"
            | b"fragmentation"
    )
}

/// A value as a number, for keeping the largest (0 when it is none).
fn number(v: &Value) -> f64 {
    match v {
        Value::Int(n) => *n as f64,
        Value::Double(d) => *d,
        Value::Bulk(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, Limits};

    fn node(total: i64, startup: i64, keys: i64, frag_bytes: i64) -> Vec<u8> {
        let mut out = BytesMut::new();
        let fields: Vec<(&str, Value)> = vec![
            ("peak.allocated", Value::Int(total * 2)),
            ("total.allocated", Value::Int(total)),
            ("startup.allocated", Value::Int(startup)),
            (
                "db.0",
                Value::Array(vec![
                    Value::Bulk("overhead.hashtable.main".into()),
                    Value::Int(keys),
                ]),
            ),
            ("keys.count", Value::Int(keys)),
            ("keys.bytes-per-key", Value::Int(1)),
            ("dataset.bytes", Value::Int(total - startup)),
            ("dataset.percentage", Value::Bulk("100".into())),
            ("peak.percentage", Value::Bulk("50".into())),
            ("allocator.allocated", Value::Int(total)),
            ("allocator.active", Value::Int(total * 2)),
            ("allocator.resident", Value::Int(total * 4)),
            ("allocator-fragmentation.ratio", Value::Bulk("2".into())),
            ("rss-overhead.bytes", Value::Int(total * 4)),
            ("rss-overhead.ratio", Value::Bulk("2".into())),
            ("fragmentation", Value::Bulk("8".into())),
            ("fragmentation.bytes", Value::Int(frag_bytes)),
        ];
        encode::array_header(&mut out, fields.len() * 2);
        for (k, v) in fields {
            encode::bulk(&mut out, k.as_bytes());
            v.encode(&mut out, Protocol::Resp2);
        }
        out.to_vec()
    }

    fn merged(proto: Protocol) -> Vec<(String, Value)> {
        let values: Vec<Value> = [node(1000, 200, 8, 7000), node(3000, 200, 0, 21000)]
            .iter()
            .map(|r| decode(r, &Limits::default()).unwrap().unwrap().0)
            .collect();
        let mut out = BytesMut::new();
        stats(&values, proto, &mut out);
        let (value, _) = decode(&out, &Limits::default()).unwrap().unwrap();
        value
            .pairs()
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k.as_bytes().unwrap()).into(),
                    v.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn sums_and_ratios_recomputed_from_the_sums() {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let m = merged(proto);
            let get = |name: &str| m.iter().find(|(k, _)| k == name).unwrap().1.clone();
            let num = |name: &str| number(&get(name));
            let names: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                names[..4],
                [
                    "peak.allocated",
                    "total.allocated",
                    "startup.allocated",
                    "db.0"
                ]
            );
            assert_eq!(get("total.allocated"), Value::Int(4000));
            assert_eq!(get("keys.count"), Value::Int(8));
            // (4000 - 400) / 8 keys.
            assert_eq!(get("keys.bytes-per-key"), Value::Int(450));
            assert_eq!(get("db.0").pairs()[0].1, &Value::Int(8));
            assert_eq!(num("peak.percentage"), 50.0);
            assert_eq!(num("dataset.percentage"), 100.0);
            assert_eq!(num("allocator-fragmentation.ratio"), 2.0);
            // RSS 32000 = resident 16000 + overhead 16000.
            assert_eq!(num("rss-overhead.ratio"), 2.0);
            // 32000 / (32000 - 28000).
            assert_eq!(num("fragmentation"), 8.0);
            let double = matches!(get("fragmentation"), Value::Double(_));
            assert_eq!(double, proto == Protocol::Resp3, "{proto:?}");
        }
    }
}
