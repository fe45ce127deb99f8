//! TLS streams end to end on loopback, with certificates made here.

use std::sync::Arc;

use bytes::BytesMut;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::HandshakeError;
use crate::net::Stream;

/// A CA named `ca_name`, and a server certificate for 127.0.0.1 it
/// signed: the configs of both ends.
fn configs(ca_name: &str) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Both ends of a TLS connection on loopback.
async fn tls_pair() -> (Stream, Stream) {
    let (server, client) = configs("test CA");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connect = async {
        let tcp = Stream::connect_tcp(&addr).await.unwrap();
        tcp.connect_tls(client, name).await.unwrap()
    };
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        Stream::accept_tls(tcp, server).await.unwrap()
    };
    tokio::join!(connect, accept)
}

/// Reads until `buf` holds `want` bytes (or the peer closed).
async fn read_until(stream: &Stream, buf: &mut BytesMut, want: usize) {
    while buf.len() < want {
        stream.readable().await.unwrap();
        buf.reserve(64 * 1024);
        if stream.read_some(buf).unwrap() == Some(0) {
            return;
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sixteen_mib_cross_in_both_directions_intact() {
    let (client, server) = tls_pair().await;
    let value: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut out = BytesMut::from(&value[..]);
    let mut got = BytesMut::new();
    let (written, ()) = tokio::join!(
        client.write_all(&mut out),
        read_until(&server, &mut got, value.len())
    );
    written.unwrap();
    assert!(!client.wants_write());
    assert!(
        got[..] == value[..],
        "the server read what the client wrote"
    );

    let mut back = got.split();
    let mut echoed = BytesMut::new();
    let (written, ()) = tokio::join!(
        server.write_all(&mut back),
        read_until(&client, &mut echoed, value.len())
    );
    written.unwrap();
    assert!(echoed[..] == value[..]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_closed_peer_reads_as_the_end_with_or_without_close_notify() {
    let (client, server) = tls_pair().await;
    client.shutdown_write().unwrap();
    let mut buf = BytesMut::new();
    read_until(&server, &mut buf, 1).await;
    assert!(buf.is_empty());
    assert_eq!(server.read_some(&mut buf).unwrap(), Some(0));
    drop(server);
    let mut buf = BytesMut::new();
    read_until(&client, &mut buf, 1).await;
    assert!(buf.is_empty(), "no plaintext, then the end");
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_is_idle_despite_session_tickets() {
    let (client, server) = tls_pair().await;
    // TLS 1.3 servers send session tickets after the handshake.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(client.is_idle(), "tickets alone leave it idle");
    let mut reply = BytesMut::from(&b"+PONG\r\n"[..]);
    server.write_all(&mut reply).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!client.is_idle(), "a reply nobody asked for makes it unfit");
}

#[tokio::test(flavor = "current_thread")]
async fn plaintext_on_a_tls_listener_fails_the_handshake_as_plaintext() {
    let (server, _) = configs("test CA");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let failed = Stream::accept_tls(tcp, server).await.unwrap_err();
    assert!(matches!(failed, HandshakeError::Plaintext), "{failed:?}");
    assert_eq!(failed.reason(), "plaintext");
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_the_ca_did_not_sign_is_refused() {
    let (_, client) = configs("test CA");
    let (other_server, _) = configs("another CA");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connect = async {
        let tcp = Stream::connect_tcp(&addr).await.unwrap();
        tcp.connect_tls(client, name).await
    };
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        Stream::accept_tls(tcp, other_server).await
    };
    let (connected, _) = tokio::join!(connect, accept);
    let failed = connected.unwrap_err();
    assert_eq!(failed.reason(), "unknown_ca", "{failed}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_read_fills_no_more_than_the_room_made_for_it() {
    let (client, server) = tls_pair().await;
    let value = vec![b'v'; 100_000];
    let mut out = BytesMut::from(&value[..]);
    out.extend_from_slice(b"next reply");
    server.write_all(&mut out).await.unwrap();
    // Room for exactly the value, as the backend reader makes it.
    let mut buf = BytesMut::with_capacity(value.len());
    let capacity = buf.capacity();
    while buf.len() < value.len() {
        client.readable().await.unwrap();
        client.read_some(&mut buf).unwrap();
        assert!(buf.len() <= capacity, "read past the room: {}", buf.len());
    }
    assert_eq!(buf.capacity(), capacity, "no reallocation");
    let mut rest = BytesMut::new();
    read_until(&client, &mut rest, b"next reply".len()).await;
    assert_eq!(&rest[..], b"next reply", "what did not fit comes next");
}
