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
    assert_eq!(c.startup.listen.to_string(), defaults::LISTEN);
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
    };
    let c = load("[proxy]\nlisten = \"0.0.0.0:1\"\nworkers = 8\n", o).unwrap();
    assert_eq!(c.startup.listen.port(), 7777);
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
