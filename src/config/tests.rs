use super::*;

fn load(text: &str, o: Overrides) -> Result<Config, ConfigError> {
    FileConfig::parse(text)
        .map_err(|message| ConfigError::Parse {
            path: "t".into(),
            message,
        })?
        .apply(&o)
        .validate()
}

#[test]
fn defaults_validate() {
    let c = load("", Overrides::default()).unwrap();
    assert_eq!(c.startup.listen.unwrap().to_string(), defaults::LISTEN);
    assert_eq!(c.startup.seeds, vec![defaults::SEED.to_string()]);
    assert_eq!(c.live.limits.max_bulk_len, 512 * 1024 * 1024);
}

#[test]
fn shipped_config_file_is_valid_and_matches_defaults() {
    let text = include_str!("../../conf/keyway.toml");
    let c = load(text, Overrides::default()).unwrap();
    let d = load("", Overrides::default()).unwrap();
    assert_eq!(format!("{c:?}"), format!("{d:?}"));
}

#[test]
fn flags_override_the_file() {
    let o = Overrides {
        listen: Some("127.0.0.1:7777".into()),
        cluster: Some("a:1, b:2".into()),
        workers: Some(3),
        log_level: Some("debug".into()),
        admin_listen: Some("".into()),
        cluster_password: None,
        password: Some("from-env".into()),
    };
    let c = load(
        "[proxy]\nlisten = \"0.0.0.0:1\"\nworkers = 8\n[auth]\npassword = \"from-file\"\n[admin]\nlisten = \"127.0.0.1:9\"\n",
        o,
    )
    .unwrap();
    assert_eq!(
        c.startup.admin_listen, None,
        "--admin-listen \"\" turns it off"
    );
    let users = &c.live.client_auth.users;
    assert!(users.authenticate(b"default", b"from-env").is_some());
    assert!(users.authenticate(b"default", b"from-file").is_none());
    assert_eq!(c.startup.listen.unwrap().port(), 7777);
    assert_eq!(c.startup.seeds, vec!["a:1".to_string(), "b:2".to_string()]);
    assert_eq!(c.startup.workers.get(), 3);
    assert_eq!(c.live.log_level, "debug");
}

#[test]
fn errors_name_the_key() {
    let err = |text: &str, o: Overrides| load(text, o).unwrap_err().to_string();
    assert!(err("[proxy]\nlisten = \"nope\"", Overrides::default()).contains("proxy.listen"));
    assert!(err(
        "",
        Overrides {
            workers: Some(0),
            ..Default::default()
        }
    )
    .contains("proxy.workers"));
    assert!(err("[proxy]\nbogus = 1", Overrides::default()).contains("bogus"));
    assert!(err("[cluster]\nseeds = [\"nohost\"]", Overrides::default()).contains("cluster.seeds"));
    assert!(
        err("[backend]\nconnect_timeout_ms = 0", Overrides::default())
            .contains("backend.connect_timeout_ms")
    );
    assert!(err(
        "[backend]\nreconnect_min_ms = 10\nreconnect_max_ms = 5",
        Overrides::default()
    )
    .contains("reconnect_max_ms"));
    assert!(err("[proxy]\nworkers = \"x\"", Overrides::default()).contains("workers"));
}

#[test]
fn shutdown_grace_is_a_live_key_with_a_default() {
    let c = load("", Overrides::default()).unwrap();
    assert_eq!(c.live.shutdown_grace, Duration::from_secs(30));
    let c = load("[proxy]\nshutdown_grace_s = 2\n", Overrides::default()).unwrap();
    assert_eq!(c.live.shutdown_grace, Duration::from_secs(2));
}

