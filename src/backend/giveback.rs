//! Putting back what a blocking pop took for a client that is gone.
//!
//! When a blocked client leaves, keyway half-closes its dedicated connection
//! at once, and the node stops serving it. If the node popped an element
//! for it in the instant before (its reply crossing keyway's close), the
//! element would be lost with the client. [`give_back`] builds the command
//! that returns it where it was: `LPUSH`/`RPUSH` for list pops (in the
//! original order), `ZADD` for sorted-set pops. Moves (`BLMOVE`,
//! `BRPOPLPUSH`) lose nothing (the element is in the destination list), nor
//! do stream reads (`XREADGROUP` entries stay pending for `XAUTOCLAIM`).

use bytes::Bytes;

use crate::protocol::Value;

/// The command that undoes the pop of `command` (lowercase name; `args` its
/// arguments after the name) whose reply was `reply`; `None` when nothing
/// needs undoing (a timeout, a move, a read).
pub fn give_back(command: &str, args: &[&[u8]], reply: &Value) -> Option<Vec<Bytes>> {
    let items = reply.as_array()?;
    let key = items.first()?.as_bytes()?;
    let cmd = |name: &'static str, rest: Vec<Bytes>| {
        let mut out = vec![
            Bytes::from_static(name.as_bytes()),
            Bytes::copy_from_slice(key),
        ];
        out.extend(rest);
        Some(out)
    };
    match command {
        "blpop" | "brpop" => {
            let element = Bytes::copy_from_slice(items.get(1)?.as_bytes()?);
            cmd(
                if command == "blpop" { "LPUSH" } else { "RPUSH" },
                vec![element],
            )
        }
        "blmpop" => {
            // BLMPOP timeout numkeys key... LEFT|RIGHT [COUNT n]
            let numkeys: usize = std::str::from_utf8(args.get(1)?).ok()?.parse().ok()?;
            let side = args.get(2 + numkeys)?;
            let push = if side.eq_ignore_ascii_case(b"LEFT") {
                "LPUSH"
            } else {
                "RPUSH"
            };
            // Pushed back last-popped first, so the first popped ends where it was.
            let elements = items.get(1)?.as_array()?;
            let rest = elements
                .iter()
                .rev()
                .map(|e| e.as_bytes().map(Bytes::copy_from_slice))
                .collect::<Option<Vec<_>>>()?;
            cmd(push, rest)
        }
        "bzpopmin" | "bzpopmax" => {
            let member = Bytes::copy_from_slice(items.get(1)?.as_bytes()?);
            cmd("ZADD", vec![score(items.get(2)?)?, member])
        }
        "bzmpop" => {
            let mut rest = Vec::new();
            for pair in items.get(1)?.as_array()? {
                let pair = pair.as_array()?;
                rest.push(score(pair.get(1)?)?);
                rest.push(Bytes::copy_from_slice(pair.first()?.as_bytes()?));
            }
            cmd("ZADD", rest)
        }
        _ => None,
    }
}

/// A score as ZADD takes it: the RESP2 bulk text, or a RESP3 double.
fn score(value: &Value) -> Option<Bytes> {
    match value {
        Value::Double(d) => Some(Bytes::from(d.to_string())),
        other => other.as_bytes().map(Bytes::copy_from_slice),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, Limits};

    fn back(command: &str, args: &[&str], reply: &[u8]) -> Option<Vec<String>> {
        let (value, _) = decode(reply, &Limits::default()).unwrap().unwrap();
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        give_back(command, &args, &value).map(|c| {
            c.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        })
    }

    #[test]
    fn list_pops_are_pushed_back_where_they_were() {
        let kv = b"*2\r\n$1\r\nq\r\n$1\r\na\r\n";
        assert_eq!(back("blpop", &["q", "0"], kv).unwrap(), ["LPUSH", "q", "a"]);
        assert_eq!(back("brpop", &["q", "0"], kv).unwrap(), ["RPUSH", "q", "a"]);
        let multi = b"*2\r\n$1\r\nq\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n";
        assert_eq!(
            back("blmpop", &["0", "2", "p", "q", "left", "COUNT", "2"], multi).unwrap(),
            ["LPUSH", "q", "b", "a"]
        );
        assert_eq!(
            back("blmpop", &["0", "1", "q", "RIGHT"], multi).unwrap(),
            ["RPUSH", "q", "b", "a"]
        );
    }

    #[test]
    fn zset_pops_are_added_back_with_their_scores() {
        assert_eq!(
            back(
                "bzpopmin",
                &["z", "0"],
                b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$3\r\n1.5\r\n"
            )
            .unwrap(),
            ["ZADD", "z", "1.5", "m"]
        );
        assert_eq!(
            back(
                "bzpopmax",
                &["z", "0"],
                b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n,-2.5\r\n"
            )
            .unwrap(),
            ["ZADD", "z", "-2.5", "m"]
        );
        let bzmpop = b"*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2\r\n";
        assert_eq!(
            back("bzmpop", &["0", "1", "z", "MIN", "COUNT", "2"], bzmpop).unwrap(),
            ["ZADD", "z", "1", "a", "2", "b"]
        );
    }

    #[test]
    fn timeouts_moves_and_reads_need_nothing() {
        assert_eq!(back("blpop", &["q", "1"], b"*-1\r\n"), None);
        assert_eq!(back("blpop", &["q", "1"], b"_\r\n"), None);
        assert_eq!(
            back("blmove", &["a", "b", "LEFT", "LEFT", "0"], b"$1\r\nx\r\n"),
            None
        );
        assert_eq!(
            back("xreadgroup", &[], b"*1\r\n*2\r\n$1\r\ns\r\n*0\r\n"),
            None
        );
    }
}
