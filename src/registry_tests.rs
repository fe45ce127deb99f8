use super::*;
use filter::SYNTAX;

fn request(args: &str) -> Request {
    let args: Vec<&[u8]> = args.split(' ').map(str::as_bytes).collect();
    Request::from_args(&args)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Three clients: 1 and 2 from ports 1001/1002, 3 subscribed.
fn three(clients: &Registry) -> Vec<Registration<'_>> {
    let all: Vec<_> = (1..=3)
        .map(|id| clients.register(id, addr(1000 + id as u16), addr(6380), 10 + id as i32))
        .collect();
    all[2].record.set_subscriptions([1, 0, 0]);
    all
}

fn ids(list: &str) -> Vec<u64> {
    list.lines()
        .map(|line| {
            let id = line.split(' ').next().unwrap().strip_prefix("id=").unwrap();
            id.parse().unwrap()
        })
        .collect()
}

#[test]
fn lists_every_client_by_id_and_filters_by_type_and_id() {
    let clients = Registry::default();
    let _held = three(&clients);
    assert_eq!(
        ids(&clients.list(&request("CLIENT LIST")).unwrap()),
        [1, 2, 3]
    );
    let normal = clients.list(&request("CLIENT LIST TYPE normal")).unwrap();
    assert_eq!(ids(&normal), [1, 2]);
    let pubsub = clients.list(&request("CLIENT LIST TYPE PUBSUB")).unwrap();
    assert_eq!(ids(&pubsub), [3]);
    assert!(clients
        .list(&request("CLIENT LIST TYPE master"))
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&clients.list(&request("CLIENT LIST ID 3 1 9")).unwrap()),
        [1, 3]
    );
    assert_eq!(
        clients
            .list(&request("CLIENT LIST TYPE bogus"))
            .unwrap_err(),
        "ERR Unknown client type 'bogus'"
    );
    assert_eq!(
        clients.list(&request("CLIENT LIST ID x")).unwrap_err(),
        "ERR Invalid client ID"
    );
    assert_eq!(
        clients.list(&request("CLIENT LIST foo")).unwrap_err(),
        SYNTAX
    );
}

#[test]
fn leaving_removes_the_client() {
    let clients = Registry::default();
    let mut held = three(&clients);
    held.remove(1);
    assert_eq!(ids(&clients.list(&request("CLIENT LIST")).unwrap()), [1, 3]);
}

#[test]
fn line_has_redis_fields_and_flags() {
    let clients = Registry::default();
    let held = three(&clients);
    let record = &held[0].record;
    record.names().name = Some(Bytes::from_static(b"worker-7"));
    record.set_protocol(Protocol::Resp3);
    record.set_multi(Some(2));
    record.set_no_evict(true);
    let line = record.line();
    assert!(line.starts_with("id=1 addr=127.0.0.1:1001 laddr=127.0.0.1:6380 fd=11 name=worker-7 age=0 idle=0 flags=xe db=0 sub=0 psub=0 ssub=0 multi=2 "), "{line}");
    assert!(line.ends_with(" resp=3 lib-name= lib-ver=\n"), "{line}");
    assert!(held[1].record.line().contains(" flags=N "));
    assert!(held[2].record.line().contains(" flags=P db=0 sub=1 "));
}

/// The users `CLIENT KILL USER` knows in these tests.
fn only_default(user: &[u8]) -> bool {
    user == b"default"
}

#[test]
fn kill_filters_skip_the_caller_unless_told() {
    let clients = Registry::default();
    let held = three(&clients);
    // From client 1: every normal client but itself.
    assert_eq!(
        clients.kill(&request("CLIENT KILL TYPE normal"), 1, only_default),
        Ok(1)
    );
    assert!(held[1].record.killed.load(Ordering::Relaxed));
    assert!(!held[0].record.killed.load(Ordering::Relaxed));
    // Killed once: not counted again.
    assert_eq!(
        clients.kill(&request("CLIENT KILL ID 2"), 1, only_default),
        Ok(0)
    );
    assert_eq!(
        clients.kill(
            &request("CLIENT KILL ADDR 127.0.0.1:1003 SKIPME no"),
            3,
            only_default
        ),
        Ok(1)
    );
    assert_eq!(
        clients.kill(&request("CLIENT KILL ID 1"), 1, only_default),
        Ok(0)
    );
    assert_eq!(
        clients.kill(&request("CLIENT KILL ID 1 SKIPME no"), 1, only_default),
        Ok(1)
    );
}

