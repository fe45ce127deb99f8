use super::*;

fn own() -> Own {
    Own {
        redis_version: "7.0.15".into(),
        tcp_port: 6380,
        uptime: 90_000,
        connected_clients: 3,
        max_clients: 10_000,
        blocked_clients: 2,
        connections_received: 42,
        rejected_connections: 1,
        reads_served: (7, 5),
        replicas_lagging: 1,
        keyway: None,
    }
}

fn master(used: u64, keys: u64, expires: u64, ttl: u64, replica_port: u16) -> String {
    format!(
        "# Server\r\nredis_version:7.0.15\r\ntcp_port:7000\r\nuptime_in_seconds:5\r\n\r\n\
         # Clients\r\nconnected_clients:7\r\n\r\n\
         # Memory\r\nused_memory:{used}\r\nused_memory_human:x\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:x\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:1.{frag}\r\n\r\n\
         # Persistence\r\nloading:0\r\nrdb_changes_since_last_save:{keys}\r\nrdb_last_save_time:{save}\r\nrdb_last_bgsave_status:{status}\r\n\r\n\
         # Stats\r\ntotal_connections_received:99\r\nkeyspace_hits:{keys}\r\nrejected_connections:0\r\n\r\n\
         # Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port={replica_port},state=online,offset=10,lag=0\r\nmaster_repl_offset:{used}\r\n\r\n\
         # Cluster\r\ncluster_enabled:1\r\n\r\n\
         # Keyspace\r\ndb0:keys={keys},expires={expires},avg_ttl={ttl}\r\n",
        peak = used * 2,
        frag = keys % 10,
        save = 1_000 + keys,
        status = if keys == 2 { "err" } else { "ok" },
    )
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("{name} missing in {text}"))
}

#[test]
fn masters_sections_are_summed_and_keyway_describes_itself() {
    let texts = [
        master(1024 * 1024, 10, 4, 1000, 7003),
        master(3 * 1024 * 1024, 2, 0, 0, 7004),
        master(512, 5, 1, 4000, 7005),
    ];
    let text = merge(&texts, &own());
    // keyway's own sections.
    assert_eq!(field(&text, "redis_version"), "7.0.15");
    assert_eq!(field(&text, "redis_mode"), "standalone");
    assert_eq!(field(&text, "tcp_port"), "6380");
    assert_eq!(field(&text, "uptime_in_days"), "1");
    assert_eq!(field(&text, "connected_clients"), "3");
    assert_eq!(field(&text, "blocked_clients"), "2");
    assert_eq!(field(&text, "cluster_enabled"), "0");
    assert_eq!(field(&text, "total_connections_received"), "42");
    assert_eq!(field(&text, "rejected_connections"), "1");
    assert_eq!(field(&text, "reads_served_by_master"), "7");
    assert_eq!(field(&text, "reads_served_by_replica"), "5");
    assert_eq!(field(&text, "replicas_lagging"), "1");
    // Sums, with their human forms.
    let used = 4 * 1024 * 1024 + 512;
    assert_eq!(field(&text, "used_memory"), used.to_string());
    assert_eq!(field(&text, "used_memory_human"), "4.00M");
    assert_eq!(field(&text, "used_memory_peak"), (2 * used).to_string());
    assert_eq!(field(&text, "used_memory_peak_human"), "8.00M");
    assert_eq!(field(&text, "keyspace_hits"), "17");
    assert_eq!(field(&text, "rdb_changes_since_last_save"), "17");
    // Flags and ratios: the largest; timestamps: the oldest; texts: the
    // first, unless one is not ok.
    assert_eq!(field(&text, "loading"), "0");
    assert_eq!(field(&text, "mem_fragmentation_ratio"), "1.50");
    assert_eq!(field(&text, "rdb_last_save_time"), "1002");
    assert_eq!(field(&text, "rdb_last_bgsave_status"), "err");
    assert_eq!(field(&text, "maxmemory_policy"), "noeviction");
    assert_eq!(
        field(&text, "master_repl_offset"),
        (3 * 1024 * 1024).to_string()
    );
    // Every master's replica, numbered anew.
    assert_eq!(field(&text, "connected_slaves"), "3");
    assert!(field(&text, "slave0").contains("port=7003"));
    assert!(field(&text, "slave1").contains("port=7004"));
    assert!(field(&text, "slave2").contains("port=7005"));
    // Keys summed per db; the average TTL weighted by keys with one.
    assert_eq!(field(&text, "db0"), "keys=17,expires=5,avg_ttl=1600");
    // Redis's shape: `# Name` headers, CRLF lines, a blank line between.
    assert!(
        text.starts_with("# Server\r\nredis_version:7.0.15\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\n\r\n# Clients\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n# Keyspace\r\ndb0:keys=17,expires=5,avg_ttl=1600\r\n"),
        "{text}"
    );
    let order: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# ")).collect();
    assert_eq!(
        order,
        [
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Replication",
            "Cluster",
            "Keyspace"
        ]
    );
}

#[test]
fn only_the_sections_the_masters_gave_are_answered() {
    let memory = "# Memory\r\nused_memory:100\r\nused_memory_human:100B\r\n".to_string();
    let text = merge(&[memory.clone(), memory], &own());
    assert_eq!(
        text,
        "# Memory\r\nused_memory:200\r\nused_memory_human:200B\r\n"
    );
    assert_eq!(merge(&["".into()], &own()), "");
}

#[test]
fn command_stats_add_up_and_averages_are_recomputed() {
    let a = "# Commandstats\r\ncmdstat_get:calls=10,usec=100,usec_per_call=10.00,rejected_calls=0,failed_calls=1\r\n";
    let b = "# Commandstats\r\ncmdstat_get:calls=30,usec=500,usec_per_call=16.67,rejected_calls=2,failed_calls=0\r\ncmdstat_set:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n";
    let text = merge(&[a.into(), b.into()], &own());
    assert_eq!(
        field(&text, "cmdstat_get"),
        "calls=40,usec=600,usec_per_call=15.00,rejected_calls=2,failed_calls=1"
    );
    assert_eq!(
        field(&text, "cmdstat_set"),
        "calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0"
    );
}

#[test]
fn human_sizes_read_like_redis() {
    assert_eq!(human(1023), "1023B");
    assert_eq!(human(1024), "1.00K");
    assert_eq!(human(1536 * 1024), "1.50M");
    assert_eq!(human(5 * 1024 * 1024 * 1024), "5.00G");
}

#[test]
fn the_keyway_section_comes_last_when_asked_for() {
    let args = |a: &[&str]| {
        asks_keyway(
            a.iter()
                .map(|s| s.as_bytes())
                .collect::<Vec<_>>()
                .into_iter(),
        )
    };
    assert!(args(&[]));
    assert!(args(&["KEYWAY"]));
    assert!(args(&["server", "all"]));
    assert!(args(&["Everything"]));
    assert!(!args(&["server"]));
    assert!(!args(&["commandstats", "latencystats"]));
    let mut own = own();
    own.keyway = Some(vec![("ready".into(), "1".into())]);
    let text = merge(&["# Server\r\nredis_version:7.0.15\r\n".into()], &own);
    assert!(text.ends_with("\r\n# Keyway\r\nready:1\r\n"), "{text:?}");
    // `INFO keyway` alone: the masters answer nothing.
    assert_eq!(
        merge(&[String::new(), String::new()], &own),
        "# Keyway\r\nready:1\r\n"
    );
}
