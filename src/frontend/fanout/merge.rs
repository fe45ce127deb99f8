//! Merging the masters' replies to one command into one reply in the
//! client's protocol, as the command's [`Merge`] says; and every node's
//! `+OK` to a command sent to all of them ([`all_ok`]).
//!
//! `KEYS` is never decoded: each master's array is passed on as the bytes
//! it arrived in, under one header of keyway's ([`concat`]), so a reply of
//! millions of keys costs keyway no copy.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::backend::BackendError;
use crate::command::Merge;
use crate::protocol::{decode, encode, find_byte, parse_i64, Limits, Protocol, Value};

/// One master's reply decoded. A node that failed, or sent what keyway
/// cannot decode, is an error reply like those the nodes send.
pub(super) fn decode_part(part: Result<Bytes, BackendError>) -> Value {
    match part {
        Ok(bytes) => match decode(&bytes, &Limits::default()) {
            Ok(Some((value, _))) => value,
            _ => Value::Error(Bytes::from_static(
                b"ERR keyway could not merge a node's reply",
            )),
        },
        Err(e) => {
            let mut reply = BytesMut::new();
            e.write_reply(&mut reply);
            // `-text\r\n`: the text alone.
            let end = reply.len() - 2;
            Value::Error(reply.freeze().slice(1..end))
        }
    }
}

/// The masters' replies decoded; `None` when one failed or is an error,
/// which is then written to `out` as the answer (the first one wins).
pub fn values(
    parts: impl Iterator<Item = Result<Bytes, BackendError>>,
    proto: Protocol,
    out: &mut BytesMut,
) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    for part in parts {
        let value = decode_part(part);
        if value.is_error() {
            value.encode(out, proto);
            return None;
        }
        values.push(value);
    }
    Some(values)
}

/// Merges the masters' replies into one reply in `proto`, in chunks to be
/// written one after another.
pub fn merge(
    how: Merge,
    parts: impl Iterator<Item = Result<Bytes, BackendError>>,
    proto: Protocol,
) -> Vec<Bytes> {
    if how == Merge::Concat {
        return concat(parts, proto);
    }
    let mut out = BytesMut::new();
    if let Some(values) = values(parts, proto, &mut out) {
        combine(how, &values, proto, &mut out);
    }
    vec![out.freeze()]
}

/// `KEYS`: one array header counting every master's elements, then each
/// master's elements as it sent them (slices of its reply, not copies).
/// The masters' key sets are disjoint, so nothing needs sorting out. A
/// failed part, or one that is not an array, makes the reply an error.
fn concat(parts: impl Iterator<Item = Result<Bytes, BackendError>>, proto: Protocol) -> Vec<Bytes> {
    let parts: Vec<_> = parts.collect();
    let arrays: Option<Vec<(&Bytes, usize, usize)>> = parts
        .iter()
        .map(|part| {
            let part = part.as_ref().ok()?;
            array_header(part).map(|(count, start)| (part, count, start))
        })
        .collect();
    let mut header = BytesMut::new();
    let Some(arrays) = arrays else {
        // The error to pass on, found as for any merge.
        if values(parts.into_iter(), proto, &mut header).is_some() {
            encode::error(&mut header, b"ERR keyway could not merge a node's reply");
        }
        return vec![header.freeze()];
    };
    encode::array_header(&mut header, arrays.iter().map(|a| a.1).sum());
    let elements = arrays.iter().map(|(part, _, start)| part.slice(*start..));
    std::iter::once(header.freeze()).chain(elements).collect()
}

/// The element count of an array reply and where its first element starts.
fn array_header(reply: &[u8]) -> Option<(usize, usize)> {
    let rest = reply.strip_prefix(b"*")?;
    let cr = find_byte(rest, b'\r')?;
    let count = usize::try_from(parse_i64(&rest[..cr])?).ok()?;
    Some((count, 1 + cr + 2))
}