#[test]
fn kill_old_form_and_errors() {
    let clients = Registry::default();
    let held = three(&clients);
    held_user(&held[2], "alice");
    // The old form may kill the caller itself.
    assert_eq!(
        clients.kill(&request("CLIENT KILL 127.0.0.1:1001"), 1, only_default),
        Ok(1)
    );
    assert_eq!(
        clients.kill(&request("CLIENT KILL 127.0.0.1:9"), 1, only_default),
        Ok(0)
    );
    assert_eq!(
        clients.kill(
            &request("CLIENT KILL LADDR 127.0.0.1:6380 USER default"),
            1,
            only_default
        ),
        Ok(1)
    );
    assert!(!held[2].record.is_killed());
    assert_eq!(clients.kill_users(&["alice"]), 1);
    assert!(held[2].record.is_killed());
    for (args, error) in [
        ("CLIENT KILL ID 1 TYPE", SYNTAX),
        ("CLIENT KILL ID 0", "ERR client-id should be greater than 0"),
        ("CLIENT KILL USER alice", "ERR No such user 'alice'"),
        ("CLIENT KILL TYPE x", "ERR Unknown client type 'x'"),
        ("CLIENT KILL SKIPME maybe", SYNTAX),
        ("CLIENT KILL FOO bar", SYNTAX),
    ] {
        assert_eq!(
            clients.kill(&request(args), 1, only_default).unwrap_err(),
            error,
            "{args}"
        );
    }
}

fn held_user(held: &Registration<'_>, user: &str) {
    held.record.names().user = Some(user.into());
}

#[tokio::test]
async fn kill_wakes_the_session() {
    let clients = Registry::default();
    let mut held = three(&clients);
    let killed = &mut held[1].stop;
    assert!(killed.try_recv().is_err(), "not killed yet");
    assert_eq!(
        clients.kill(&request("CLIENT KILL ID 2"), 1, only_default),
        Ok(1)
    );
    let why = tokio::time::timeout(std::time::Duration::from_secs(5), killed)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(why, Stop::Kill);
}

#[test]
fn drain_tells_every_client_and_those_registering_later() {
    let clients = Registry::default();
    let mut held = three(&clients);
    clients.drain();
    for registration in &mut held {
        assert_eq!(registration.stop.try_recv(), Ok(Stop::Drain));
    }
    let mut late = clients.register(9, addr(1009), addr(6380), 19);
    assert_eq!(late.stop.try_recv(), Ok(Stop::Drain));
}

#[test]
fn admission_counts_and_enforces_the_client_limit() {
    let clients = Registry::default();
    assert!(clients.admit(2));
    assert!(clients.admit(2));
    assert!(!clients.admit(2), "a third client is over the limit");
    assert_eq!(
        (clients.connected(), clients.accepted(), clients.rejected()),
        (2, 2, 1)
    );
    clients.left();
    assert!(
        clients.admit(2),
        "a place freed is a place for the next client"
    );
    assert_eq!(clients.connected(), 2);
    assert_eq!(clients.next_id(), 1);
    assert_eq!(clients.next_id(), 2);
}

#[test]
fn the_census_counts_blocked_subscribed_and_resp3_clients_in_one_pass() {
    let clients = Registry::default();
    let held = three(&clients);
    held[0].record.set_blocked(true);
    // `three` subscribed the third already.
    held[1].record.set_subscriptions([0, 2, 0]);
    held[1].record.set_protocol(Protocol::Resp3);
    held[2].record.set_protocol(Protocol::Resp3);
    assert_eq!(
        clients.census(),
        Census {
            registered: 3,
            blocked: 1,
            subscribed: 2,
            resp3: 2
        }
    );
}

#[test]
fn shedding_closes_the_largest_holders_until_under_the_limit() {
    let clients = Registry::default();
    let mut held = three(&clients);
    assert_eq!(clients.set_buffered(&held[0].record, 300), 300);
    assert_eq!(clients.set_buffered(&held[1].record, 500), 800);
    assert_eq!(clients.set_buffered(&held[2].record, 100), 900);
    assert_eq!(
        clients.set_buffered(&held[2].record, 200),
        1000,
        "updated, not added"
    );
    assert!(clients.shed(1000).is_empty(), "at the limit: nobody");

    assert_eq!(
        clients.shed(400),
        vec![(addr(1002), 500), (addr(1001), 300)]
    );
    assert_eq!(clients.buffered(), 200);
    assert_eq!(held[1].stop.try_recv(), Ok(Stop::OverMemory));
    assert_eq!(held[0].stop.try_recv(), Ok(Stop::OverMemory));
    assert!(held[2].stop.try_recv().is_err(), "the smallest stays");

    drop(held.pop());
    assert_eq!(
        clients.buffered(),
        0,
        "a client leaving gives its bytes back"
    );
}
