//! TLS for the tests: certificates made at test time with the `openssl`
//! command line (never checked in), the TLS material of a TLS cluster's
//! nodes by port (so every helper of [`super::cluster`] speaks TLS to a
//! TLS node without being told), raw TLS client connections with rustls,
//! and `redis` clients over TLS.
//!
//! - [`Pki`]: a CA in a temp dir that issues certificates by [`Spec`]:
//!   server (SAN `IP:127.0.0.1`, `DNS:localhost`) or client (a chosen CN),
//!   RSA, ECDSA P-256 or Ed25519 keys, expired, or signed by an
//!   intermediate CA (the certificate file then holds the chain).
//! - [`replace_pair`]: rotation, a cert/key pair overwritten by rename.
//! - [`NodeTls`]: what a TLS cluster's nodes, and the harness's own
//!   connections and `redis-cli` runs against them, use.
//! - [`TlsClient`]: a raw RESP client over rustls; [`redis_client`]: a
//!   `redis::Client` over TLS.

use super::resp::{encode, read_reply};
use super::util::{run_bounded, TempDir};
use super::OP_TIMEOUT;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::collections::BTreeMap;
use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The key of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA, 2048 bits.
    Rsa,
    /// ECDSA on P-256.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

/// What [`Pki::issue`] makes.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The subject's CN.
    pub cn: String,
    pub key: KeyType,
    /// A server's certificate: SAN `IP:127.0.0.1, DNS:localhost`, usable
    /// for both `serverAuth` and `clientAuth` (redis-server presents the
    /// same certificate to the nodes it connects to). Otherwise a client's:
    /// `clientAuth` only, no SAN.
    pub server: bool,
    /// Valid from 10 days ago to 1 day ago.
    pub expired: bool,
    /// Signed by an intermediate CA (itself signed by the root): the
    /// certificate file holds the leaf, then the intermediate.
    pub chain: bool,
    /// Days of validity from an hour ago (ignored when `expired`).
    pub days: u32,
}

impl Spec {
    /// A server certificate (ECDSA P-256, valid 30 days) with CN `cn`.
    pub fn server(cn: &str) -> Spec {
        Spec {
            cn: cn.to_string(),
            key: KeyType::EcdsaP256,
            server: true,
            expired: false,
            chain: false,
            days: 30,
        }
    }

    /// A client certificate (ECDSA P-256, valid 30 days) with CN `cn`.
    pub fn client(cn: &str) -> Spec {
        Spec {
            server: false,
            ..Spec::server(cn)
        }
    }

    /// With a key of type `key`.
    pub fn key(mut self, key: KeyType) -> Spec {
        self.key = key;
        self
    }

    /// Expired a day ago.
    pub fn expired(mut self) -> Spec {
        self.expired = true;
        self
    }

    /// Signed by the intermediate CA, the chain in the certificate file.
    pub fn chained(mut self) -> Spec {
        self.chain = true;
        self
    }

    /// Valid for `days` days.
    pub fn days(mut self, days: u32) -> Spec {
        self.days = days;
        self
    }
}

/// A certificate file (PEM; the chain when there is one) and its key file.
/// The files live (in their [`Pki`]'s directory) as long as the `Pki` or
/// any `CertKey` of it.
#[derive(Clone)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The leaf's `notBefore` and `notAfter`.
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    dir: Arc<TempDir>,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl CertKey {
    /// The certificate file's bytes (PEM).
    pub fn cert_pem(&self) -> Vec<u8> {
        read(&self.cert)
    }

    /// The key file's bytes (PEM).
    pub fn key_pem(&self) -> Vec<u8> {
        read(&self.key)
    }

    /// The leaf certificate (the file's first), DER: what a peer presents.
    pub fn leaf_der(&self) -> Vec<u8> {
        certs_of(&self.cert)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no certificate in {}", self.cert.display()))
            .to_vec()
    }

    /// For the `redis` crate: this pair as a client certificate.
    pub fn redis_client_tls(&self) -> redis::ClientTlsConfig {
        redis::ClientTlsConfig {
            client_cert: self.cert_pem(),
            client_key: self.key_pem(),
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The certificates of a PEM file, in file order.
pub fn certs_of(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("bad PEM in {}: {e}", path.display()))
}

/// Runs `openssl ARGS` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    let (status, output) = run_bounded(&mut cmd, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "`openssl {}` failed (the TLS tests need the openssl command line: \
         apt-get install -y openssl):\n{output}",
        args.join(" ")
    );
    output
}

