//! Loading and reloading TLS material from files made here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};

use super::*;

/// A fresh directory under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyway-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a self-signed certificate for localhost expiring in `year`, and
/// its key; returns the key pair (to write a mismatched pair later).
fn write_pair(dir: &Path, year: i32) -> KeyPair {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(year, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    // Rotation as tools do it: a new file renamed over the old one.
    std::fs::write(dir.join("cert.tmp"), cert.pem()).unwrap();
    std::fs::rename(dir.join("cert.tmp"), dir.join("cert.pem")).unwrap();
    std::fs::write(dir.join("key.tmp"), key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.tmp"), dir.join("key.pem")).unwrap();
    key
}

fn files(dir: &Path) -> ServerFiles {
    ServerFiles {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
        ca_file: None,
        client_auth: ClientAuth::None,
    }
}

fn not_after(tls: &ServerTls) -> Option<i64> {
    tls.loaded.lock().unwrap().not_after
}

#[test]
fn a_changed_pair_is_loaded_and_a_bad_one_keeps_the_previous() {
    let dir = scratch("reload");
    write_pair(&dir, 2030);
    let tls = ServerTls::load(files(&dir)).unwrap();
    let first = tls.config();
    assert_eq!(not_after(&tls), Some(1_893_456_000), "2030-01-01");

    tls.reload(false);
    assert!(Arc::ptr_eq(&first, &tls.config()), "nothing changed");

    write_pair(&dir, 2031);
    tls.reload(false);
    let second = tls.config();
    assert!(!Arc::ptr_eq(&first, &second), "new files, new config");
    assert_eq!(not_after(&tls), Some(1_924_992_000), "2031-01-01");

    // A new certificate with the old key: refused, the previous stays.
    let old_key = std::fs::read(dir.join("key.pem")).unwrap();
    write_pair(&dir, 2032);
    std::fs::write(dir.join("key.pem"), old_key).unwrap();
    tls.reload(false);
    assert!(Arc::ptr_eq(&second, &tls.config()));
    assert_eq!(not_after(&tls), Some(1_924_992_000));

    // Half written: refused too.
    std::fs::write(dir.join("cert.pem"), "-----BEGIN CERTIFICATE-----\nMIIB").unwrap();
    tls.reload(true);
    assert!(Arc::ptr_eq(&second, &tls.config()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_file() {
    let dir = scratch("errors");
    write_pair(&dir, 2030);
    let mut missing = files(&dir);
    missing.key_file = dir.join("nope.pem");
    let e = ServerTls::load(missing).err().unwrap();
    assert!(e.to_string().contains("nope.pem"), "{e}");

    let mut needs_ca = files(&dir);
    needs_ca.client_auth = ClientAuth::Required;
    let e = ServerTls::load(needs_ca).err().unwrap();
    assert!(e.to_string().contains("tls.ca_file"), "{e}");

    let cluster = ClientFiles {
        ca_file: Some(dir.join("cert.pem")),
        cert_file: None,
        key_file: None,
        verify: Verify::Full,
    };
    let e = ClusterTls::load(cluster, Some("not a name!".into()))
        .err()
        .unwrap();
    assert!(e.to_string().contains("server_name"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
