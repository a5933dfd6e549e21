//! Session ids as the engine keeps them for sessions that left memory.

/// A session id held without a heap allocation of its own when it is short
/// (Claude Code's are 36-byte UUIDs). Evicted and finished sessions keep
/// their ids while the memory around them is freed, and one small
/// allocation left in a freed region keeps its whole page resident.
#[derive(Clone)]
pub(crate) enum Sid {
    Inline(u8, [u8; SID_INLINE]),
    Heap(Box<str>),
}

const SID_INLINE: usize = 47;

impl Sid {
    pub(crate) fn new(s: &str) -> Sid {
        if s.len() <= SID_INLINE {
            let mut b = [0u8; SID_INLINE];
            b[..s.len()].copy_from_slice(s.as_bytes());
            Sid::Inline(s.len() as u8, b)
        } else {
            Sid::Heap(s.into())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a str, cut at its length.
            Sid::Inline(n, b) => std::str::from_utf8(&b[..*n as usize]).unwrap_or_default(),
            Sid::Heap(s) => s,
        }
    }
}

impl std::hash::Hash for Sid {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl PartialEq for Sid {
    fn eq(&self, other: &Sid) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Sid {}

impl std::borrow::Borrow<str> for Sid {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}
