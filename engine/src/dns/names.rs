//! The overlay name grammar (DESIGN §4, paper §3.1–3.3).
//!
//! ```text
//! qname   = element *("_" element)      ; at most 253 characters, at most 8 elements
//! element = prefix "." suffix           ; suffix = the element's last label
//! ```
//!
//! Applications can only tell us where their traffic should go through the name they look
//! up, so the name carries the whole path: hops separated by `_`, **destination first and
//! first hop last** (`foo.ron_bar.i3` = over i3 to gateway `bar`, then over RON to `foo`,
//! paper §3.2.1), plus path-wide options in `*.oci` elements that may stand anywhere.
//!
//! The paper's later example `bar.shortcut.i3_foo.mindelay.ron_encrypt.oci` lists its hops
//! the other way round; we follow the rule of §3.2.1 consistently, so that name means
//! "over RON (`mindelay`) to `foo`, then over i3 (`shortcut`) to `bar`".

use std::borrow::Cow;
use std::fmt;

use arrayvec::ArrayString;

/// Longest name we accept, in characters, without the trailing dot (RFC 1035's 255 octets
/// on the wire minus the length bytes of the first label and the root).
pub const MAX_NAME_LEN: usize = 253;
/// Most elements (hops plus option elements) one name may carry; bounds the path length a
/// single lookup can make us and every gateway along the way set up.
pub const MAX_ELEMENTS: usize = 8;
/// Longest DNS label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// The suffix of option elements, which belong to the OC-I layer rather than an overlay.
pub const OPTION_SUFFIX: &str = "oci";

/// Path-wide security level requested with an `*.oci` option (paper §3.3, §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Security {
    /// `encrypt.oci`: authenticated and encrypted end to end.
    Encrypt,
    /// `auth.oci`: authenticated end to end, payload in the clear.
    Auth,
    /// `plain.oci`: neither.
    Plain,
}

impl Security {
    /// The option label as written in a name (`encrypt`, `auth`, `plain`).
    pub fn option(self) -> &'static str {
        match self {
            Security::Encrypt => "encrypt",
            Security::Auth => "auth",
            Security::Plain => "plain",
        }
    }

    /// The whole option element (`encrypt.oci`).
    pub fn element(self) -> &'static str {
        match self {
            Security::Encrypt => "encrypt.oci",
            Security::Auth => "auth.oci",
            Security::Plain => "plain.oci",
        }
    }

    /// The level named by an option element's prefix (lowercase), if it is one.
    pub fn from_option(prefix: &str) -> Option<Security> {
        match prefix {
            "encrypt" => Some(Security::Encrypt),
            "auth" => Some(Security::Auth),
            "plain" => Some(Security::Plain),
            _ => None,
        }
    }
}

/// One overlay hop: `prefix.overlay`. The overlay module named by `overlay` interprets the
/// prefix (host name plus its own option labels, see [`split_options`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hop {
    /// Everything before the last label, e.g. `foo.delay50ms` or `cnn.com.ip`.
    pub prefix: String,
    /// The last label, selecting the overlay module, e.g. `overqos`.
    pub overlay: String,
}

impl Hop {
    /// The hop as written in a name: `prefix.overlay`.
    pub fn element(&self) -> String {
        let mut s = String::with_capacity(self.prefix.len() + 1 + self.overlay.len());
        s.push_str(&self.prefix);
        s.push('.');
        s.push_str(&self.overlay);
        s
    }
}

/// A parsed overlay name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OverlayName {
    /// The name as asked, lowercased, without a trailing dot. One canonical name is one path;
    /// the question is still echoed to the application exactly as asked.
    pub canonical: String,
    /// The hops, destination first, first hop last. Never empty.
    pub hops: Vec<Hop>,
    /// The path-wide security option, if the name carried one.
    pub security: Option<Security>,
}

impl OverlayName {
    /// The hop this node sets up itself: the last one written.
    pub fn first_hop(&self) -> &Hop {
        // `parse_name` never builds an `OverlayName` without hops; the fallback only keeps a
        // hand-built value from panicking.
        static EMPTY: Hop = Hop {
            prefix: String::new(),
            overlay: String::new(),
        };
        self.hops.last().unwrap_or(&EMPTY)
    }

    /// The name the first-hop gateway must set up next: the other hops, destination first,
    /// then the option element. Empty when the first hop is the destination.
    pub fn remaining(&self) -> String {
        let rest = match self.hops.split_last() {
            Some((_, rest)) if !rest.is_empty() => rest,
            _ => return String::new(),
        };
        let mut out = String::new();
        for (i, hop) in rest.iter().enumerate() {
            if i > 0 {
                out.push('_');
            }
            out.push_str(&hop.prefix);
            out.push('.');
            out.push_str(&hop.overlay);
        }
        if let Some(security) = self.security {
            out.push('_');
            out.push_str(security.element());
        }
        out
    }
}

/// A short, copyable excerpt of the offending text, so that [`NameError`] stays `Copy` and
/// can still say *what* was wrong.
pub type Snippet = ArrayString<64>;

