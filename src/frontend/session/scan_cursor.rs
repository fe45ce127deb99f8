//! `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` over the whole cluster: the
//! masters are scanned one after the other, in the order of the lowest slot
//! each serves, and keyway's cursor carries which master, the node's own
//! cursor and a fingerprint of the slot map:
//!
//! ```text
//!  63        54 53        46 45                                   0
//! [ master #  ][ map print ][ the master's own cursor              ]
//! ```
//!
//! While the slot map stays the same, a full iteration returns every key
//! that existed throughout it, as `SCAN` promises. When the map changed
//! since the cursor was made (resharding, a failover, a master added), keys
//! may have moved to a master already scanned, so keyway starts over from
//! the first master: keys may come again (which `SCAN` allows), none that
//! stayed is missed, and the iteration ends once the map holds still. The
//! print comes from the map itself, so any keyway of a fleet continues
//! another's cursor.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::backend::{BackendError, ReplySink};
use crate::protocol::{decode, encode, Limits, Protocol, Request, Value};

/// Bits of the master's own cursor.
const NODE_BITS: u32 = 46;
/// Bits of the map print.
const PRINT_BITS: u32 = 8;
/// Masters a cursor can name.
pub const MAX_MASTERS: usize = 1 << (64 - NODE_BITS - PRINT_BITS);

/// Where a `SCAN` call goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The master, by its place in the scan order.
    pub master: usize,
    /// That master's own cursor.
    pub cursor: u64,
}

/// The map print as it sits in a cursor.
fn print_bits(print: u64) -> u64 {
    print & ((1 << PRINT_BITS) - 1)
}

/// Where keyway's `cursor` goes on under a map with `masters` masters and
/// fingerprint `print`; `None` for a cursor keyway never gave.
pub fn position(cursor: &[u8], masters: usize, print: u64) -> Option<Position> {
    let cursor: u64 = std::str::from_utf8(cursor).ok()?.parse().ok()?;
    let master = (cursor >> (NODE_BITS + PRINT_BITS)) as usize;
    let node = cursor & ((1 << NODE_BITS) - 1);
    if cursor == 0 || (cursor >> NODE_BITS) & ((1 << PRINT_BITS) - 1) != print_bits(print) {
        // A new iteration, or the map changed: from the first master.
        return Some(Position {
            master: 0,
            cursor: 0,
        });
    }
    (master < masters).then_some(Position {
        master,
        cursor: node,
    })
}

/// keyway's cursor after `master` answered `node_cursor`: the same master
/// again, the next one, or 0 when the last one is done. `None` when the
/// node's cursor does not fit.
pub fn next_cursor(master: usize, node_cursor: u64, masters: usize, print: u64) -> Option<u64> {
    let (master, node_cursor) = match node_cursor {
        0 if master + 1 >= masters => return Some(0),
        0 => (master + 1, 0),
        n => (master, n),
    };
    if node_cursor >> NODE_BITS != 0 || master >= MAX_MASTERS {
        return None;
    }
    // Never 0 ("done"): either the master or its cursor is not 0.
    let master_bits = (master as u64) << (NODE_BITS + PRINT_BITS);
    Some(master_bits | print_bits(print) << NODE_BITS | node_cursor)
}

/// The `SCAN` for the master: `request` with the master's own cursor.
pub fn node_request(request: &Request, cursor: u64) -> BytesMut {
    let cursor = cursor.to_string();
    let mut args: Vec<&[u8]> = request.args().collect();
    args[1] = cursor.as_bytes();
    let mut out = BytesMut::new();
    encode::command(&mut out, &args);
    out
}

/// Turns one master's `SCAN` reply into the client's, with keyway's cursor.
pub struct ScanReply {
    session: Rc<dyn ReplySink>,
    token: u64,
    proto: Protocol,
    master: usize,
    masters: usize,
    print: u64,
}

impl ScanReply {
    /// For entry `token` of `session`, sent to master `master` of `masters`
    /// under map print `print`.
    pub fn new(
        session: Rc<dyn ReplySink>,
        token: u64,
        proto: Protocol,
        position: Position,
        masters: usize,
        print: u64,
    ) -> Rc<ScanReply> {
        Rc::new(ScanReply {
            session,
            token,
            proto,
            master: position.master,
            masters,
            print,
        })
    }

