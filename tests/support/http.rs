//! A minimal HTTP/1.1 client over `std::net::TcpStream` for keyway's admin
//! endpoint (`/metrics`, `/health/*`): one request per connection, the
//! response read to the end of the stream (keyway answers with
//! `Connection: close`), and the Prometheus text of `/metrics` looked up
//! sample by sample.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Read and write timeout of every request: keyway closes an admin
/// connection after 5 s whatever happens, so 6 s is a hang.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(6);

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The header lines (without the status line), as received.
    pub headers: String,
    /// Everything after the blank line.
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// Sends `METHOD path HTTP/1.1` to `addr` and reads the whole response.
pub fn request(addr: &str, method: &str, path: &str) -> io::Result<Response> {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: keyway\r\n\r\n");
    send_raw(addr, head.as_bytes())
}

/// `GET path`, panicking on any I/O error (a refused connection, a
/// timeout, a malformed response).
pub fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// Writes `bytes` as they are and reads the response to the end of the
/// stream.
pub fn send_raw(addr: &str, bytes: &[u8]) -> io::Result<Response> {
    let mut stream = connect(addr)?;
    stream.write_all(bytes)?;
    read_response(&mut stream)
}

/// A connection to `addr` with [`HTTP_TIMEOUT`] on connect, reads and
/// writes.
pub fn connect(addr: &str) -> io::Result<TcpStream> {
    let sockaddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let stream = TcpStream::connect_timeout(&sockaddr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    Ok(stream)
}

/// Reads to the end of `stream` and parses what came as a response.
pub fn read_response(stream: &mut TcpStream) -> io::Result<Response> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    parse(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Splits a whole response into status, headers and body; checks the
/// body's length against `Content-Length` when there is a body.
pub fn parse(bytes: &[u8]) -> Result<Response, String> {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!("no complete response head in {text:?}"));
    };
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let mut words = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (words.next(), words.next()) else {
        return Err(format!("bad status line {status_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status = code
        .parse()
        .map_err(|_| format!("bad status line {status_line:?}"))?;
    let response = Response {
        status,
        headers: headers.to_string(),
        body: body.to_string(),
    };
    if !response.body.is_empty() {
        if let Some(length) = response.header("Content-Length") {
            let length: usize = length
                .parse()
                .map_err(|_| format!("bad Content-Length {length:?}"))?;
            if length != response.body.len() {
                return Err(format!(
                    "Content-Length {length} but a body of {} bytes",
                    response.body.len()
                ));
            }
        }
    }
    Ok(response)
}

/// The Prometheus text of one scrape, looked up sample by sample.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
}

impl Scrape {
    /// `GET /metrics` from the admin endpoint at `addr` (must answer 200).
    pub fn take(addr: &str) -> Scrape {
        let response = get(addr, "/metrics");
        assert_eq!(response.status, 200, "GET /metrics answered {response:?}");
        Scrape {
            text: response.body,
        }
    }

    /// The value of the sample written exactly `series` (a name, with its
    /// labels in braces as keyway writes them, e.g.
    /// `keyway_commands_total{command="get"}`), if present.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            // A timestamp may follow the value.
            let value = value.split_whitespace().next()?;
            Some(match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().ok()?,
            })
        })
    }

    /// Like [`Scrape::value`], panicking with the scrape when absent.
    pub fn expect(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("no sample {series} in the scrape:\n{}", self.text))
    }

    /// Every sample of metric `name` (without labels), as (the labels in
    /// braces or "", value), in the order written.
    pub fn samples(&self, name: &str) -> Vec<(String, f64)> {
        self.text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let rest = line.strip_prefix(name)?;
                let (labels, value) = if rest.starts_with('{') {
                    let end = rest.find('}')?;
                    (&rest[..=end], rest[end + 1..].trim())
                } else if rest.starts_with(' ') {
                    ("", rest.trim())
                } else {
                    return None;
                };
                let value = value.split_whitespace().next()?;
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().ok()?,
                };
                Some((labels.to_string(), value))
            })
            .collect()
    }
}

/// The value of label `name` in `{a="x",b="y"}`.
pub fn label(labels: &str, name: &str) -> String {
    let start = labels
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no label {name} in {labels}"))
        + name.len()
        + 2;
    let end = labels[start..].find('"').expect("closing quote") + start;
    labels[start..end].to_string()
}