/// Combines the masters' decoded replies as `how` says, into `out`.
fn combine(how: Merge, values: &[Value], proto: Protocol, out: &mut BytesMut) {
    match how {
        Merge::Concat => unreachable!("KEYS replies are joined undecoded, by `concat`"),
        Merge::Union => {
            let mut all: Vec<&[u8]> = values
                .iter()
                .flat_map(|v| v.as_array().unwrap_or_default())
                .filter_map(Value::as_bytes)
                .collect();
            all.sort_unstable();
            all.dedup();
            encode::array_header(out, all.len());
            all.into_iter().for_each(|item| encode::bulk(out, item));
        }
        Merge::Sum => {
            let sum = values.iter().filter_map(Value::as_int).sum();
            encode::integer(out, sum);
        }
        Merge::AllOf => {
            let arrays: Vec<&[Value]> = values.iter().filter_map(Value::as_array).collect();
            let len = arrays.iter().map(|a| a.len()).max().unwrap_or(0);
            encode::array_header(out, len);
            for i in 0..len {
                let all = arrays
                    .iter()
                    .all(|a| a.get(i).and_then(Value::as_int) == Some(1));
                encode::integer(out, i64::from(all));
            }
        }
        Merge::AnyNonNil => {
            let found: Vec<&Value> = values.iter().filter(|v| **v != Value::Nil).collect();
            if found.is_empty() {
                return encode::null(out, proto);
            }
            // Any spread will do: the low bits of the clock pick one.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() as usize);
            found[nanos % found.len()].encode(out, proto);
        }
        Merge::MemoryStats => super::memory::stats(values, proto, out),
        Merge::Min => {
            let min = values.iter().filter_map(Value::as_int).min();
            encode::integer(out, min.unwrap_or(0));
        }
        Merge::Same => {
            let Some(first) = values.first() else {
                return encode::error(out, b"ERR no master answered");
            };
            if values.iter().all(|v| v == first) {
                first.encode(out, proto);
            } else {
                encode::error(
                    out,
                    b"ERR the cluster's masters answered differently; run the command on each master directly",
                );
            }
        }
        Merge::SumPerName => {
            // Names in the order of the first reply (the request's order).
            let mut order = Vec::new();
            let mut sums: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            for value in values {
                for (name, n) in value.pairs() {
                    let (Some(name), Some(n)) = (name.as_bytes(), n.as_int()) else {
                        continue;
                    };
                    let sum = sums.entry(name.to_vec()).or_insert_with(|| {
                        order.push(name.to_vec());
                        0
                    });
                    *sum += n;
                }
            }
            encode::map_header(out, proto, order.len());
            for name in order {
                encode::bulk(out, &name);
                encode::integer(out, sums[&name]);
            }
        }
    }
}

