//! The ordering rule: which new requests of a client must wait for the
//! ones in flight. Pure: the session keeps what was sent ([`Sent`]) and
//! asks [`must_hold`] before sending each request.
//!
//! Redis orders one connection's commands; so does keyway. Requests sent
//! the same way (the same slot map, protocol and connection lane) reach
//! each node in the order they were sent, so they may be in flight
//! together. A request sent another way (a new slot map, the other
//! protocol's connections, the connection holding a `WATCH`, or a
//! dedicated connection for a blocking command) could overtake earlier
//! ones: a read routed by the new map could reach the master before a
//! write sent by the old map, and read the value the write replaced. Such a
//! request is held until nothing is in flight; and once one request is
//! held, every later one is held behind it.

use crate::protocol::Protocol;

/// The lane of the shared (multiplexed) node connections.
pub const SHARED_LANE: u64 = 0;

/// The way a request is (or the requests in flight were) sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Way {
    /// The slot-map epoch it was routed by.
    pub epoch: u64,
    /// The protocol, so the node connections, it goes on.
    pub proto: Protocol,
    /// The shared connections ([`SHARED_LANE`]), or the lane of the
    /// dedicated connection holding the client's `WATCH`.
    pub lane: u64,
}

impl Default for Way {
    fn default() -> Self {
        Way {
            epoch: 0,
            proto: Protocol::Resp2,
            lane: SHARED_LANE,
        }
    }
}

/// A request about to be sent.
#[derive(Clone, Copy, Debug)]
pub struct Next {
    /// The way it would go.
    pub way: Way,
    /// It goes on a connection of its own (a blocking command, `WAIT`, a
    /// diagnostic sent to every master on dedicated connections): nothing
    /// may be in flight beside it.
    pub dedicated: bool,
}

/// The client's queue when a request is about to be sent.
#[derive(Clone, Copy, Debug)]
pub struct Queue {
    /// Requests in flight, not counting the one about to be sent.
    pub in_flight: usize,
    /// Requests held already.
    pub held: usize,
    /// A blocking command is in flight (on its own connection).
    pub blocked: bool,
}

/// Whether `next` must be held until the requests in flight (sent the way
/// `sent` says) are answered. `forced`: it is the first of the held
/// requests, released because nothing is in flight, and goes whatever it
/// is.
pub fn must_hold(sent: Way, next: Next, queue: Queue, forced: bool) -> bool {
    if forced {
        return false;
    }
    if queue.held > 0 {
        return true;
    }
    let another_way = next.way != sent || next.dedicated || queue.blocked;
    queue.in_flight > 0 && another_way
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: Way = Way {
        epoch: 7,
        proto: Protocol::Resp2,
        lane: SHARED_LANE,
    };

    fn next(way: Way, dedicated: bool) -> Next {
        Next { way, dedicated }
    }

    fn queue(in_flight: usize, held: usize, blocked: bool) -> Queue {
        Queue {
            in_flight,
            held,
            blocked,
        }
    }

    #[test]
    fn the_same_way_never_waits() {
        for in_flight in [0, 1, 100] {
            assert!(!must_hold(
                SENT,
                next(SENT, false),
                queue(in_flight, 0, false),
                false
            ));
        }
    }

    #[test]
    fn another_way_waits_only_while_something_is_in_flight() {
        let ways = [
            Way { epoch: 8, ..SENT },
            Way {
                proto: Protocol::Resp3,
                ..SENT
            },
            Way { lane: 3, ..SENT },
        ];
        for way in ways {
            assert!(
                must_hold(SENT, next(way, false), queue(1, 0, false), false),
                "{way:?}"
            );
            assert!(
                !must_hold(SENT, next(way, false), queue(0, 0, false), false),
                "{way:?}"
            );
        }
    }

    #[test]
    fn dedicated_connections_and_blocked_clients_wait_for_everything_in_flight() {
        assert!(must_hold(SENT, next(SENT, true), queue(1, 0, false), false));
        assert!(!must_hold(
            SENT,
            next(SENT, true),
            queue(0, 0, false),
            false
        ));
        assert!(must_hold(SENT, next(SENT, false), queue(1, 0, true), false));
    }

    #[test]
    fn once_one_is_held_every_later_one_is_held_behind_it() {
        assert!(must_hold(
            SENT,
            next(SENT, false),
            queue(0, 1, false),
            false
        ));
    }

    #[test]
    fn the_first_released_request_goes_whatever_it_is() {
        let other = Way { epoch: 9, ..SENT };
        assert!(!must_hold(SENT, next(other, true), queue(3, 2, true), true));
    }
}
