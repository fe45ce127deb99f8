use super::*;
use proptest::prelude::*;

fn parser() -> RequestParser {
    RequestParser::new(Limits::default())
}

/// Parses everything in `input` at once; the args of each request.
fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut p = parser();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(req) = p.parse(&mut buf)? {
        out.push(req.args().map(<[u8]>::to_vec).collect());
    }
    Ok(out)
}

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn err(input: &[u8]) -> ProtocolError {
    parse_all(input).expect_err("should fail")
}

#[test]
fn arg_frames_are_the_arguments_as_sent() {
    let mut p = parser();
    let mut buf = BytesMut::from(
        &b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$10\r\n0123456789\r\n$0\r\n\r\n$2\r\n\r\n\r\n"[..],
    );
    let req = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(req.arg_frames(0..1), b"$4\r\nMSET\r\n");
    assert_eq!(req.arg_frames(1..3), b"$1\r\na\r\n$10\r\n0123456789\r\n");
    assert_eq!(req.arg_frames(3..5), b"$0\r\n\r\n$2\r\n\r\n\r\n");
    // Inline commands are encoded by keyway, with the same framing.
    let mut buf = BytesMut::from(&b"DEL  k1 \"k 2\"\r\n"[..]);
    let req = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(req.arg_frames(1..3), b"$2\r\nk1\r\n$3\r\nk 2\r\n");
    let built = Request::from_args(&[b"GET", &[b'x'; 1000]]);
    assert_eq!(built.arg_frames(0..2), &built.raw()[4..]);
}