/// Why a name that addresses a configured overlay is not a valid overlay name. The
/// `Display` texts are meant for Extended DNS Error EXTRA-TEXT (RFC 8914), so a user running
/// `dig` sees why the name failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// More than [`MAX_NAME_LEN`] characters.
    TooLong { len: usize },
    /// More than [`MAX_ELEMENTS`] elements (hops and options together).
    TooManyElements { count: usize },
    /// Two adjacent `_`, or a `_` at either end.
    EmptyElement,
    /// Two adjacent dots, or a dot at the start or end of an element.
    EmptyLabel,
    /// A label longer than [`MAX_LABEL_LEN`].
    LabelTooLong { len: usize },
    /// Something other than a letter, digit, `-` or `.`.
    InvalidCharacter { ch: char },
    /// An element without a dot, hence without an overlay suffix.
    NoSuffix { element: Snippet },
    /// An `*.oci` element we do not know (the snippet is its prefix).
    UnknownOption { option: Snippet },
    /// Two different security options.
    ConflictingOptions { first: Security, second: Security },
    /// Only option elements, no hop.
    NoHop,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::TooLong { len } => {
                write!(f, "name too long: {len} > {MAX_NAME_LEN} characters")
            }
            NameError::TooManyElements { count } => {
                write!(f, "too many elements: {count} > {MAX_ELEMENTS}")
            }
            NameError::EmptyElement => f.write_str("empty element"),
            NameError::EmptyLabel => f.write_str("empty label"),
            NameError::LabelTooLong { len } => {
                write!(f, "label too long: {len} > {MAX_LABEL_LEN} characters")
            }
            NameError::InvalidCharacter { ch } => write!(f, "invalid character {ch:?}"),
            NameError::NoSuffix { element } => {
                write!(f, "element '{element}' has no overlay suffix")
            }
            NameError::UnknownOption { option } => {
                write!(f, "unknown option '{option}.{OPTION_SUFFIX}'")
            }
            NameError::ConflictingOptions { first, second } => write!(
                f,
                "conflicting options '{}' and '{}'",
                first.element(),
                second.element()
            ),
            NameError::NoHop => f.write_str("no hop in name"),
        }
    }
}

impl std::error::Error for NameError {}

/// Parses `qname` as an overlay name.
///
/// `first_hop_known` says whether a (lowercase) suffix is an overlay configured on this
/// node. Only the first hop — the last element that is not an option — decides whether the
/// name is ours: only this node's first hop must be understood here, later hops are the
/// gateways' business (DESIGN §4). Returns `Ok(None)` for every other name (`example.com`,
/// `localhost`, `_dmarc.example.com`), which then goes upstream untouched, and reports
/// grammar errors only for names that are ours.
pub fn parse_name(
    qname: &str,
    first_hop_known: impl Fn(&str) -> bool,
) -> Result<Option<OverlayName>, NameError> {
    let name = qname.strip_suffix('.').unwrap_or(qname);

    // Classify before validating, without allocating: most names an app asks for are not
    // overlay names and must not be judged by our grammar.
    let Some(first_hop) = name.rsplit('_').find(|e| !is_option_element(e)) else {
        return Err(NameError::NoHop);
    };
    let Some((_, suffix)) = first_hop.rsplit_once('.') else {
        return Ok(None);
    };
    let suffix = lowercase(suffix);
    if !first_hop_known(&suffix) {
        return Ok(None);
    }

    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    let canonical = name.to_ascii_lowercase();
    let count = canonical.split('_').count();
    if count > MAX_ELEMENTS {
        return Err(NameError::TooManyElements { count });
    }

    let mut hops = Vec::with_capacity(count);
    let mut security: Option<Security> = None;
    for element in canonical.split('_') {
        let (prefix, suffix) = check_element(element)?;
        if suffix != OPTION_SUFFIX {
            hops.push(Hop {
                prefix: prefix.to_owned(),
                overlay: suffix.to_owned(),
            });
            continue;
        }
        let level = Security::from_option(prefix).ok_or(NameError::UnknownOption {
            option: snippet(prefix),
        })?;
        match security {
            Some(first) if first != level => {
                return Err(NameError::ConflictingOptions {
                    first,
                    second: level,
                })
            }
            _ => security = Some(level),
        }
    }
    if hops.is_empty() {
        return Err(NameError::NoHop);
    }
    Ok(Some(OverlayName {
        canonical,
        hops,
        security,
    }))
}

/// Splits option labels off the right end of a hop's prefix: `bar.shortcut` with
/// `shortcut` an option gives host `bar` and options `["shortcut"]` (in written order).
///
/// Overlay modules own their option vocabulary (paper §3.3); this is the shared mechanics.
/// The host never becomes empty, so `shortcut.i3` names the host `shortcut`.
pub fn split_options(prefix: &str, is_option: impl Fn(&str) -> bool) -> (&str, Vec<&str>) {
    let mut host = prefix;
    let mut options = Vec::new();
    while let Some((rest, label)) = host.rsplit_once('.') {
        if rest.is_empty() || !is_option(label) {
            break;
        }
        options.push(label);
        host = rest;
    }
    options.reverse();
    (host, options)
}

/// Whether an element is an `*.oci` option element (case-insensitive, must have a prefix).
fn is_option_element(element: &str) -> bool {
    element
        .rsplit_once('.')
        .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case(OPTION_SUFFIX))
}

/// Validates one lowercase element and splits it into prefix and suffix.
fn check_element(element: &str) -> Result<(&str, &str), NameError> {
    if element.is_empty() {
        return Err(NameError::EmptyElement);
    }
    if let Some(ch) = element
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(NameError::InvalidCharacter { ch });
    }
    for label in element.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong { len: label.len() });
        }
    }
    element.rsplit_once('.').ok_or(NameError::NoSuffix {
        element: snippet(element),
    })
}

/// Lowercases without allocating when the text is already lowercase (the common case).
fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Copies at most 60 bytes of `s` (on a character boundary), marking a cut with `...`.
fn snippet(s: &str) -> Snippet {
    let mut out = Snippet::new();
    let mut cut = false;
    for ch in s.chars() {
        if out.len() + ch.len_utf8() > 60 {
            cut = true;
            break;
        }
        out.push(ch);
    }
    if cut {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;