/// Every node's reply to a command sent to all of them (`CONFIG SET`),
/// nodes in the order given: `+OK` when each answered `+OK`. Otherwise the
/// first other reply: a node's error with `(node host:port)` appended (its
/// code and text kept), keyway's error for a node it could not reach
/// (which names the node already), or an error naming a node that
/// answered something else. `+OK` and errors read the same in RESP2 and
/// RESP3.
pub fn all_ok<'n>(
    parts: impl Iterator<Item = (&'n str, Result<Bytes, BackendError>)>,
    out: &mut BytesMut,
) {
    for (node, part) in parts {
        let reply = match part {
            Ok(reply) if reply[..] == *b"+OK\r\n" => continue,
            Ok(reply) => reply,
            Err(e) => return e.write_reply(out),
        };
        let text = match decode_part(Ok(reply)) {
            Value::Error(text) => format!("{} (node {node})", String::from_utf8_lossy(&text)),
            _ => format!("ERR keyway expected OK from node {node} and got another reply"),
        };
        return encode::error(out, text.as_bytes());
    }
    encode::simple(out, b"OK");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(how: Merge, parts: &[&[u8]], proto: Protocol) -> Vec<u8> {
        let parts = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p)));
        merge(how, parts, proto).concat()
    }

    #[test]
    fn keys_are_joined_without_copies_under_one_header() {
        let parts = [
            Bytes::from_static(b"*2\r\n$1\r\nb\r\n$1\r\na\r\n"),
            Bytes::from_static(b"*0\r\n"),
            Bytes::from_static(b"*1\r\n$2\r\ncc\r\n"),
        ];
        let chunks = merge(
            Merge::Concat,
            parts.clone().into_iter().map(Ok),
            Protocol::Resp3,
        );
        assert_eq!(
            chunks.concat(),
            b"*3\r\n$1\r\nb\r\n$1\r\na\r\n$2\r\ncc\r\n",
            "each master's order, no sorting"
        );
        assert_eq!(chunks[1].as_ptr(), parts[0][4..].as_ptr(), "not copied");
        assert_eq!(
            run(Merge::Concat, &[b"*0\r\n", b"*0\r\n"], Protocol::Resp2),
            b"*0\r\n"
        );
        assert_eq!(
            run(
                Merge::Concat,
                &[b"*1\r\n$1\r\nk\r\n", b"-ERR boom\r\n"],
                Protocol::Resp2
            ),
            b"-ERR boom\r\n"
        );
        let odd = run(Merge::Concat, &[b"*0\r\n", b":1\r\n"], Protocol::Resp2);
        assert!(odd.starts_with(b"-ERR keyway could not merge"));
        let lost = [Ok(parts[0].clone()), Err(BackendError::Lost("n:1".into()))];
        let chunks = merge(Merge::Concat, lost.into_iter(), Protocol::Resp2);
        assert!(chunks
            .concat()
            .starts_with(b"-ERR keyway lost the connection to node n:1"));
    }

    #[test]
    fn unions_sums_and_per_name_sums() {
        let union = run(
            Merge::Union,
            &[
                b"*2\r\n$1\r\nb\r\n$1\r\na\r\n",
                b"*1\r\n$1\r\nb\r\n",
                b"*0\r\n",
            ],
            Protocol::Resp2,
        );
        assert_eq!(union, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        assert_eq!(
            run(
                Merge::Sum,
                &[b":2\r\n", b":0\r\n", b":5\r\n"],
                Protocol::Resp2
            ),
            b":7\r\n"
        );
        assert_eq!(
            run(
                Merge::Min,
                &[b":2\r\n", b":1\r\n", b":3\r\n"],
                Protocol::Resp2
            ),
            b":1\r\n"
        );
        let exists: [&[u8]; 2] = [b"*3\r\n:1\r\n:1\r\n:0\r\n", b"*3\r\n:1\r\n:0\r\n:0\r\n"];
        assert_eq!(
            run(Merge::AllOf, &exists, Protocol::Resp2),
            b"*3\r\n:1\r\n:0\r\n:0\r\n"
        );
        let keys: [&[u8]; 3] = [b"$-1\r\n", b"$1\r\nk\r\n", b"$-1\r\n"];
        assert_eq!(
            run(Merge::AnyNonNil, &keys, Protocol::Resp2),
            b"$1\r\nk\r\n"
        );
        let none: [&[u8]; 2] = [b"_\r\n", b"_\r\n"];
        assert_eq!(run(Merge::AnyNonNil, &none, Protocol::Resp3), b"_\r\n");
        let numsub: [&[u8]; 2] = [
            b"*4\r\n$1\r\nx\r\n:1\r\n$1\r\ny\r\n:0\r\n",
            b"*4\r\n$1\r\nx\r\n:2\r\n$1\r\ny\r\n:3\r\n",
        ];
        assert_eq!(
            run(Merge::SumPerName, &numsub, Protocol::Resp2),
            b"*4\r\n$1\r\nx\r\n:3\r\n$1\r\ny\r\n:3\r\n"
        );
        let numsub3: [&[u8]; 2] = [
            b"%2\r\n$1\r\nx\r\n:1\r\n$1\r\ny\r\n:0\r\n",
            b"%2\r\n$1\r\nx\r\n:2\r\n$1\r\ny\r\n:3\r\n",
        ];
        assert_eq!(
            run(Merge::SumPerName, &numsub3, Protocol::Resp3),
            b"%2\r\n$1\r\nx\r\n:3\r\n$1\r\ny\r\n:3\r\n"
        );
    }

    #[test]
    fn same_replies_merge_into_one() {
        let sha: &[u8] = b"$3\r\nabc\r\n";
        assert_eq!(run(Merge::Same, &[sha, sha, sha], Protocol::Resp2), sha);
        assert_eq!(
            run(Merge::Same, &[b"+OK\r\n", b"+OK\r\n"], Protocol::Resp2),
            b"+OK\r\n"
        );
        let differ = run(Merge::Same, &[b"+OK\r\n", b":1\r\n"], Protocol::Resp2);
        assert!(differ.starts_with(b"-ERR the cluster's masters answered differently"));
    }

    fn every_node(parts: Vec<(&str, Result<&'static [u8], BackendError>)>) -> Vec<u8> {
        let parts = parts
            .into_iter()
            .map(|(node, p)| (node, p.map(Bytes::from_static)));
        let mut out = BytesMut::new();
        all_ok(parts, &mut out);
        out.to_vec()
    }

    #[test]
    fn every_node_ok_is_ok_else_the_first_error_naming_its_node() {
        let ok: &[u8] = b"+OK\r\n";
        let all = vec![("a:1", Ok(ok)), ("b:2", Ok(ok)), ("c:3", Ok(ok))];
        assert_eq!(every_node(all), b"+OK\r\n");
        let refused: &[u8] =
            b"-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n";
        let later: &[u8] = b"-ERR other\r\n";
        let parts = vec![("a:1", Ok(ok)), ("b:2", Ok(refused)), ("c:3", Ok(later))];
        assert_eq!(
            every_node(parts),
            b"-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch' (node b:2)\r\n"
        );
        // The node's code is kept; a RESP3 bulk error reads as a simple one.
        let parts = vec![("a:1", Ok(&b"!21\r\nNOPERM no permissions\r\n"[..]))];
        assert_eq!(every_node(parts), b"-NOPERM no permissions (node a:1)\r\n");
        // An unreachable node: keyway's error, which names it already,
        // before the errors of the nodes after it.
        let parts = vec![
            ("a:1", Ok(ok)),
            ("b:2", Err(BackendError::Unreachable("b:2".into()))),
            ("c:3", Ok(refused)),
        ];
        let out = every_node(parts);
        assert!(
            out.starts_with(b"-CLUSTERDOWN keyway cannot connect to node b:2;"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert!(!out.ends_with(b"(node b:2)\r\n"));
        let parts = vec![("a:1", Ok(ok)), ("b:2", Ok(&b":1\r\n"[..]))];
        assert_eq!(
            every_node(parts),
            b"-ERR keyway expected OK from node b:2 and got another reply\r\n"
        );
        assert_eq!(
            every_node(Vec::new()),
            b"+OK\r\n",
            "asked of none: callers check"
        );
    }

    #[test]
    fn the_first_error_is_the_reply() {
        assert_eq!(
            run(
                Merge::Sum,
                &[b":1\r\n", b"-ERR boom\r\n", b"-ERR other\r\n"],
                Protocol::Resp2
            ),
            b"-ERR boom\r\n"
        );
        let parts = [
            Ok(Bytes::from_static(b":1\r\n")),
            Err(BackendError::Lost("n:1".into())),
        ];
        let out = merge(Merge::Sum, parts.into_iter(), Protocol::Resp2).concat();
        assert!(out.starts_with(b"-ERR keyway lost the connection to node n:1"));
    }
}
