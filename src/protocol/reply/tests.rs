use super::*;
use crate::protocol::{decode, Value};
use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

fn scanner() -> ReplyScanner {
    ReplyScanner::new(Limits::default())
}

/// Frame lengths found scanning all of `input` at once.
fn frames(input: &[u8]) -> Result<Vec<usize>, ProtocolError> {
    let mut s = scanner();
    let mut at = 0;
    let mut out = Vec::new();
    while let Some(len) = s.scan(&input[at..])? {
        out.push(len);
        at += len;
    }
    Ok(out)
}

#[test]
fn every_type_frames() {
    let cases: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR no\r\n",
        b":-12\r\n",
        b"$3\r\na\r\n\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"_\r\n",
        b",3.14\r\n",
        b",-inf\r\n",
        b"#t\r\n",
        b"(3492890328409238509324850943850943825024385\r\n",
        b"=8\r\ntxt:abcd\r\n",
        b"!10\r\nERR boom!\n\r\n",
        b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n+y\r\n",
        b"%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n:1\r\n:2\r\n",
        b"~2\r\n+a\r\n+b\r\n",
        b">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n",
        b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:1\r\n:2\r\n",
        b"|1\r\n+a\r\n+b\r\n|0\r\n+OK\r\n",
        b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n",
        b"%0\r\n",
        b"~0\r\n",
    ];
    for &case in cases {
        assert_eq!(
            frames(case).unwrap(),
            vec![case.len()],
            "{:?}",
            String::from_utf8_lossy(case)
        );
        // Every strict prefix is incomplete, never an error.
        for cut in 0..case.len() {
            assert_eq!(scanner().scan(&case[..cut]), Ok(None), "{case:?} cut {cut}");
        }
    }
    let all: Vec<u8> = cases.concat();
    let lens: Vec<usize> = cases.iter().map(|c| c.len()).collect();
    assert_eq!(frames(&all).unwrap(), lens);
}

