//! Redirections a node answers instead of a reply: `-MOVED`, `-ASK`,
//! `-TRYAGAIN` (Redis Cluster spec). Parsed from the raw error bytes.

use super::Slot;

/// What a node's error reply asks the proxy to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect<'a> {
    /// The slot lives on `addr` now: update the map and resend there.
    Moved {
        /// The slot.
        slot: Slot,
        /// `host:port` of its new master.
        addr: &'a str,
    },
    /// This one request must go to `addr`, preceded by `ASKING`.
    Ask {
        /// The slot being migrated.
        slot: Slot,
        /// `host:port` of the importing node.
        addr: &'a str,
    },
    /// A multi-key request hit a slot mid-migration: retry after a pause.
    TryAgain,
}

/// The error a client gets instead of a `MOVED`/`ASK` it cannot follow
/// once keyway followed `max` of them for `slot` (the text after `-`).
pub fn budget_spent(slot: Slot, max: u32) -> String {
    format!(
        "TRYAGAIN keyway followed {max} MOVED/ASK redirects for slot {slot} without reaching its master; the cluster is resharding, retry shortly"
    )
}

/// The redirect in `reply`, if it is one (`reply` is a whole RESP error).
pub fn parse(reply: &[u8]) -> Option<Redirect<'_>> {
    let line = reply.strip_prefix(b"-")?;
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    if line.starts_with(b"TRYAGAIN") {
        return Some(Redirect::TryAgain);
    }
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let kind = words.next()?;
    let slot = Slot::new(words.next()?.parse().ok()?)?;
    let addr = words.next()?;
    // An empty host ("MOVED 3999 :6380") means "the node you asked"; keyway
    // then leaves the error to the client and refreshes the map instead.
    if addr.starts_with(':') || addr.is_empty() || addr.starts_with('?') {
        return None;
    }
    match kind {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { slot, addr }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_redirects() {
        let slot = Slot::new(3999).unwrap();
        assert_eq!(
            parse(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Moved {
                slot,
                addr: "127.0.0.1:6381"
            })
        );
        assert_eq!(
            parse(b"-ASK 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Ask {
                slot,
                addr: "127.0.0.1:6381"
            })
        );
        assert_eq!(
            parse(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(Redirect::TryAgain)
        );
    }

    #[test]
    fn other_errors_are_not_redirects() {
        assert_eq!(parse(b"-ERR wrong type\r\n"), None);
        assert_eq!(parse(b"-MOVED 99999 h:1\r\n"), None);
        assert_eq!(parse(b"-MOVED 1\r\n"), None);
        assert_eq!(parse(b"-MOVED 1 :6380\r\n"), None);
        assert_eq!(parse(b"+MOVED 1 h:1\r\n"), None);
        assert_eq!(parse(b"-MOVEDX 1 h:1\r\n"), None);
    }
}
