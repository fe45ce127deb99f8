//! Which clients a `CLIENT LIST` or `CLIENT KILL` means: the filters
//! (`ID`, `TYPE`, `USER`, `ADDR`, `LADDR`, `SKIPME`, `MAXAGE`), parsed as
//! redis-server parses them, and matched against [`ClientRecord`]s.

use std::net::SocketAddr;

use crate::protocol::{parse_i64, Request};

use super::ClientRecord;

/// Which clients a `CLIENT LIST` or `CLIENT KILL` means.
#[derive(Default)]
pub(super) struct Filter {
    ids: Option<Vec<u64>>,
    kind: Option<Kind>,
    addr: Option<Vec<u8>>,
    laddr: Option<Vec<u8>>,
    max_age: Option<u64>,
    user: Option<Vec<u8>>,
    /// A client that must not be picked (`SKIPME yes`, the default).
    skip: Option<u64>,
}

/// `TYPE` in `CLIENT LIST` / `CLIENT KILL`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    PubSub,
    /// `master`, `replica`/`slave`: never a keyway client.
    Replication,
}

impl Kind {
    fn parse(name: &[u8]) -> Result<Kind, String> {
        match name.to_ascii_lowercase().as_slice() {
            b"normal" => Ok(Kind::Normal),
            b"pubsub" => Ok(Kind::PubSub),
            b"master" | b"replica" | b"slave" => Ok(Kind::Replication),
            _ => Err(format!(
                "ERR Unknown client type '{}'",
                String::from_utf8_lossy(name)
            )),
        }
    }
}

/// The error for filters redis-server cannot parse.
pub(super) const SYNTAX: &str = "ERR syntax error";

impl Filter {
    /// Every client authenticated as `user`.
    pub(super) fn of_user(user: &str) -> Filter {
        Filter {
            user: Some(user.as_bytes().to_vec()),
            ..Filter::default()
        }
    }

    /// Whether `client` is one of the clients meant.
    pub(super) fn picks(&self, client: &ClientRecord) -> bool {
        let text_is = |want: &Option<Vec<u8>>, addr: &SocketAddr| {
            want.as_ref()
                .map_or(true, |w| w.as_slice() == addr.to_string().as_bytes())
        };
        self.ids
            .as_ref()
            .map_or(true, |ids| ids.contains(&client.id))
            && self.kind.map_or(true, |kind| match kind {
                Kind::Normal => !client.subscribed(),
                Kind::PubSub => client.subscribed(),
                Kind::Replication => false,
            })
            && self.user.as_ref().map_or(true, |want| {
                let names = client.names();
                want.as_slice() == names.user.as_deref().unwrap_or("default").as_bytes()
            })
            && text_is(&self.addr, &client.peer)
            && text_is(&self.laddr, &client.local)
            && self
                .max_age
                .map_or(true, |max| client.connected.elapsed().as_secs() >= max)
            && self.skip != Some(client.id)
    }

    /// `CLIENT LIST [TYPE type] [ID id ...]`, as redis-server parses it.
    pub(super) fn of_list(request: &Request) -> Result<Filter, String> {
        let mut filter = Filter::default();
        match request.argc() {
            2 => {}
            4 if request.arg(2).eq_ignore_ascii_case(b"TYPE") => {
                filter.kind = Some(Kind::parse(request.arg(3))?);
            }
            n if n >= 4 && request.arg(2).eq_ignore_ascii_case(b"ID") => {
                let ids = request.args().skip(3).map(|id| {
                    parse_i64(id)
                        .filter(|&id| id > 0)
                        .map(|id| id as u64)
                        .ok_or_else(|| "ERR Invalid client ID".to_string())
                });
                filter.ids = Some(ids.collect::<Result<_, _>>()?);
            }
            _ => return Err(SYNTAX.into()),
        }
        Ok(filter)
    }

    /// `CLIENT KILL addr` (old form) or `CLIENT KILL <filter> <value> ...`
    /// with `ID`, `TYPE`, `USER`, `ADDR`, `LADDR`, `SKIPME`, `MAXAGE`.
    pub(super) fn of_kill(
        request: &Request,
        me: u64,
        user_exists: impl Fn(&[u8]) -> bool,
    ) -> Result<Filter, String> {
        let mut filter = Filter::default();
        if request.argc() == 3 {
            filter.addr = Some(request.arg(2).to_vec());
            return Ok(filter);
        }
        if request.argc() % 2 != 0 {
            return Err(SYNTAX.into());
        }
        let mut skip_me = true;
        let mut args = request.args().skip(2);
        while let (Some(option), Some(value)) = (args.next(), args.next()) {
            match option.to_ascii_lowercase().as_slice() {
                b"id" => {
                    let id = parse_i64(value)
                        .filter(|&id| id > 0)
                        .ok_or("ERR client-id should be greater than 0")?;
                    filter.ids = Some(vec![id as u64]);
                }
                b"type" => filter.kind = Some(Kind::parse(value)?),
                b"user" if user_exists(value) => filter.user = Some(value.to_vec()),
                b"user" => {
                    return Err(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(value)
                    ))
                }
                b"addr" => filter.addr = Some(value.to_vec()),
                b"laddr" => filter.laddr = Some(value.to_vec()),
                b"maxage" => {
                    let age = parse_i64(value)
                        .filter(|&age| age >= 0)
                        .ok_or("ERR value is not an integer or out of range")?;
                    filter.max_age = Some(age as u64);
                }
                b"skipme" if value.eq_ignore_ascii_case(b"yes") => skip_me = true,
                b"skipme" if value.eq_ignore_ascii_case(b"no") => skip_me = false,
                _ => return Err(SYNTAX.into()),
            }
        }
        filter.skip = skip_me.then_some(me);
        Ok(filter)
    }
}