/// A time as `openssl ca -startdate/-enddate` takes it: `YYMMDDHHMMSSZ`
/// (UTC; the years 2000-2049).
fn asn1_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}{month:02}{day:02}{:02}{:02}{:02}Z",
        year % 100,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const DAY: Duration = Duration::from_secs(86_400);

/// A certificate authority: its certificate, key, and `openssl ca`'s
/// configuration and database, in its own directory.
struct Authority {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Authority {
    /// A self-signed root CA named `cn` in `dir`.
    fn root(dir: PathBuf, cn: &str) -> Authority {
        let ca = Authority::prepare(dir);
        genkey(&ca.dir, &ca.key, KeyType::Rsa);
        openssl(
            &ca.dir,
            &[
                "req",
                "-config",
                "ca.cnf",
                "-x509",
                "-new",
                "-key",
                path_str(&ca.key),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "3650",
                "-sha256",
                "-extensions",
                "v3_ca",
                "-out",
                path_str(&ca.cert),
            ],
        );
        ca
    }

    /// An intermediate CA named `cn` in `dir`, signed by `parent`.
    fn intermediate(dir: PathBuf, cn: &str, parent: &Authority) -> Authority {
        let ca = Authority::prepare(dir);
        genkey(&ca.dir, &ca.key, KeyType::EcdsaP256);
        let now = SystemTime::now();
        parent.sign(
            &ca.dir,
            &ca.key,
            cn,
            "basicConstraints = critical,CA:TRUE,pathlen:0\n\
             keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n",
            now - DAY,
            now + 3650 * DAY,
            &ca.cert,
        );
        ca
    }

    /// The directory, `openssl ca`'s configuration and empty database.
    fn prepare(dir: PathBuf) -> Authority {
        std::fs::create_dir_all(dir.join("issued")).expect("create CA dir");
        std::fs::write(dir.join("index.txt"), "").expect("write index.txt");
        std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")
            .expect("write index.txt.attr");
        let cert = dir.join("ca.crt");
        let key = dir.join("ca.key");
        let conf = format!(
            "[ca]\ndefault_ca = this\n\
             [this]\ndir = {dir}\ndatabase = {dir}/index.txt\nnew_certs_dir = {dir}/issued\n\
             serial = {dir}/serial\ncertificate = {cert}\nprivate_key = {key}\n\
             default_md = sha256\npolicy = any\nunique_subject = no\nemail_in_dn = no\n\
             copy_extensions = none\n\
             [any]\ncommonName = supplied\n\
             [req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n\
             subjectKeyIdentifier = hash\n",
            dir = dir.display(),
            cert = cert.display(),
            key = key.display()
        );
        std::fs::write(dir.join("ca.cnf"), conf).expect("write ca.cnf");
        Authority { dir, cert, key }
    }