#[test]
fn errors() {
    use ProtocolError as E;
    let cases: &[(&[u8], E)] = &[
        (b"x\r\n", E::UnknownReplyType(b'x')),
        (b"*1\r\n?\r\n", E::UnknownReplyType(b'?')),
        (b"$?\r\n", E::InvalidBulkLength),
        (b"$-2\r\n", E::InvalidBulkLength),
        (b"=-1\r\n", E::InvalidBulkLength),
        (b"$x\r\n", E::InvalidBulkLength),
        (b"$536870913\r\n", E::InvalidBulkLength),
        (b"$99999999999999999999\r\n", E::InvalidBulkLength),
        (b"*?\r\n", E::InvalidMultibulkLength),
        (b"*-2\r\n", E::InvalidMultibulkLength),
        (b"%-1\r\n", E::InvalidMultibulkLength),
        (b"*16777217\r\n", E::InvalidMultibulkLength),
        (b"%9223372036854775807\r\n", E::InvalidMultibulkLength),
        (b"$1\r\nab\r\n", E::ExpectedCrlf),
        (b"+OK\rX", E::ExpectedCrlf),
        (b"$11111111111111111111111111111111111", E::LineTooLong),
    ];
    for (input, want) in cases {
        assert_eq!(
            frames(input),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let deep = "*1\r\n".repeat(129) + ":1\r\n";
    assert_eq!(frames(deep.as_bytes()), Err(E::TooDeep));
    let ok = "*1\r\n".repeat(128) + ":1\r\n";
    assert_eq!(frames(ok.as_bytes()).unwrap(), vec![ok.len()]);
    let small = Limits {
        max_bulk_len: 4,
        ..Limits::default()
    };
    assert_eq!(
        ReplyScanner::new(small).scan(b"+hello"),
        Err(E::LineTooLong)
    );
    assert_eq!(ReplyScanner::new(small).scan(b"+hell"), Ok(None));
}

/// The line limit counts the body only (type byte and CRLF excluded), also
/// once the line's end has arrived: `find_line` counts from the type byte,
/// so the scanner must pass it one more.
#[test]
fn line_limit_counts_the_body() {
    let small = Limits {
        max_bulk_len: 4,
        ..Limits::default()
    };
    let scan = |input: &[u8]| ReplyScanner::new(small).scan(input);
    assert_eq!(scan(b"+hell\r\n"), Ok(Some(7)));
    assert_eq!(scan(b"+hello\r\n"), Err(ProtocolError::LineTooLong));
    let len_line = |n: usize| [&b"*"[..], &vec![b'0'; n], b"\r\n"].concat();
    assert_eq!(
        scan(&len_line(MAX_LEN_LINE)),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        scan(&len_line(MAX_LEN_LINE + 1)),
        Err(ProtocolError::LineTooLong)
    );
}

#[test]
fn huge_bulk_in_small_chunks_is_linear() {
    let mut input = BytesMut::new();
    crate::protocol::encode::bulk(&mut input, &vec![b'x'; 16 << 20]);
    let mut s = scanner();
    let mut got = None;
    for end in (4096..input.len() + 4096).step_by(4096) {
        let end = end.min(input.len());
        if let Some(len) = s.scan(&input[..end]).unwrap() {
            got = Some(len);
        }
    }
    assert_eq!(got, Some(input.len()));
    assert!(s.scanned < 100, "scanned {}", s.scanned);
}

#[test]
fn big_nested_reply_in_small_chunks_scans_once() {
    let mut input = BytesMut::new();
    input.put_slice(b"*1000\r\n");
    for i in 0..1000 {
        input.put_slice(b"*3\r\n+field\r\n");
        crate::protocol::encode::integer(&mut input, i);
        crate::protocol::encode::bulk(&mut input, b"value");
    }
    let mut s = scanner();
    let mut got = None;
    for end in 1..=input.len() {
        if let Some(len) = s.scan(&input[..end]).unwrap() {
            assert_eq!(end, input.len());
            got = Some(len);
        }
    }
    assert_eq!(got, Some(input.len()));
    // Each \r may be seen twice: once at the end of a read, once with its \n.
    assert!(
        s.scanned <= input.len() * 2,
        "{} > {}",
        s.scanned,
        input.len()
    );
}

#[test]
fn garbage_never_panics() {
    let limits = Limits {
        max_bulk_len: 16,
        max_array_len: 4,
        max_depth: 3,
        max_inline_len: 16,
    };
    proptest!(|(input in proptest::collection::vec(
        prop_oneof![Just(b'*'), Just(b'$'), Just(b'%'), Just(b'|'), Just(b'\r'), Just(b'\n'), Just(b'-'), b'0'..=b'9', any::<u8>()], 0..64))| {
        let mut s = ReplyScanner::new(limits);
        let mut at = 0;
        while let Ok(Some(len)) = s.scan(&input[at..]) {
            prop_assert!(len > 0);
            at += len;
        }
        let _ = decode(&input, &limits);
    });
}

// ---- property: chunked scanning equals whole scanning equals the input ----

/// Encodes a double so that `str::parse` gives it back.
fn double_text(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        d.to_string()
    }
}

fn with_len(prefix: u8, data: &[u8]) -> Vec<u8> {
    let mut out = format!("{}{}\r\n", char::from(prefix), data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A reply's wire bytes and the value `decode` must produce for it.
fn reply() -> impl Strategy<Value = (Vec<u8>, Value)> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..16);
    let leaf = prop_oneof![
        "[ -~]{0,10}".prop_map(|s| (format!("+{s}\r\n").into_bytes(), Value::Simple(s.into()))),
        "ERR [ -~]{0,10}".prop_map(|s| (format!("-{s}\r\n").into_bytes(), Value::Error(s.into()))),
        bytes().prop_map(|b| (with_len(b'!', &b), Value::Error(b.into()))),
        any::<i64>().prop_map(|i| (format!(":{i}\r\n").into_bytes(), Value::Int(i))),
        bytes().prop_map(|b| (with_len(b'$', &b), Value::Bulk(b.into()))),
        prop_oneof![
            Just(&b"$-1\r\n"[..]),
            Just(&b"*-1\r\n"[..]),
            Just(&b"_\r\n"[..])
        ]
        .prop_map(|b| (b.to_vec(), Value::Nil)),
        prop_oneof![
            any::<f64>().prop_filter("not nan", |d| !d.is_nan()),
            Just(f64::INFINITY)
        ]
        .prop_map(|d| (
            format!(",{}\r\n", double_text(d)).into_bytes(),
            Value::Double(d)
        )),
        any::<bool>().prop_map(|b| (
            if b {
                b"#t\r\n".to_vec()
            } else {
                b"#f\r\n".to_vec()
            },
            Value::Bool(b)
        )),
        "-?[1-9][0-9]{0,30}"
            .prop_map(|s| (format!("({s}\r\n").into_bytes(), Value::BigNumber(s.into()))),
        bytes().prop_map(|b| {
            let mut data = b"mkd:".to_vec();
            data.extend_from_slice(&b);
            (with_len(b'=', &data), Value::Verbatim(b.into()))
        }),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let list = || proptest::collection::vec(inner.clone(), 0..6);
        let header = |p: char, n: usize| format!("{p}{n}\r\n").into_bytes();
        prop_oneof![
            (0..3usize, list()).prop_map(move |(kind, items)| {
                let (p, wrap): (char, fn(Vec<Value>) -> Value) = match kind {
                    0 => ('*', Value::Array),
                    1 => ('~', Value::Set),
                    _ => ('>', Value::Push),
                };
                let mut out = header(p, items.len());
                let mut vals = Vec::new();
                for (b, v) in items {
                    out.extend(b);
                    vals.push(v);
                }
                (out, wrap(vals))
            }),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(
                move |pairs| {
                    let mut out = header('%', pairs.len());
                    let mut vals = Vec::new();
                    for ((kb, kv), (vb, vv)) in pairs {
                        out.extend(kb);
                        out.extend(vb);
                        vals.push((kv, vv));
                    }
                    (out, Value::Map(vals))
                }
            ),
            // An attribute is skipped by decode: the value is the one it annotates.
            (
                proptest::collection::vec((inner.clone(), inner.clone()), 0..3),
                inner.clone()
            )
                .prop_map(move |(pairs, (b, v))| {
                    let mut out = header('|', pairs.len());
                    for ((kb, _), (vb, _)) in pairs {
                        out.extend(kb);
                        out.extend(vb);
                    }
                    out.extend(b);
                    (out, v)
                }),
        ]
    })
}

proptest! {
    #[test]
    fn chunked_equals_whole_equals_input(
        replies in proptest::collection::vec(reply(), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream: Vec<u8> = replies.iter().flat_map(|(b, _)| b.clone()).collect();
        let want: Vec<usize> = replies.iter().map(|(b, _)| b.len()).collect();
        prop_assert_eq!(&frames(&stream).unwrap(), &want);

        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut s = scanner();
        let (mut start, mut got) = (0, Vec::new());
        for end in points {
            while let Some(len) = s.scan(&stream[start..end]).unwrap() {
                got.push(len);
                start += len;
            }
        }
        prop_assert_eq!(&got, &want);

        let mut at = 0;
        for (bytes, value) in &replies {
            let (v, used) = decode(&stream[at..], &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(&v, value);
            at += used;
        }
    }
}