#[test]
fn multibulk_zero_copy() {
    let mut p = parser();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPI"[..]);
    let req = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(req.raw().as_ref(), b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
    assert_eq!(req.argc(), 2);
    assert_eq!(req.arg(0), b"GET");
    assert_eq!(req.get(1), Some(&b"key"[..]));
    assert_eq!(req.get(2), None);
    assert_eq!(req.arg_bytes(1).unwrap(), "key");
    assert_eq!(p.parse(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"NG\r\n");
    let req = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(req.args().collect::<Vec<_>>(), [b"PING"]);
    assert!(buf.is_empty());
}

#[test]
fn binary_args() {
    let got = parse_all(b"*2\r\n$3\r\na\r\n\r\n$0\r\n\r\n").unwrap();
    assert_eq!(got, vec![vec![b"a\r\n".to_vec(), vec![]]]);
}

#[test]
fn empty_and_null_arrays_are_skipped() {
    assert_eq!(
        parse_all(b"*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n").unwrap(),
        vec![args(&["PING"])]
    );
}

#[test]
fn inline_commands() {
    assert_eq!(
        parse_all(b"\r\n\n  \r\nPING\r\nSET k  v\nGET \"a b\"\r\n").unwrap(),
        vec![
            args(&["PING"]),
            args(&["SET", "k", "v"]),
            args(&["GET", "a b"])
        ]
    );
    let mut p = parser();
    let mut buf = BytesMut::from(&b"set 'a' b\r\n"[..]);
    let req = p.parse(&mut buf).unwrap().unwrap();
    // Re-encoded to RESP once.
    assert_eq!(
        req.raw().as_ref(),
        b"*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
}

#[test]
fn inline_quoting_like_sdssplitargs() {
    let one = |line: &[u8]| {
        let mut input = line.to_vec();
        input.push(b'\n');
        parse_all(&input)
    };
    assert_eq!(
        one(br#"a "\x41\x4g\n\r\t\b\a\\\"\q" 'it\'s' "" ''"#).unwrap(),
        vec![vec![
            b"a".to_vec(),
            b"Ax4g\n\r\t\x08\x07\\\"q".to_vec(),
            b"it's".to_vec(),
            vec![],
            vec![],
        ]]
    );
    // A quote inside a token opens a quoted part of the same token.
    assert_eq!(one(br#"ab"c d""#).unwrap(), vec![vec![b"abc d".to_vec()]]);
    // \v and \f are blanks between tokens but not token terminators.
    assert_eq!(
        one(b"\x0ba\x0bb c").unwrap(),
        vec![vec![b"a\x0bb".to_vec(), b"c".to_vec()]]
    );
    // NUL ends the line, as in C.
    assert_eq!(one(b"GET a\0 b").unwrap(), vec![args(&["GET", "a"])]);
    for bad in [
        &br#"GET "abc"#[..],
        br#"GET 'abc"#,
        br#"GET "a"b"#,
        br#"GET 'a'b"#,
        br#"GET "a\"#,
    ] {
        assert_eq!(one(bad), Err(ProtocolError::UnbalancedQuotes), "{bad:?}");
    }
}

#[test]
fn error_texts() {
    assert_eq!(err(b"*x\r\n").to_string(), "invalid multibulk length");
    assert_eq!(err(b"*01\r\n"), ProtocolError::InvalidMultibulkLength);
    assert_eq!(err(b"*16777217\r\n"), ProtocolError::InvalidMultibulkLength);
    assert_eq!(
        err(b"*99999999999999999999\r\n"),
        ProtocolError::InvalidMultibulkLength
    );
    assert_eq!(err(b"*1\r\nx3\r\n").to_string(), "expected '$', got 'x'");
    assert_eq!(err(b"*1\r\n$x\r\n").to_string(), "invalid bulk length");
    assert_eq!(err(b"*1\r\n$-1\r\n"), ProtocolError::InvalidBulkLength);
    assert_eq!(
        err(b"*1\r\n$536870913\r\n"),
        ProtocolError::InvalidBulkLength
    );
    assert_eq!(
        err(b"*1\r\n$18446744073709551615\r\n"),
        ProtocolError::InvalidBulkLength
    );
    assert_eq!(
        err(b"*1\r\n$9223372036854775807\r\n"),
        ProtocolError::InvalidBulkLength
    );
    assert_eq!(err(b"*1\r\n$1\r\nab\r\n"), ProtocolError::ExpectedCrlf);
    assert_eq!(err(b"*1\r\n$1\r\na\n\r"), ProtocolError::ExpectedCrlf);
    assert_eq!(
        err(b"GET \"a\r\n").to_string(),
        "unbalanced quotes in request"
    );
    let long = vec![b'a'; 64 * 1024 + 1];
    assert_eq!(err(&long).to_string(), "too big inline request");
    let mut long_line = long.clone();
    long_line.push(b'\n');
    assert_eq!(err(&long_line), ProtocolError::TooBigInlineRequest);
    let mut count = b"*1".to_vec();
    count.extend(std::iter::repeat(b'1').take(64 * 1024));
    assert_eq!(err(&count).to_string(), "too big mbulk count string");
    let mut bulk = b"*1\r\n$1".to_vec();
    bulk.extend(std::iter::repeat(b'1').take(64 * 1024));
    assert_eq!(err(&bulk).to_string(), "too big bulk count string");
}

#[test]
fn waits_on_every_prefix() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n";
    for cut in 0..input.len() {
        let mut p = parser();
        let mut buf = BytesMut::from(&input[..cut]);
        let mut n = 0;
        while p.parse(&mut buf).unwrap().is_some() {
            n += 1;
        }
        buf.extend_from_slice(&input[cut..]);
        while p.parse(&mut buf).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 2, "cut at {cut}");
    }
}

#[test]
fn from_args_encodes() {
    let req = Request::from_args(&[b"CLUSTER", b"SHARDS"]);
    assert_eq!(
        req.raw().as_ref(),
        b"*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n"
    );
    assert_eq!(req.arg(1), b"SHARDS");
    let mut buf = BytesMut::from(req.raw().as_ref());
    assert_eq!(parser().parse(&mut buf).unwrap(), Some(req));
}

#[test]
fn many_args_spill() {
    let list: Vec<Vec<u8>> = (0..100).map(|i| format!("arg{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
    let req = Request::from_args(&refs);
    assert_eq!(parse_all(req.raw()).unwrap(), vec![list]);
}

/// A 16 MiB value in 4 KiB reads: each read costs O(1) parser work, and the
/// bytes searched for line ends stay constant (no rescan of the payload).
#[test]
fn huge_bulk_in_small_chunks_is_linear() {
    let value = vec![b'v'; 16 << 20];
    let req = Request::from_args(&[b"SET", b"key", &value]);
    let input = req.raw();
    let mut p = parser();
    let mut buf = BytesMut::new();
    let mut got = None;
    for chunk in input.chunks(4096) {
        buf.extend_from_slice(chunk);
        if let Some(r) = p.parse(&mut buf).unwrap() {
            assert!(got.is_none());
            got = Some(r);
        }
        if got.is_none() {
            // Hint for reserving the rest of a big argument in one step.
            assert!(p.bytes_needed(&buf).is_some_and(|n| n > 0) || buf.len() < 40);
        }
    }
    let got = got.unwrap();
    assert_eq!(got.arg(2).len(), value.len());
    assert!(p.scanned < 100, "scanned {} bytes", p.scanned);
}

/// Many small args arriving in pieces: each byte is searched at most once.
#[test]
fn many_args_in_chunks_scan_once() {
    let list: Vec<Vec<u8>> = (0..10_000).map(|i| format!("k{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
    let req = Request::from_args(&refs);
    let mut p = parser();
    let mut buf = BytesMut::new();
    let mut n = 0;
    for chunk in req.raw().chunks(7) {
        buf.extend_from_slice(chunk);
        while p.parse(&mut buf).unwrap().is_some() {
            n += 1;
        }
    }
    assert_eq!(n, 1);
    assert!(
        p.scanned <= req.raw().len(),
        "{} > {}",
        p.scanned,
        req.raw().len()
    );
}

#[test]
fn garbage_never_panics() {
    let limits = Limits {
        max_bulk_len: 16,
        max_array_len: 4,
        max_depth: 2,
        max_inline_len: 16,
    };
    proptest!(|(input in proptest::collection::vec(
        prop_oneof![Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'"'), Just(b'\''), Just(b'\\'), b'0'..=b'9', any::<u8>()], 0..64))| {
        let mut p = RequestParser::new(limits);
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = p.parse(&mut buf) {}
    });
}

// ---- property: chunked parsing equals whole parsing equals the input ----

/// One generated client command and how it is written on the wire.
#[derive(Clone, Debug)]
struct Cmd {
    args: Vec<Vec<u8>>,
    inline: bool,
    crlf: bool,
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), Just(b'"'), Just(b'a')],
            0..6
        ),
        "[a-z]{1,6}".prop_map(String::into_bytes),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    (
        proptest::collection::vec(arg(), 1..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(args, inline, crlf)| Cmd { args, inline, crlf })
}

/// Writes an argument inline: bare when safe, else quoted with escapes.
fn write_inline_arg(out: &mut Vec<u8>, a: &[u8], first: bool) {
    let bare = !a.is_empty() && a.iter().all(u8::is_ascii_alphanumeric);
    if bare {
        out.extend_from_slice(a);
    } else if !first
        && a.iter()
            .all(|&b| b.is_ascii_graphic() && b != b'\'' && b != b'\\')
    {
        out.push(b'\'');
        out.extend_from_slice(a);
        out.push(b'\'');
    } else {
        out.push(b'"');
        for &b in a {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                0x20..=0x7e => out.push(b),
                _ => out.extend_from_slice(format!("\\x{b:02X}").as_bytes()),
            }
        }
        out.push(b'"');
    }
}

fn write_cmd(out: &mut Vec<u8>, c: &Cmd) {
    if c.inline {
        for (i, a) in c.args.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            write_inline_arg(out, a, i == 0);
        }
        out.extend_from_slice(if c.crlf { b"\r\n" } else { b"\n" });
    } else {
        let refs: Vec<&[u8]> = c.args.iter().map(Vec::as_slice).collect();
        out.extend_from_slice(Request::from_args(&refs).raw());
        if c.crlf {
            // Noise redis-server skips between commands.
            out.extend_from_slice(b"*0\r\n\r\n");
        }
    }
}

proptest! {
    #[test]
    fn chunked_equals_whole_equals_input(
        cmds in proptest::collection::vec(cmd(), 1..20),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut stream = Vec::new();
        for c in &cmds {
            write_cmd(&mut stream, c);
        }
        let whole = parse_all(&stream).unwrap();
        let expected: Vec<_> = cmds.iter().map(|c| c.args.clone()).collect();
        prop_assert_eq!(&whole, &expected);

        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut p = parser();
        let mut buf = BytesMut::new();
        let mut chunked = Vec::new();
        let mut raws = Vec::new();
        let mut last = 0;
        for at in points {
            buf.extend_from_slice(&stream[last..at]);
            last = at;
            while let Some(req) = p.parse(&mut buf).unwrap() {
                chunked.push(req.args().map(<[u8]>::to_vec).collect::<Vec<_>>());
                raws.push(req.raw().clone());
            }
        }
        prop_assert_eq!(&chunked, &expected);
        for (raw, c) in raws.iter().zip(&cmds) {
            let refs: Vec<&[u8]> = c.args.iter().map(Vec::as_slice).collect();
            let want = Request::from_args(&refs);
            prop_assert_eq!(raw, want.raw());
        }
    }
}