    /// Signs a certificate for `key` (subject `CN=cn`, the extensions
    /// `ext`, valid from `not_before` to `not_after`) into `out`.
    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        work: &Path,
        key: &Path,
        cn: &str,
        ext: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        out: &Path,
    ) {
        let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("cert");
        let csr = work.join(format!("{stem}.csr"));
        let extfile = work.join(format!("{stem}.ext"));
        std::fs::write(
            &extfile,
            format!("[ext]\n{ext}subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"),
        )
        .expect("write extension file");
        openssl(
            work,
            &[
                "req",
                "-config",
                path_str(&self.dir.join("ca.cnf")),
                "-new",
                "-key",
                path_str(key),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                path_str(&csr),
            ],
        );
        openssl(
            work,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                path_str(&self.dir.join("ca.cnf")),
                "-rand_serial",
                "-in",
                path_str(&csr),
                "-out",
                path_str(out),
                "-startdate",
                &asn1_time(not_before),
                "-enddate",
                &asn1_time(not_after),
                "-extfile",
                path_str(&extfile),
                "-extensions",
                "ext",
            ],
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A new private key of type `key` in `out` (PKCS#8 PEM).
fn genkey(dir: &Path, out: &Path, key: KeyType) {
    let mut args = vec!["genpkey", "-out", path_str(out)];
    match key {
        KeyType::Rsa => args.extend(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        KeyType::EcdsaP256 => {
            args.extend(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        }
        KeyType::Ed25519 => args.extend(["-algorithm", "ED25519"]),
    }
    openssl(dir, &args);
}

/// A CA in its own temp dir, issuing certificates; another `Pki` is
/// another, unrelated CA.
pub struct Pki {
    dir: Arc<TempDir>,
    root: Authority,
    intermediate: Mutex<Option<Authority>>,
}

impl Pki {
    /// A fresh root CA with CN `name`.
    pub fn new(name: &str) -> Pki {
        let dir = Arc::new(TempDir::new("pki"));
        let root = Authority::root(dir.path().join("root"), name);
        Pki {
            dir,
            root,
            intermediate: Mutex::new(None),
        }
    }

    /// The root CA's certificate file: what peers are told to trust.
    pub fn ca(&self) -> &Path {
        &self.root.cert
    }

    /// The directory the files live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a certificate by `spec` into `NAME.crt` and `NAME.key` of
    /// [`Pki::dir`] (both overwritten if they exist).
    pub fn issue(&self, name: &str, spec: &Spec) -> CertKey {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).expect("create work dir");
        let seq = {
            static SEQ: AtomicUsize = AtomicUsize::new(0);
            SEQ.fetch_add(1, Ordering::Relaxed)
        };
        let key = self.dir.path().join(format!("{name}.key"));
        let cert = self.dir.path().join(format!("{name}.crt"));
        let tmp_key = work.join(format!("{name}-{seq}.key"));
        let tmp_cert = work.join(format!("{name}-{seq}.crt"));
        genkey(&work, &tmp_key, spec.key);
        let now = SystemTime::now();
        let (not_before, not_after) = if spec.expired {
            (now - 10 * DAY, now - DAY)
        } else {
            (
                now - Duration::from_secs(3600),
                now + spec.days.max(1) * DAY,
            )
        };
        let key_usage = match spec.key {
            KeyType::Rsa => "digitalSignature,keyEncipherment",
            KeyType::EcdsaP256 | KeyType::Ed25519 => "digitalSignature",
        };
        let ext = if spec.server {
            format!(
                "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,{key_usage}\n\
                 extendedKeyUsage = serverAuth,clientAuth\n\
                 subjectAltName = IP:127.0.0.1,DNS:localhost\n"
            )
        } else {
            format!(
                "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,{key_usage}\n\
                 extendedKeyUsage = clientAuth\n"
            )
        };
        if spec.chain {
            let mut intermediate = self.intermediate.lock().unwrap();
            let ca = intermediate.get_or_insert_with(|| {
                Authority::intermediate(
                    self.dir.path().join("intermediate"),
                    "keyway test intermediate CA",
                    &self.root,
                )
            });
            ca.sign(
                &work, &tmp_key, &spec.cn, &ext, not_before, not_after, &tmp_cert,
            );
            let mut chain = read(&tmp_cert);
            chain.extend_from_slice(&read(&ca.cert));
            std::fs::write(&tmp_cert, chain).expect("write chain");
        } else {
            self.root.sign(
                &work, &tmp_key, &spec.cn, &ext, not_before, not_after, &tmp_cert,
            );
        }
        let pair = CertKey {
            cert,
            key,
            // openssl keeps whole seconds.
            not_before: UNIX_EPOCH
                + Duration::from_secs(not_before.duration_since(UNIX_EPOCH).unwrap().as_secs()),
            not_after: UNIX_EPOCH
                + Duration::from_secs(not_after.duration_since(UNIX_EPOCH).unwrap().as_secs()),
            dir: Arc::clone(&self.dir),
        };
        std::fs::rename(&tmp_key, &pair.key).expect("rename key");
        std::fs::rename(&tmp_cert, &pair.cert).expect("rename cert");
        pair
    }

    /// Issues into fresh files under [`Pki::dir`]`/spare` (not where a
    /// running keyway reads): material to rotate in with [`replace_pair`].
    pub fn issue_spare(&self, name: &str, spec: &Spec) -> CertKey {
        let pair = self.issue(name, spec);
        let spare = self.dir.path().join("spare");
        std::fs::create_dir_all(&spare).expect("create spare dir");
        let moved = CertKey {
            cert: spare.join(format!("{name}.crt")),
            key: spare.join(format!("{name}.key")),
            ..pair.clone()
        };
        std::fs::rename(&pair.cert, &moved.cert).expect("rename cert");
        std::fs::rename(&pair.key, &moved.key).expect("rename key");
        moved
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same
/// directory, then `rename` over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let tmp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// Rotation: overwrites `dst`'s certificate and key with `src`'s, each
/// file atomically (the key first, then the certificate). Returns `src`'s
/// validity under `dst`'s paths.
pub fn replace_pair(dst: &CertKey, src: &CertKey) -> CertKey {
    write_atomically(&dst.key, &src.key_pem());
    write_atomically(&dst.cert, &src.cert_pem());
    CertKey {
        cert: dst.cert.clone(),
        key: dst.key.clone(),
        ..src.clone()
    }
}

/// A rustls client configuration trusting `ca` (a PEM file, maybe
/// several certificates), presenting `client` when given.
pub fn client_config(ca: &Path, client: Option<&CertKey>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in certs_of(ca) {
        roots.add(cert).expect("a CA certificate rustls accepts");
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let key = PrivateKeyDer::from_pem_file(&pair.key)
                .unwrap_or_else(|e| panic!("bad key {}: {e}", pair.key.display()));
            builder
                .with_client_auth_cert(certs_of(&pair.cert), key)
                .expect("a client certificate rustls accepts")
        }
    };
    Arc::new(config)
}

/// A raw RESP client over TLS (rustls), for handshake and certificate
/// tests: the exact reply bytes, the peer's certificate, and errors as
/// values.
pub struct TlsClient {
    reader: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    /// Connects to `addr`, verifying its certificate for `127.0.0.1` against
    /// `ca`, presenting `client` when given, and completes the handshake.
    pub fn connect(addr: &str, ca: &Path, client: Option<&CertKey>) -> io::Result<TlsClient> {
        TlsClient::connect_with(
            addr,
            client_config(ca, client),
            ServerName::try_from("127.0.0.1").expect("an IP address"),
        )
    }

    /// Like [`TlsClient::connect`] with a given configuration and name.
    pub fn connect_with(
        addr: &str,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<TlsClient> {
        let sockaddr = addr
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
        let mut sock = TcpStream::connect_timeout(&sockaddr, OP_TIMEOUT)?;
        sock.set_read_timeout(Some(OP_TIMEOUT))?;
        sock.set_write_timeout(Some(OP_TIMEOUT))?;
        sock.set_nodelay(true)?;
        let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok(TlsClient {
            reader: BufReader::new(StreamOwned::new(conn, sock)),
        })
    }

    /// The certificate the server presented (its leaf, DER).
    pub fn peer_leaf(&self) -> Vec<u8> {
        self.reader
            .get_ref()
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .expect("the server presented a certificate")
    }

    /// The certificates the server presented, leaf first (DER).
    pub fn peer_chain(&self) -> Vec<Vec<u8>> {
        self.reader
            .get_ref()
            .conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.to_vec()).collect())
            .unwrap_or_default()
    }

    /// Writes `bytes` as they are.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Sends one command and reads its reply as (lossy) text; any I/O or
    /// TLS error (an alert, a close) is returned.
    pub fn try_cmd(&mut self, args: &[&str]) -> io::Result<String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.try_send(&encode(&args))?;
        self.try_reply()
    }

    /// Reads one reply as (lossy) text.
    pub fn try_reply(&mut self) -> io::Result<String> {
        let reply = read_reply(&mut self.reader)?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// Like [`TlsClient::try_cmd`], panicking on an error.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} over TLS: {e}"))
    }

    /// Writes `bytes` as they are, panicking on an error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("write over TLS: {e}"));
    }

    /// Reads one reply as (lossy) text, panicking on an error.
    pub fn reply_text(&mut self) -> String {
        self.try_reply()
            .unwrap_or_else(|e| panic!("reading a reply over TLS: {e}"))
    }
}

/// A `redis::Client` for `rediss://addr/` (`addr` an IP:port: its
/// certificate must name the IP) trusting `ca`, presenting `client` when
/// given; `password` logs in as the `default` user.
pub fn redis_client(
    addr: &str,
    ca: &Path,
    client: Option<&CertKey>,
    password: Option<&str>,
) -> redis::Client {
    let url = match password {
        Some(password) => format!("rediss://:{password}@{addr}/"),
        None => format!("rediss://{addr}/"),
    };
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: client.map(CertKey::redis_client_tls),
            root_cert: Some(read(ca)),
        },
    )
    .expect("a TLS redis client")
}

