//! The little HTTP/1.x the admin endpoint speaks: one `GET` (or `HEAD`)
//! request head per connection, bounded in size, and a whole response
//! with `Connection: close`. Pure: the server feeds it bytes.

/// The longest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// A request head, as far as the endpoint cares.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `HEAD` asks for the headers only.
    pub head_only: bool,
    /// The path, without any `?query`.
    pub path: &'a str,
}

/// Why a request head is refused, with its status.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not an HTTP/1.x request line.
    BadRequest,
    /// 405: a method other than `GET` or `HEAD`.
    MethodNotAllowed,
    /// 431: the head passed [`MAX_HEAD`] bytes.
    TooLarge,
}

impl Refusal {
    /// The response for it.
    pub fn response(&self) -> Vec<u8> {
        match self {
            Refusal::BadRequest => response(400, "Bad Request", TEXT, b"bad request\n", false),
            Refusal::MethodNotAllowed => response(
                405,
                "Method Not Allowed",
                TEXT,
                b"only GET and HEAD are served\n",
                false,
            ),
            Refusal::TooLarge => response(
                431,
                "Request Header Fields Too Large",
                TEXT,
                b"request head too large\n",
                false,
            ),
        }
    }
}

/// Plain text.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The request in `buf` once its head is complete (`Ok(None)`: read more).
pub fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, Refusal> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        // Some clients end lines with a bare LF.
        if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            return request_line(&buf[..end]).map(Some);
        }
        return if buf.len() > MAX_HEAD {
            Err(Refusal::TooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(Refusal::TooLarge);
    }
    request_line(&buf[..end]).map(Some)
}

fn request_line(head: &[u8]) -> Result<Request<'_>, Refusal> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| Refusal::BadRequest)?;
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(Refusal::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Refusal::MethodNotAllowed),
    };
    let path = target.split('?').next().unwrap_or(target);
    Ok(Request { head_only, path })
}

/// A whole response: status line, headers and (unless `head_only`) body.
pub fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_or_head_head_gives_its_path() {
        let get = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(
            get,
            Some(Request {
                head_only: false,
                path: "/metrics"
            })
        );
        let head = parse(b"HEAD /health/ready HTTP/1.0\n\n").unwrap().unwrap();
        assert!(head.head_only);
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost:"), Ok(None));
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\n\r\n"),
            Err(Refusal::MethodNotAllowed)
        );
        assert_eq!(parse(b"GET /\r\n\r\n"), Err(Refusal::BadRequest));
        assert_eq!(parse(b"GET x HTTP/1.1\r\n\r\n"), Err(Refusal::BadRequest));
        assert_eq!(parse(b"\x16\x03\x01\r\n\r\n"), Err(Refusal::BadRequest));
        let long = vec![b'a'; MAX_HEAD + 1];
        assert_eq!(parse(&long), Err(Refusal::TooLarge));
        assert!(String::from_utf8(Refusal::TooLarge.response())
            .unwrap()
            .starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn a_response_has_its_length_and_closes() {
        let text = String::from_utf8(response(200, "OK", TEXT, b"ok\n", false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 3\r\nConnection: close\r\n\r\nok\n"));
        let head = response(200, "OK", TEXT, b"ok\n", true);
        assert!(String::from_utf8(head).unwrap().ends_with("\r\n\r\n"));
    }
}
