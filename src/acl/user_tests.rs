use super::*;

fn user(rules: &str) -> (User, CommandTable) {
    let table = CommandTable::builtin();
    let mut user = User::new("u");
    for rule in rules.split_whitespace() {
        user.apply(rule.as_bytes(), &table).unwrap();
    }
    (user, table)
}

fn check(user: &User, table: &CommandTable, args: &[&str]) -> Result<(), Denial> {
    let spec = table.lookup(args).expect("known command");
    user.check(spec, args)
}

#[test]
fn command_rules_in_order_with_categories_and_subcommands() {
    let (u, t) = user("on ~* +@read +@write -flushall -@dangerous +config|get");
    assert_eq!(check(&u, &t, &["GET", "k"]), Ok(()));
    assert_eq!(check(&u, &t, &["SET", "k", "v"]), Ok(()));
    assert_eq!(check(&u, &t, &["FLUSHALL"]), Err(Denial::Command));
    assert_eq!(check(&u, &t, &["CONFIG", "GET", "maxmemory"]), Ok(()));
    assert_eq!(
        check(&u, &t, &["CONFIG", "SET", "maxmemory", "1"]),
        Err(Denial::Command)
    );
    assert_eq!(
        check(&u, &t, &["KEYS", "*"]),
        Err(Denial::Command),
        "keys is @dangerous"
    );
    assert!(!u.unrestricted());
    assert_eq!(
        Denial::Command.error(t.get_by_name("config|set").unwrap()),
        "NOPERM this user has no permissions to run the 'config|set' command"
    );
    let (all, t) = user("on allcommands allkeys allchannels");
    assert!(all.unrestricted());
    assert_eq!(check(&all, &t, &["FLUSHALL"]), Ok(()));
    let (none, t) = user("on ~* +@all nocommands");
    assert_eq!(check(&none, &t, &["GET", "k"]), Err(Denial::Command));
    // A whole container, then one of its subcommands taken away.
    let (c, t) = user("on ~* +client -client|kill");
    assert_eq!(check(&c, &t, &["CLIENT", "ID"]), Ok(()));
    assert_eq!(
        check(&c, &t, &["CLIENT", "KILL", "ID", "1"]),
        Err(Denial::Command)
    );
}

#[test]
fn key_patterns_with_read_and_write_access() {
    let (u, t) = user("on +@all ~app:* %R~cache:* %W~log:*");
    assert_eq!(check(&u, &t, &["GET", "app:1"]), Ok(()));
    assert_eq!(check(&u, &t, &["GET", "other"]), Err(Denial::Key(1)));
    assert_eq!(check(&u, &t, &["GET", "cache:1"]), Ok(()));
    assert_eq!(check(&u, &t, &["SET", "cache:1", "v"]), Err(Denial::Key(1)));
    // SET without GET only writes: a write-only pattern is enough.
    assert_eq!(check(&u, &t, &["SET", "log:1", "v"]), Ok(()));
    assert_eq!(
        check(&u, &t, &["SET", "log:1", "v", "GET"]),
        Err(Denial::Key(1))
    );
    assert_eq!(check(&u, &t, &["GET", "log:1"]), Err(Denial::Key(1)));
    // One forbidden key refuses the whole request.
    assert_eq!(
        check(&u, &t, &["MGET", "app:1", "cache:2", "x"]),
        Err(Denial::Key(3))
    );
    // LMOVE reads and deletes from the source, inserts into the destination.
    assert_eq!(
        check(&u, &t, &["LMOVE", "app:a", "log:b", "LEFT", "RIGHT"]),
        Ok(())
    );
    assert_eq!(
        check(&u, &t, &["LMOVE", "cache:a", "app:b", "LEFT", "RIGHT"]),
        Err(Denial::Key(1))
    );
    // SORT's STORE key, which the key specs leave out: the last STORE, as
    // SORT takes it; a BY pattern named STORE is no option.
    assert_eq!(
        check(&u, &t, &["SORT", "app:l", "STORE", "cache:x"]),
        Err(Denial::Key(3))
    );
    assert_eq!(check(&u, &t, &["SORT", "app:l", "STORE", "app:x"]), Ok(()));
    assert_eq!(
        check(
            &u,
            &t,
            &["SORT", "app:l", "STORE", "app:x", "STORE", "cache:x"]
        ),
        Err(Denial::Key(5))
    );
    assert_eq!(
        check(&u, &t, &["SORT", "app:l", "BY", "STORE", "cache:x"]),
        Ok(())
    );
    // Keys of EVAL (numkeys).
    assert_eq!(
        check(&u, &t, &["EVAL", "return 1", "2", "app:a", "zzz"]),
        Err(Denial::Key(4))
    );
    let (reset, t) = user("on +@all ~app:* resetkeys ~other:*");
    assert_eq!(check(&reset, &t, &["GET", "app:1"]), Err(Denial::Key(1)));
    assert_eq!(
        Denial::Key(1).explain(t.get_by_name("get").unwrap(), &["GET", "app:1"][..]),
        "This user has no permissions to access the 'app:1' key"
    );
}