/// A synchronous connection of [`redis_client`] with `timeout` on connect,
/// reads and writes.
pub fn redis_connect(
    addr: &str,
    ca: &Path,
    client: Option<&CertKey>,
    password: Option<&str>,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let con = redis_client(addr, ca, client, password).get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// The TLS material of a TLS cluster: one CA, the certificate every node
/// presents (to clients and to each other), and the client certificate
/// the harness (and `redis-cli`) present to the nodes, which run with
/// `tls-auth-clients yes`.
pub struct NodeTls {
    pki: Pki,
    /// The nodes' certificate (SAN 127.0.0.1 and localhost).
    pub server: CertKey,
    /// The harness's client certificate (`CN=harness`).
    pub client: CertKey,
}

impl NodeTls {
    /// A fresh CA and the nodes' and harness's certificates.
    pub fn new() -> NodeTls {
        let pki = Pki::new("keyway test cluster CA");
        let server = pki.issue("node", &Spec::server("redis-node"));
        let client = pki.issue("harness", &Spec::client("harness"));
        NodeTls {
            pki,
            server,
            client,
        }
    }

    /// The CA the nodes' certificates are signed by, and that they check
    /// clients against.
    pub fn ca(&self) -> &Path {
        self.pki.ca()
    }

    /// The CA, to issue more certificates the nodes accept (e.g. keyway's
    /// client certificate).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// A `redis-server`'s TLS arguments beside `--port 0 --tls-port PORT`.
    pub(crate) fn server_args(&self) -> Vec<String> {
        [
            ("--tls-cluster", "yes"),
            ("--tls-replication", "yes"),
            ("--tls-auth-clients", "yes"),
            ("--tls-cert-file", path_str(&self.server.cert)),
            ("--tls-key-file", path_str(&self.server.key)),
            ("--tls-ca-cert-file", path_str(self.ca())),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect()
    }

    /// `redis-cli`'s (and `redis-benchmark`'s) arguments to reach a node.
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".to_string(),
            "--cacert".to_string(),
            path_str(self.ca()).to_string(),
            "--cert".to_string(),
            path_str(&self.client.cert).to_string(),
            "--key".to_string(),
            path_str(&self.client.key).to_string(),
        ]
    }

    /// A `redis::Client` to the node at `addr`, logging in with `password`.
    pub fn client_of(&self, addr: &str, password: Option<&str>) -> redis::Client {
        redis_client(addr, self.ca(), Some(&self.client), password)
    }
}

impl Default for NodeTls {
    fn default() -> Self {
        NodeTls::new()
    }
}

/// The TLS material of each TLS node, by port, so that every helper
/// connecting to a node speaks TLS to it without being told. Ports are
/// unique while a cluster holds them.
static NODES: Mutex<BTreeMap<u16, Arc<NodeTls>>> = Mutex::new(BTreeMap::new());

/// Records that the node on `port` speaks TLS with `tls`.
pub(crate) fn register_node(port: u16, tls: &Arc<NodeTls>) {
    NODES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(port, Arc::clone(tls));
}

/// Forgets the node on `port` (its cluster is gone).
pub(crate) fn forget_node(port: u16) {
    NODES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&port);
}

/// The TLS material of the node on `port`, if it is a TLS node.
pub(crate) fn node_tls(port: u16) -> Option<Arc<NodeTls>> {
    NODES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&port)
        .cloned()
}
