//! A small decoded reply tree, for the control path only (topology,
//! `COMMAND` replies). The hot path never decodes: see [`super::ReplyScanner`].

use bytes::{Bytes, BytesMut};

use super::reply::parse_len;
use super::{encode, find_byte, parse_i64, Limits, Protocol, ProtocolError};

/// A decoded RESP2/RESP3 reply. RESP2 null bulk and null array, and RESP3
/// null, all decode to [`Value::Nil`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+` simple string.
    Simple(Bytes),
    /// `-` error, or `!` bulk error; the text without the leading `-`.
    Error(Bytes),
    /// `:` integer.
    Int(i64),
    /// `$` bulk string.
    Bulk(Bytes),
    /// `$-1`, `*-1` or `_`.
    Nil,
    /// `*` array.
    Array(Vec<Value>),
    /// `%` map, entries in wire order.
    Map(Vec<(Value, Value)>),
    /// `~` set.
    Set(Vec<Value>),
    /// `,` double.
    Double(f64),
    /// `#` boolean.
    Bool(bool),
    /// `(` big number, its decimal digits.
    BigNumber(Bytes),
    /// `=` verbatim string: the payload without the `txt:` style prefix.
    Verbatim(Bytes),
    /// `>` push.
    Push(Vec<Value>),
}

/// Decodes one reply from the front of `buf`. `Ok(None)` if it is
/// incomplete; otherwise the value and the number of bytes it occupied.
/// Attributes (`|`) are skipped: the value returned is the reply they
/// annotate, and the byte count includes them.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, ProtocolError> {
    let decoder = Decoder { buf, limits };
    match decoder.value(0, 0) {
        Ok((v, end)) => Ok(Some((v, end))),
        Err(Stop::Incomplete) => Ok(None),
        Err(Stop::Invalid(e)) => Err(e),
    }
}

/// Why decoding stopped early.
enum Stop {
    Incomplete,
    Invalid(ProtocolError),
}

impl From<ProtocolError> for Stop {
    fn from(e: ProtocolError) -> Self {
        Stop::Invalid(e)
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
    limits: &'a Limits,
}

impl Decoder<'_> {
    /// Decodes the value at `pos`, inside `depth` open aggregates (counted
    /// like the scanner: only non-empty ones, attributes included).
    fn value(&self, pos: usize, depth: usize) -> Result<(Value, usize), Stop> {
        let kind = *self.buf.get(pos).ok_or(Stop::Incomplete)?;
        let (body, next) = self.line(pos, kind)?;
        let bytes = |b: &[u8]| Bytes::copy_from_slice(b);
        Ok(match kind {
            b'+' => (Value::Simple(bytes(body)), next),
            b'-' => (Value::Error(bytes(body)), next),
            b':' => (
                Value::Int(parse_i64(body).ok_or(ProtocolError::InvalidInteger)?),
                next,
            ),
            b'(' => (Value::BigNumber(bytes(body)), next),
            b'_' => (Value::Nil, next),
            b',' => {
                let s = std::str::from_utf8(body).map_err(|_| ProtocolError::InvalidDouble)?;
                let d = s.parse().map_err(|_| ProtocolError::InvalidDouble)?;
                (Value::Double(d), next)
            }
            b'#' => match body {
                b"t" => (Value::Bool(true), next),
                b"f" => (Value::Bool(false), next),
                _ => return Err(ProtocolError::InvalidBool.into()),
            },
            b'$' | b'=' | b'!' => {
                let len = match parse_len(body, kind == b'$') {
                    Some(None) => return Ok((Value::Nil, next)),
                    Some(Some(n)) if n <= self.limits.max_bulk_len => n,
                    _ => return Err(ProtocolError::InvalidBulkLength.into()),
                };
                let end = next
                    .checked_add(len)
                    .filter(|e| e.checked_add(2).is_some())
                    .ok_or(ProtocolError::InvalidBulkLength)?;
                let data = self.buf.get(next..end).ok_or(Stop::Incomplete)?;
                match self.buf.get(end..end + 2) {
                    None => return Err(Stop::Incomplete),
                    Some(b"\r\n") => {}
                    Some(_) => return Err(ProtocolError::ExpectedCrlf.into()),
                }
                let v = match kind {
                    b'$' => Value::Bulk(bytes(data)),
                    b'!' => Value::Error(bytes(data)),
                    _ => match data {
                        [_, _, _, b':', text @ ..] => Value::Verbatim(bytes(text)),
                        _ => return Err(ProtocolError::InvalidVerbatim.into()),
                    },
                };
                (v, end + 2)
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = match parse_len(body, kind == b'*') {
                    Some(None) => return Ok((Value::Nil, next)),
                    Some(Some(n)) if n <= self.limits.max_array_len => n,
                    _ => return Err(ProtocolError::InvalidMultibulkLength.into()),
                };
                // Same rule as the scanner: empty aggregates don't nest.
                if (n > 0 || kind == b'|') && depth >= self.limits.max_depth {
                    return Err(ProtocolError::TooDeep.into());
                }
                // Never trust a declared count for allocation.
                let cap = n.min(1024);
                let mut pos = next;
                let item = |pos: &mut usize| -> Result<Value, Stop> {
                    let (v, end) = self.value(*pos, depth + 1)?;
                    *pos = end;
                    Ok(v)
                };
                match kind {
                    b'%' | b'|' => {
                        let mut entries = Vec::with_capacity(cap);
                        for _ in 0..n {
                            let k = item(&mut pos)?;
                            let v = item(&mut pos)?;
                            entries.push((k, v));
                        }
                        if kind == b'|' {
                            // The attribute annotates the next reply: return that.
                            return Ok((item(&mut pos)?, pos));
                        }
                        (Value::Map(entries), pos)
                    }
                    _ => {
                        let mut items = Vec::with_capacity(cap);
                        for _ in 0..n {
                            items.push(item(&mut pos)?);
                        }
                        let v = match kind {
                            b'*' => Value::Array(items),
                            b'~' => Value::Set(items),
                            _ => Value::Push(items),
                        };
                        (v, pos)
                    }
                }
            }
            _ => return Err(ProtocolError::UnknownReplyType(kind).into()),
        })
    }

