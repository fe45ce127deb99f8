//! The two facts keyway reads from an X.509 certificate itself: when it
//! expires (`notAfter`, for `keyway_tls_certificate_expiry_seconds`) and
//! its subject's common name (`tls.user_from_cert = "cn"`). rustls checks
//! certificates; it does not hand these out, and a DER walk to two fields
//! is smaller than a general certificate parser.
//!
//! The path (RFC 5280): `Certificate ::= SEQUENCE { tbsCertificate, ... }`,
//! `TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber,
//! signature, issuer, validity, subject, ... }`,
//! `Validity ::= SEQUENCE { notBefore, notAfter }`.

/// DER tags on the path.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;
/// `id-at-commonName` (2.5.4.3), encoded.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// When the certificate stops being valid, in seconds since the Unix
/// epoch; `None` when `der` is not a certificate keyway can read.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let tbs = tbs_fields(der)?;
    let mut validity = Der(tbs.validity);
    validity.next()?;
    let (tag, time) = validity.next()?;
    parse_time(tag, time)
}

/// The subject's common name (the last one, when there are several, as
/// OpenSSL's `-subject` prints last); `None` without one.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    let tbs = tbs_fields(der)?;
    let mut found = None;
    for (tag, rdn) in Der(tbs.subject) {
        if tag != SET {
            return None;
        }
        for (tag, pair) in Der(rdn) {
            if tag != SEQUENCE {
                return None;
            }
            let mut pair = Der(pair);
            let (OID, oid) = pair.next()? else {
                return None;
            };
            let (_, value) = pair.next()?;
            if oid == COMMON_NAME {
                found = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    found
}

/// The contents of the fields keyway reads.
struct TbsFields<'a> {
    validity: &'a [u8],
    subject: &'a [u8],
}

fn tbs_fields(der: &[u8]) -> Option<TbsFields<'_>> {
    let (SEQUENCE, certificate) = Der(der).next()? else {
        return None;
    };
    let (SEQUENCE, tbs) = Der(certificate).next()? else {
        return None;
    };
    let mut fields = Der(tbs);
    let (first, _) = fields.next()?;
    if first == VERSION {
        fields.next()?; // serialNumber, after the version
    }
    fields.next()?; // signature
    fields.next()?; // issuer
    let (SEQUENCE, validity) = fields.next()? else {
        return None;
    };
    let (SEQUENCE, subject) = fields.next()? else {
        return None;
    };
    Some(TbsFields { validity, subject })
}

/// The elements of a DER encoding, one `(tag, contents)` at a time.
struct Der<'a>(&'a [u8]);

impl<'a> Iterator for Der<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let octets = usize::from(first & 0x7f);
            if octets == 0 || octets > 4 || rest.len() < octets {
                return None;
            }
            let len = rest[..octets]
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b));
            (len, &rest[octets..])
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, contents))
    }
}

/// `UTCTime` (`YYMMDDHHMMSSZ`, years 1950–2049) or `GeneralizedTime`
/// (`YYYYMMDDHHMMSSZ`), as DER requires them: UTC, with seconds.
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 13 => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 15 => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_to_unix_seconds() {
        assert_eq!(parse_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20261204101500Z"),
            Some(1_796_379_300)
        );
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20000229000000Z"),
            Some(951_782_400)
        );
        assert_eq!(parse_time(UTC_TIME, b"700101000000+0100"), None);
        assert_eq!(parse_time(UTC_TIME, b"7001010000Z"), None);
    }

    #[test]
    fn expiry_and_common_name_of_a_real_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "keyway");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-09T00:00:00Z, as `date -d 2031-07-09Z +%s` says.
        assert_eq!(not_after(cert.der()), Some(1_941_321_600));
        assert_eq!(subject_common_name(cert.der()).as_deref(), Some("alice"));

        let mut nameless = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        nameless.distinguished_name = rcgen::DistinguishedName::new();
        let cert = nameless.self_signed(&key).unwrap();
        assert_eq!(subject_common_name(cert.der()), None);
        assert!(not_after(cert.der()).is_some());
    }

    #[test]
    fn long_lengths_and_truncated_input() {
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat(7).take(256));
        let (tag, contents) = Der(&long).next().unwrap();
        assert_eq!((tag, contents.len()), (0x04, 256));
        assert!(Der(&long[..100]).next().is_none());
        assert_eq!(not_after(b"\x30\x03\x02\x01"), None);
        assert_eq!(subject_common_name(&[]), None);
    }
}
