use super::*;

fn dec(input: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    decode(input, &Limits::default())
}

fn one(input: &[u8]) -> Value {
    let (v, used) = dec(input).unwrap().expect("complete");
    assert_eq!(used, input.len());
    v
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn every_type() {
    assert_eq!(one(b"+OK\r\n"), Value::Simple(b("OK")));
    assert_eq!(one(b"-ERR x\r\n"), Value::Error(b("ERR x")));
    assert_eq!(one(b"!5\r\nERR y\r\n"), Value::Error(b("ERR y")));
    assert_eq!(one(b":-7\r\n"), Value::Int(-7));
    assert_eq!(one(b"$2\r\n\r\n\r\n"), Value::Bulk(b("\r\n")));
    for nil in [&b"$-1\r\n"[..], b"*-1\r\n", b"_\r\n"] {
        assert_eq!(one(nil), Value::Nil);
    }
    assert_eq!(one(b",1.5\r\n"), Value::Double(1.5));
    assert_eq!(one(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
    assert_eq!(one(b"#f\r\n"), Value::Bool(false));
    assert_eq!(one(b"(123\r\n"), Value::BigNumber(b("123")));
    assert_eq!(one(b"=7\r\ntxt:abc\r\n"), Value::Verbatim(b("abc")));
    assert_eq!(
        one(b"*2\r\n:1\r\n*0\r\n"),
        Value::Array(vec![Value::Int(1), Value::Array(vec![])])
    );
    assert_eq!(
        one(b"~1\r\n+a\r\n"),
        Value::Set(vec![Value::Simple(b("a"))])
    );
    assert_eq!(
        one(b">1\r\n+a\r\n"),
        Value::Push(vec![Value::Simple(b("a"))])
    );
    assert_eq!(
        one(b"%1\r\n+a\r\n:1\r\n"),
        Value::Map(vec![(Value::Simple(b("a")), Value::Int(1))])
    );
    assert_eq!(one(b"|1\r\n+ttl\r\n:3\r\n+OK\r\n"), Value::Simple(b("OK")));
}

#[test]
fn incomplete_and_trailing() {
    let input = b"*2\r\n$3\r\nabc\r\n%1\r\n+k\r\n+v\r\n";
    for cut in 0..input.len() {
        assert_eq!(dec(&input[..cut]), Ok(None), "cut {cut}");
    }
    let (_, used) = dec(b":1\r\n:2\r\n").unwrap().unwrap();
    assert_eq!(used, 4);
}

#[test]
fn errors() {
    use ProtocolError as E;
    assert_eq!(dec(b":x\r\n"), Err(E::InvalidInteger));
    assert_eq!(dec(b",x\r\n"), Err(E::InvalidDouble));
    assert_eq!(dec(b"#x\r\n"), Err(E::InvalidBool));
    assert_eq!(dec(b"=2\r\nab\r\n"), Err(E::InvalidVerbatim));
    assert_eq!(dec(b"$-2\r\n"), Err(E::InvalidBulkLength));
    assert_eq!(dec(b"*-2\r\n"), Err(E::InvalidMultibulkLength));
    assert_eq!(dec(b"$1\r\nabc"), Err(E::ExpectedCrlf));
    assert_eq!(dec(b"?\r\n"), Err(E::UnknownReplyType(b'?')));
    let deep = "*1\r\n".repeat(129) + ":1\r\n";
    assert_eq!(dec(deep.as_bytes()), Err(E::TooDeep));
    // A huge declared count allocates nothing up front.
    assert_eq!(dec(b"*16777216\r\n:1\r\n"), Ok(None));
}

#[test]
fn accessors() {
    let shards = one(b"*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*0\r\n");
    assert_eq!(
        shards
            .map_get("slots")
            .and_then(Value::as_array)
            .map(|s| s.len()),
        Some(2)
    );
    assert_eq!(
        shards.map_get("slots").unwrap().as_array().unwrap()[1].as_int(),
        Some(5460)
    );
    assert_eq!(shards.map_get("nope"), None);
    let map = one(b"%1\r\n+port\r\n:7000\r\n");
    assert_eq!(map.map_get("port").and_then(Value::as_int), Some(7000));
    assert_eq!(one(b"$2\r\nhi\r\n").as_bytes(), Some(&b"hi"[..]));
    assert_eq!(one(b":1\r\n").as_bytes(), None);
    assert!(one(b"-ERR\r\n").is_error());
    assert!(!one(b"+OK\r\n").is_error());
    assert_eq!(one(b"+OK\r\n").as_array(), None);
}

#[test]
fn encode_round_trips() {
    let v = Value::Array(vec![
        Value::Simple(b("OK")),
        Value::Error(b("ERR x")),
        Value::Int(i64::MIN),
        Value::Bulk(b("a\r\nb")),
        Value::Nil,
        Value::Map(vec![(
            Value::Bulk(b("k")),
            Value::Set(vec![Value::Bool(true)]),
        )]),
        Value::Double(-0.25),
        Value::BigNumber(b("12345678901234567890")),
        Value::Verbatim(b("text")),
        Value::Push(vec![]),
    ]);
    let mut buf = BytesMut::new();
    v.encode(&mut buf, Protocol::Resp3);
    assert_eq!(one(&buf), v);
}

#[test]
fn encode_for_resp2_flattens_resp3_types() {
    let v = Value::Array(vec![
        Value::Map(vec![(
            Value::Bulk(b("k")),
            Value::Set(vec![Value::Bool(true)]),
        )]),
        Value::Double(f64::INFINITY),
        Value::BigNumber(b("123")),
        Value::Verbatim(b("text")),
        Value::Nil,
        Value::Push(vec![Value::Bool(false)]),
    ]);
    let mut buf = BytesMut::new();
    v.encode(&mut buf, Protocol::Resp2);
    let want = Value::Array(vec![
        Value::Array(vec![Value::Bulk(b("k")), Value::Array(vec![Value::Int(1)])]),
        Value::Bulk(b("inf")),
        Value::Bulk(b("123")),
        Value::Bulk(b("text")),
        Value::Nil,
        Value::Array(vec![Value::Int(0)]),
    ]);
    assert_eq!(one(&buf), want);
    for prefix in [b'%', b'~', b',', b'#', b'(', b'=', b'_', b'>'] {
        assert!(
            !buf[..]
                .split(|&c| c == b'\n')
                .any(|line| line.first() == Some(&prefix)),
            "RESP3 type {} in a RESP2 reply: {:?}",
            prefix as char,
            String::from_utf8_lossy(&buf)
        );
    }
}