#[test]
fn pattern_rules_after_all_are_refused_as_redis_does() {
    let table = CommandTable::builtin();
    let mut u = User::new("u");
    u.apply(b"allkeys", &table).unwrap();
    assert_eq!(u.apply(b"~app:*", &table), Err(RuleError::KeysAfterAll));
    u.apply(b"&*", &table).unwrap();
    assert_eq!(u.apply(b"&news", &table), Err(RuleError::ChannelsAfterAll));
    assert_eq!(u.apply(b"<nosuch", &table), Err(RuleError::NoSuchPassword));
}

#[test]
fn channels_of_publish_and_subscriptions() {
    let (u, t) = user("on +@all ~* &news.* &chat");
    assert_eq!(check(&u, &t, &["PUBLISH", "news.today", "hi"]), Ok(()));
    assert_eq!(
        check(&u, &t, &["PUBLISH", "sports", "hi"]),
        Err(Denial::Channel(1))
    );
    assert_eq!(
        check(&u, &t, &["SUBSCRIBE", "chat", "sports"]),
        Err(Denial::Channel(2))
    );
    assert_eq!(check(&u, &t, &["SSUBSCRIBE", "news.x"]), Ok(()));
    // A pattern must be one of the user's, literally.
    assert_eq!(check(&u, &t, &["PSUBSCRIBE", "news.*"]), Ok(()));
    assert_eq!(
        check(&u, &t, &["PSUBSCRIBE", "news.t*"]),
        Err(Denial::Channel(1))
    );
    assert_eq!(check(&u, &t, &["UNSUBSCRIBE", "sports"]), Ok(()));
    // A new user has no channels (acl-pubsub-default resetchannels).
    let (fresh, t) = user("on +@all ~*");
    assert_eq!(
        check(&fresh, &t, &["PUBLISH", "x", "m"]),
        Err(Denial::Channel(1))
    );
}

#[test]
fn passwords_are_kept_as_hashes() {
    let (mut u, t) = user("on >one >two");
    assert!(u.password_ok(b"one") && u.password_ok(b"two") && !u.password_ok(b"three"));
    u.apply(b"<one", &t).unwrap();
    assert!(!u.password_ok(b"one"));
    u.apply(b"nopass", &t).unwrap();
    assert!(u.password_ok(b"anything") && u.nopass());
    u.apply(b"resetpass", &t).unwrap();
    assert!(!u.password_ok(b"anything") && !u.nopass());
    let (described, _) = user("on >pw ~a* &c +get");
    assert!(
        !described.describe().contains("pw "),
        "{}",
        described.describe()
    );
    assert_eq!(
        described.describe(),
        format!(
            "user u on #{} ~a* resetchannels &c -@all +get",
            hex(&super::super::sha256(b"pw"))
        )
    );
}