#[test]
fn cluster_credentials_come_from_the_file_the_password_file_or_the_environment() {
    assert!(load("", Overrides::default())
        .unwrap()
        .live
        .cluster_auth
        .is_none());
    let given = load(
        "[cluster]\nuser = \"kw\"\npassword = \"s3cret\"\n",
        Overrides::default(),
    )
    .unwrap()
    .live
    .cluster_auth
    .unwrap();
    assert_eq!(given.user.as_deref(), Some("kw"));
    assert_eq!(given.password().unwrap(), "s3cret");
    assert!(
        !format!("{given:?}").contains("s3cret"),
        "Debug never shows it"
    );

    let dir = std::env::temp_dir().join(format!("keyway-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pass");
    std::fs::write(&file, "first\nsecond\n").unwrap();
    let text = format!("[cluster]\npassword_file = \"{}\"\n", file.display());
    let from_file = load(&text, Overrides::default())
        .unwrap()
        .live
        .cluster_auth
        .unwrap();
    assert_eq!(from_file.user, None);
    assert_eq!(from_file.password().unwrap(), "first");
    std::fs::write(&file, "changed\n").unwrap();
    assert_eq!(
        from_file.password().unwrap(),
        "changed",
        "read at every connect"
    );

    let env = Overrides {
        cluster_password: Some("from-env".into()),
        ..Default::default()
    };
    let over = load(&text, env).unwrap().live.cluster_auth.unwrap();
    assert_eq!(over.password().unwrap(), "from-env");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_cluster_credentials_name_the_key() {
    let err = |text: &str| load(text, Overrides::default()).unwrap_err().to_string();
    assert!(err("[cluster]\nuser = \"kw\"\n").contains("cluster.user"));
    assert!(err("[cluster]\npassword = \"a\"\npassword_file = \"/x\"\n")
        .contains("cluster.password_file"));
    assert!(
        err("[cluster]\npassword_file = \"/nonexistent/keyway.pass\"\n")
            .contains("cluster.password_file")
    );
}

#[test]
fn auth_users_are_checked_at_load() {
    let c = load("", Overrides::default()).unwrap();
    assert!(c.live.client_auth.users.open(), "no auth configured");
    assert!(c.live.client_auth.protected_mode);
    let c = load(
        "[auth]\nusers = [\"alice on >pw ~app:* +@read\"]\nmax_failures = 3\n",
        Overrides::default(),
    )
    .unwrap();
    assert!(c
        .live
        .client_auth
        .users
        .authenticate(b"alice", b"pw")
        .is_some());
    assert_eq!(c.live.client_auth.throttle.max_failures, 3);
    for (text, key, reason) in [
        (
            "[auth]\nusers = [\"alice on\", \"bob on +@nosuch\"]\n",
            "auth.users",
            "auth.users[1]: `bob on +@nosuch`: rule '+@nosuch': Unknown command or category name in ACL",
        ),
        (
            "[auth]\nusers = [\"bob on %X~k\"]\n",
            "auth.users",
            "auth.users[0]: `bob on %X~k`: rule '%X~k': Syntax error",
        ),
        (
            "[auth]\nusers = []\nacl_file = \"/nonexistent\"\n",
            "auth.acl_file",
            "set auth.users or auth.acl_file, not both",
        ),
        (
            "[auth]\nacl_file = \"/nonexistent/users.acl\"\n",
            "auth.acl_file",
            "cannot read /nonexistent/users.acl: No such file or directory (os error 2)",
        ),
        ("[auth]\npassword = \"\"\n", "auth.password", "must not be empty"),
        ("[auth]\nmax_failures = 0\n", "auth.max_failures", "must be greater than 0"),
    ] {
        match load(text, Overrides::default()) {
            Err(ConfigError::Invalid { key: k, reason: r }) => {
                assert_eq!((k, r.as_str()), (key, reason), "{text}")
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn read_policies() {
    let policy = |text: &str| load(text, Overrides::default()).map(|c| c.live.read.policy);
    assert_eq!(policy("").unwrap(), ReadPolicy::Master);
    assert_eq!(
        policy("[read]\npolicy = \"replica\"\n").unwrap(),
        ReadPolicy::Replica { fallback: true }
    );
    assert_eq!(
        policy("[read]\npolicy = \"replica\"\nfallback_to_master = false\n").unwrap(),
        ReadPolicy::Replica { fallback: false }
    );
    assert_eq!(
        policy("[read]\npolicy = \"any\"\n").unwrap(),
        ReadPolicy::Any
    );
    match policy("[read]\npolicy = \"replicas\"\n") {
        Err(ConfigError::Invalid { key, reason }) => {
            assert_eq!(key, "read.policy");
            assert!(reason.contains("`replicas` is not one of"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lag_and_read_your_writes_are_off_at_zero() {
    let read = |text: &str| load(text, Overrides::default()).unwrap().live.read;
    let off = read("");
    assert_eq!((off.max_lag_bytes, off.read_your_writes), (None, None));
    let zero = read("[read]\nmax_lag_bytes = 0\nread_your_writes_ms = 0\n");
    assert_eq!((zero.max_lag_bytes, zero.read_your_writes), (None, None));
    let on = read("[read]\nmax_lag_bytes = 65536\nread_your_writes_ms = 250\n");
    assert_eq!(on.max_lag_bytes, Some(65536));
    assert_eq!(on.read_your_writes, Some(Duration::from_millis(250)));
}

#[test]
fn the_admin_endpoint_is_on_by_default_and_checked() {
    let c = load("", Overrides::default()).unwrap();
    assert_eq!(
        c.startup.admin_listen,
        Some("127.0.0.1:9736".parse().unwrap())
    );
    assert_eq!(c.live.drain_delay, Duration::ZERO);
    match load("[admin]\nlisten = \"localhost\"\n", Overrides::default()) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "admin.listen"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reload_names_the_start_up_keys_it_cannot_apply() {
    let before = load("", Overrides::default()).unwrap().startup;
    let same = load("[proxy]\nlog_level = \"debug\"\n", Overrides::default()).unwrap();
    assert!(before.changed_keys(&same.startup).is_empty());
    let moved = load(
        "[proxy]\nworkers = 7\nlisten = \"127.0.0.1:7000\"\n",
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        before.changed_keys(&moved.startup),
        ["proxy.listen", "proxy.workers"]
    );
}

#[test]
fn failover_hold_and_output_limit_defaults_zero_and_bounds() {
    let d = load("", Overrides::default()).unwrap().live;
    assert_eq!(d.failover_hold, None, "0: from the cluster's node timeout");
    assert_eq!(d.failover_hold_max, 100_000);
    assert_eq!(d.output_limit, Some(256 << 20));
    assert_eq!(d.max_memory, None, "no process-wide limit by default");
    assert_eq!(d.max_pipeline_bytes, 64 << 20);
    let set = load(
        "[proxy]\nmax_memory_mb = 1024\n[cluster]\nfailover_hold_ms = 2500\nfailover_hold_max_requests = 7\n[client]\noutput_limit_mb = 0\nmax_pipeline_mb = 8\n",
        Overrides::default(),
    )
    .unwrap()
    .live;
    assert_eq!(
        set.failover_hold,
        Some(std::time::Duration::from_millis(2500))
    );
    assert_eq!(set.failover_hold_max, 7);
    assert_eq!(set.output_limit, None, "0: no limit");
    assert_eq!(set.max_memory, Some(1 << 30));
    assert_eq!(set.max_pipeline_bytes, 8 << 20);
    assert!(
        load("[client]\nmax_pipeline_mb = 0\n", Overrides::default())
            .unwrap_err()
            .to_string()
            .contains("client.max_pipeline_mb")
    );
    let too_long = load(
        "[cluster]\nfailover_hold_ms = 600001\n",
        Overrides::default(),
    );
    assert!(
        too_long
            .unwrap_err()
            .to_string()
            .contains("cluster.failover_hold_ms"),
        "names the key"
    );
    let old = load(
        "[client]\nmax_clusterdown_wait_ms = 3000\n",
        Overrides::default(),
    );
    assert!(old.is_err(), "the replaced key is refused");
}

#[test]
fn tls_keys_on_both_sides() {
    let text = r#"
        [proxy]
        listen = ""
        [tls]
        listen = "127.0.0.1:6390"
        cert_file = "s.crt"
        key_file = "s.key"
        ca_file = "ca.crt"
        client_auth = "required"
        user_from_cert = "cn"
        reload_interval_s = 5
        [client]
        handshake_timeout_ms = 500
        [cluster.tls]
        enabled = true
        verify = "ca"
        server_name = "redis.internal"
        cert_file = "c.crt"
        key_file = "c.key"
    "#;
    let c = load(text, Overrides::default()).unwrap();
    assert_eq!(c.startup.listen, None);
    let tls = c.startup.tls.unwrap();
    assert_eq!(tls.addr.port(), 6390);
    assert_eq!(tls.files.client_auth, crate::tls::ClientAuth::Required);
    assert!(tls.user_from_cert);
    assert_eq!(c.startup.tls_reload_interval, Duration::from_secs(5));
    assert_eq!(c.live.handshake_timeout, Duration::from_millis(500));
    let cluster = c.startup.cluster_tls.unwrap();
    assert_eq!(cluster.files.verify, crate::tls::Verify::Ca);
    assert_eq!(cluster.server_name.as_deref(), Some("redis.internal"));
    assert_eq!(
        cluster.files.ca_file.as_deref(),
        Some(Path::new("/etc/ssl/certs/ca-certificates.crt")),
        "the system's CAs when none is named"
    );

    let plain = load("", Overrides::default()).unwrap();
    assert!(plain.startup.tls.is_none() && plain.startup.cluster_tls.is_none());
    let disabled = load(
        "[cluster.tls]\nenabled = false\nverify = \"none\"",
        Overrides::default(),
    );
    assert!(disabled.unwrap().startup.cluster_tls.is_none());
}

#[test]
fn bad_tls_keys_name_the_key() {
    let key_of = |text: &str| match load(text, Overrides::default()) {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("{text}: {other:?}"),
    };
    let tls = "[tls]\nlisten = \"127.0.0.1:1\"\ncert_file = \"c\"\nkey_file = \"k\"\n";
    assert_eq!(key_of("[proxy]\nlisten = \"\""), "proxy.listen");
    assert_eq!(key_of("[tls]\nlisten = \"127.0.0.1:1\""), "tls.cert_file");
    assert_eq!(
        key_of(&format!("{tls}client_auth = \"yes\"")),
        "tls.client_auth"
    );
    assert_eq!(
        key_of(&format!("{tls}client_auth = \"required\"")),
        "tls.ca_file"
    );
    assert_eq!(
        key_of(&format!("{tls}user_from_cert = \"cn\"")),
        "tls.user_from_cert"
    );
    assert_eq!(
        key_of(&format!("{tls}reload_interval_s = 0")),
        "tls.reload_interval_s"
    );
    assert_eq!(key_of("[tls]\nlisten = \"nowhere\""), "tls.listen");
    let cluster = "[cluster.tls]\nenabled = true\n";
    assert_eq!(
        key_of(&format!("{cluster}verify = \"some\"")),
        "cluster.tls.verify"
    );
    assert_eq!(
        key_of(&format!("{cluster}cert_file = \"c\"")),
        "cluster.tls.cert_file"
    );
    assert_eq!(
        key_of("[client]\nhandshake_timeout_ms = 0"),
        "client.handshake_timeout_ms"
    );
}