    fn rewrite(&self, reply: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        let value = decode(reply, &Limits::default())
            .ok()
            .flatten()
            .map(|(v, _)| v);
        let (cursor, keys) = match value {
            Some(Value::Array(items)) if items.len() == 2 => {
                let cursor = items[0]
                    .as_bytes()
                    .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok());
                (cursor, items.into_iter().nth(1))
            }
            Some(Value::Error(_)) => return Bytes::copy_from_slice(reply),
            _ => (None, None),
        };
        let next = cursor.and_then(|c| next_cursor(self.master, c, self.masters, self.print));
        match (next, keys) {
            (Some(next), Some(keys)) => {
                encode::array_header(&mut out, 2);
                encode::bulk(&mut out, next.to_string().as_bytes());
                keys.encode(&mut out, self.proto);
            }
            _ => encode::error(
                &mut out,
                b"ERR keyway could not continue a node's SCAN cursor",
            ),
        }
        out.freeze()
    }
}

impl ReplySink for ScanReply {
    fn deliver(&self, _part: u64, reply: Result<Bytes, BackendError>) {
        let reply = reply.map(|r| self.rewrite(&r));
        self.session.deliver(self.token, reply);
    }

    fn flush(&self) {
        self.session.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_walk_the_masters_in_order() {
        let print = 0xabcd;
        let start = position(b"0", 3, print).unwrap();
        assert_eq!(
            start,
            Position {
                master: 0,
                cursor: 0
            }
        );
        // Master 0 has more; then it is done; then master 1; the last one done.
        let c = next_cursor(0, 17, 3, print).unwrap();
        assert_eq!(
            position(c.to_string().as_bytes(), 3, print),
            Some(Position {
                master: 0,
                cursor: 17
            })
        );
        let c = next_cursor(0, 0, 3, print).unwrap();
        assert_eq!(
            position(c.to_string().as_bytes(), 3, print),
            Some(Position {
                master: 1,
                cursor: 0
            })
        );
        let c = next_cursor(1, (1 << NODE_BITS) - 1, 3, print).unwrap();
        assert_eq!(
            position(c.to_string().as_bytes(), 3, print),
            Some(Position {
                master: 1,
                cursor: (1 << NODE_BITS) - 1
            })
        );
        assert_eq!(next_cursor(2, 0, 3, print), Some(0), "done");
        assert_eq!(
            next_cursor(1, 1 << NODE_BITS, 3, print),
            None,
            "does not fit"
        );
        // With a print of 0, master 0's cursors are still never 0.
        assert_eq!(next_cursor(0, 0, 1, 0), Some(0), "one master: done");
        assert_ne!(next_cursor(0, 5, 2, 0), Some(0));
    }

    #[test]
    fn a_changed_map_or_a_foreign_cursor_starts_over() {
        let c = next_cursor(1, 9, 3, 0x11).unwrap();
        assert_eq!(
            position(c.to_string().as_bytes(), 3, 0x22),
            Some(Position {
                master: 0,
                cursor: 0
            })
        );
        assert_eq!(position(b"abc", 3, 0x11), None);
        assert_eq!(position(b"-1", 3, 0x11), None);
        let far = (7u64 << (NODE_BITS + PRINT_BITS)) | (0x11 << NODE_BITS) | 3;
        assert_eq!(
            position(far.to_string().as_bytes(), 3, 0x11),
            None,
            "no master 7"
        );
    }

    #[test]
    fn the_master_gets_its_own_cursor() {
        let request = Request::from_args(&[b"scan", b"123", b"MATCH", b"k*", b"COUNT", b"5"]);
        let out = node_request(&request, 42);
        assert_eq!(
            &out[..],
            b"*6\r\n$4\r\nscan\r\n$2\r\n42\r\n$5\r\nMATCH\r\n$2\r\nk*\r\n$5\r\nCOUNT\r\n$1\r\n5\r\n"
        );
    }
}
