//! Redis's glob-style matching (`stringmatchlen` in `util.c`), as ACL key
//! and channel patterns and pub/sub patterns use it: `*` any run of bytes, `?` one byte,
//! `[abc]`, `[^abc]`, `[a-z]` one byte of a class, `\x` the byte `x`.
//! Case-sensitive, no allocation, and no recursion: a `*` is the only
//! construct of variable length, so on a mismatch the match resumes one
//! byte further after the last `*` (time bounded by pattern × subject).

/// A pattern, with the shape most ACL patterns have (`*`, `app:*`, an
/// exact name) recognized once, so matching those is a comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: Box<[u8]>,
    shape: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// No special byte: the subject must equal it.
    Exact,
    /// Special bytes only in a final run of `*`: the subject must start
    /// with the bytes before it.
    Prefix(usize),
    /// Anything else.
    Glob,
}

impl Pattern {
    /// The pattern `text`.
    pub fn new(text: &[u8]) -> Pattern {
        let special = |b: &u8| matches!(b, b'*' | b'?' | b'[' | b'\\');
        let shape = match text.iter().position(special) {
            None => Shape::Exact,
            Some(at) if text[at..].iter().all(|&b| b == b'*') => Shape::Prefix(at),
            Some(_) => Shape::Glob,
        };
        Pattern {
            text: text.into(),
            shape,
        }
    }

    /// The pattern as written.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Whether `subject` matches as a whole.
    #[inline]
    pub fn matches(&self, subject: &[u8]) -> bool {
        match self.shape {
            Shape::Exact => *self.text == *subject,
            Shape::Prefix(len) => subject.starts_with(&self.text[..len]),
            Shape::Glob => matches(&self.text, subject),
        }
    }
}

/// Whether `subject` matches `pattern` as a whole.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let (mut p, mut s) = (0, 0);
    // After the last `*`: where the pattern resumes, and the subject byte
    // the star's run ends before.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, s));
            continue;
        }
        if s == subject.len() {
            return p == pattern.len();
        }
        let step = match pattern.get(p) {
            Some(_) => one(pattern, p, subject[s]),
            None => None,
        };
        match step {
            Some(next) => {
                p = next;
                s += 1;
            }
            None => match star {
                Some((resume, from)) => {
                    p = resume;
                    s = from + 1;
                    star = Some((resume, from + 1));
                }
                None => return false,
            },
        }
    }
}

/// Whether some subject starting with `prefix` matches `pattern` (e.g.
/// whether a `PSUBSCRIBE` pattern can match channels of one family). Reads
/// `prefix` through every position of the pattern it can reach; a pattern
/// with any position left may match the rest (a class that matches no
/// byte at all is not looked at: the answer errs towards yes).
pub fn may_match_with_prefix(pattern: &[u8], prefix: &[u8]) -> bool {
    let mut at = vec![0];
    for &byte in prefix {
        let mut next = Vec::new();
        for p in after_stars(pattern, at) {
            let step = match pattern.get(p) {
                None => None,
                Some(b'*') => Some(p),
                Some(_) => one(pattern, p, byte),
            };
            if let Some(n) = step.filter(|n| !next.contains(n)) {
                next.push(n);
            }
        }
        if next.is_empty() {
            return false;
        }
        at = next;
    }
    true
}

/// `positions` of `pattern`, each `*` among them also standing for the
/// position after it (the star matching nothing).
fn after_stars(pattern: &[u8], mut positions: Vec<usize>) -> Vec<usize> {
    let mut i = 0;
    while i < positions.len() {
        let p = positions[i];
        if pattern.get(p) == Some(&b'*') && !positions.contains(&(p + 1)) {
            positions.push(p + 1);
        }
        i += 1;
    }
    positions
}

/// Matches the single-byte construct at `pattern[p]` against `byte`: the
/// position after the construct when it matches.
fn one(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'[' => class(pattern, p + 1, byte),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(p + 2),
        literal => (literal == byte).then_some(p + 1),
    }
}

/// Matches a `[...]` class whose body starts at `p`: the position after its
/// `]` (or the pattern's end, as Redis treats an unclosed class) when
/// `byte` is in it.
fn class(pattern: &[u8], mut p: usize, byte: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            hit |= pattern[p + 1] == byte;
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' && pattern[p + 2] != b']' {
            let (a, b) = (pattern[p], pattern[p + 2]);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            hit |= (lo..=hi).contains(&byte);
            p += 3;
        } else {
            hit |= pattern[p] == byte;
            p += 1;
        }
    }
    let end = (p + 1).min(pattern.len());
    (hit != negate).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::{matches, may_match_with_prefix, Pattern};

    #[test]
    fn a_pattern_may_match_subjects_with_a_prefix() {
        let yes = [
            "*", "ab*", "abc", "a?c", "[a-c]b*", "**b*", "a*", "abcd", "a\\bc",
        ];
        for pattern in yes {
            assert!(
                may_match_with_prefix(pattern.as_bytes(), b"abc"),
                "{pattern}"
            );
        }
        for pattern in ["ab", "b*", "a[^b]*", "abd*", "?", "a\\*c"] {
            assert!(
                !may_match_with_prefix(pattern.as_bytes(), b"abc"),
                "{pattern}"
            );
        }
    }

    fn m(p: &str, s: &str) -> bool {
        matches(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn stars_and_literals() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("app:*", "app:1"));
        assert!(m("app:*", "app:"));
        assert!(!m("app:*", "ap"));
        assert!(!m("app:*", "cache:1"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("*:*:x", "a:b:c:x"));
        assert!(!m("abc", "abcd"));
        assert!(!m("abcd", "abc"));
        assert!(m("a**b", "ab"));
    }

    #[test]
    fn single_bytes_and_classes() {
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-c]llo", "hbllo"));
        assert!(m("h[c-a]llo", "hbllo"));
        assert!(!m("h[a-c]llo", "hdllo"));
        assert!(m("[\\]]", "]"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        // An unclosed class runs to the pattern's end.
        assert!(m("a[bc", "ab"));
    }

    #[test]
    fn shapes_match_as_the_general_matcher() {
        let subjects = ["", "app", "app:", "app:1", "xapp:1", "a*b", "cache"];
        for pattern in [
            "*", "app:*", "app:**", "app", "a\\*b", "a?p*", "[ac]*", "*:1",
        ] {
            let compiled = Pattern::new(pattern.as_bytes());
            for subject in subjects {
                assert_eq!(
                    compiled.matches(subject.as_bytes()),
                    m(pattern, subject),
                    "{pattern} {subject}"
                );
            }
        }
    }

    #[test]
    fn long_subjects_stay_linear_enough() {
        let subject = "a".repeat(10_000);
        assert!(!m("*a*a*a*a*a*b", &subject));
        assert!(m("*a*a*a*a*a*", &subject));
    }
}