    /// The line after the type byte at `pos`, and the offset after its CRLF.
    fn line(&self, pos: usize, kind: u8) -> Result<(&[u8], usize), Stop> {
        let max_line = match kind {
            b'$' | b'=' | b'!' | b'*' | b'~' | b'>' | b'%' | b'|' => 32,
            _ => self.limits.max_bulk_len,
        };
        let rest = self.buf.get(pos + 1..).unwrap_or_default();
        let Some(cr) = find_byte(rest, b'\r') else {
            return Err(if rest.len() > max_line {
                ProtocolError::LineTooLong.into()
            } else {
                Stop::Incomplete
            });
        };
        if cr > max_line {
            return Err(ProtocolError::LineTooLong.into());
        }
        match rest.get(cr + 1) {
            None => Err(Stop::Incomplete),
            Some(b'\n') => Ok((&rest[..cr], pos + 1 + cr + 2)),
            Some(_) => Err(ProtocolError::ExpectedCrlf.into()),
        }
    }
}

impl Value {
    /// The bytes of a simple string, bulk string or verbatim string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Bulk(b) | Value::Verbatim(b) => Some(b),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }

    /// The entries of a map, or of a RESP2 flat `[k1, v1, k2, v2, ...]`
    /// array (how RESP2 sends a map); none for other values.
    pub fn pairs(&self) -> Vec<(&Value, &Value)> {
        match self {
            Value::Map(entries) => entries.iter().map(|(k, v)| (k, v)).collect(),
            Value::Array(items) => items.chunks_exact(2).map(|kv| (&kv[0], &kv[1])).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether this is an error reply (`-` or `!`).
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// The value under `key` in a map, or in a RESP2 flat `[k1, v1, k2, v2,
    /// ...]` array (how `CLUSTER SHARDS` answers over RESP2). Keys compare
    /// as exact bytes; the first match wins.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        let key = key.as_bytes();
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key))
                .map(|(_, v)| v),
            Value::Array(items) => items
                .chunks_exact(2)
                .find(|kv| kv[0].as_bytes() == Some(key))
                .map(|kv| &kv[1]),
            _ => None,
        }
    }

    /// Appends this value in `proto`: as decoded for RESP3, with the RESP2
    /// fallbacks of [`encode`] for RESP2 (a map as a flat array, a double as
    /// a bulk string, ...). Verbatim strings get the `txt:` format; errors
    /// are written as simple errors (CR/LF become spaces).
    pub fn encode(&self, buf: &mut BytesMut, proto: Protocol) {
        match self {
            Value::Simple(s) => encode::simple(buf, s),
            Value::Error(s) => encode::error(buf, s),
            Value::Int(i) => encode::integer(buf, *i),
            Value::Bulk(b) => encode::bulk(buf, b),
            Value::Nil => encode::null(buf, proto),
            Value::Array(items) | Value::Set(items) | Value::Push(items) => {
                match self {
                    Value::Array(_) => encode::array_header(buf, items.len()),
                    Value::Set(_) => encode::set_header(buf, proto, items.len()),
                    _ => encode::push_header(buf, proto, items.len()),
                }
                items.iter().for_each(|v| v.encode(buf, proto));
            }
            Value::Map(entries) => {
                encode::map_header(buf, proto, entries.len());
                for (k, v) in entries {
                    k.encode(buf, proto);
                    v.encode(buf, proto);
                }
            }
            Value::Double(d) => encode::double(buf, proto, *d),
            Value::Bool(b) => encode::boolean(buf, proto, *b),
            Value::BigNumber(n) => encode::big_number(buf, proto, n),
            Value::Verbatim(text) => encode::verbatim(buf, proto, text),
        }
    }
}

#[cfg(test)]
mod tests;
