//! Configuration rules that rewrite names before parsing (paper §3.3).
//!
//! Some applications interpret the name they look up (a browser puts it in the `Host:`
//! header), so `cnn.com.ip_legacygateway.i3` breaks them; and typing the same options for
//! every name is tedious. A rule such as `^(.*)\.company1\.com$ => $0_gw1.i3` lets the app
//! keep asking for `www.company1.com` while we set up the path the rule names.

use std::borrow::Cow;
use std::fmt;

use regex::Regex;

/// A rule that could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// Position of the rule in the list given to [`Rules::new`].
    pub index: usize,
    /// What is wrong with it (for invalid patterns, the regex crate's message).
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}: {}", self.index, self.message)
    }
}

impl std::error::Error for RuleError {}

/// An ordered list of rewrite rules; the first matching rule wins.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    pattern: Regex,
    /// The replacement with every group reference in `${...}` form (see [`normalize`]).
    replacement: String,
}

impl Rules {
    /// Compiles `(pattern, replacement)` pairs. Patterns match case-insensitively, since DNS
    /// names do. Replacements use the regex crate's syntax (`$0`, `$1`, `${name}`, `$$`); a
    /// reference to a group the pattern does not have is an error rather than silently
    /// becoming empty text.
    pub fn new(rules: &[(String, String)]) -> Result<Rules, RuleError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, (pattern, replacement)) in rules.iter().enumerate() {
            let pattern = Regex::new(&format!("(?i){pattern}")).map_err(|e| RuleError {
                index,
                message: e.to_string(),
            })?;
            let replacement =
                normalize(&pattern, replacement).map_err(|message| RuleError { index, message })?;
            compiled.push(Rule {
                pattern,
                replacement,
            });
        }
        Ok(Rules { rules: compiled })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rewrites `name` (without trailing dot) with the first rule whose pattern matches it,
    /// replacing that pattern's first match. Applied once: the result is not fed back, so a
    /// rule whose output still matches cannot loop.
    pub fn apply<'a>(&self, name: &'a str) -> Cow<'a, str> {
        for rule in &self.rules {
            if rule.pattern.is_match(name) {
                return rule.pattern.replace(name, rule.replacement.as_str());
            }
        }
        Cow::Borrowed(name)
    }
}

/// Rewrites every group reference to the braced form and checks that the group exists.
///
/// The regex crate reads `$name` greedily over `[_0-9A-Za-z]`, so the natural rule
/// `$0_gw1.i3` would look up a group called `0_gw1`, find none and substitute nothing.
/// No group name can start with a digit, so reading a leading run of digits as a group
/// number (`${0}_gw1.i3`) is the only sensible meaning.
fn normalize(pattern: &Regex, replacement: &str) -> Result<String, String> {
    let mut out = String::with_capacity(replacement.len() + 8);
    let mut rest = replacement;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
            continue;
        }
        let (group, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.split_once('}') {
                Some((group, tail)) if !group.is_empty() => (group, tail),
                // An unclosed or empty brace is literal text to the regex crate too.
                _ => ("", after),
            }
        } else {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let len = if digits > 0 {
                digits
            } else {
                after
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count()
            };
            after.split_at(len)
        };
        if group.is_empty() {
            out.push_str("$$");
            rest = tail;
            continue;
        }
        check_group(pattern, group)?;
        out.push_str("${");
        out.push_str(group);
        out.push('}');
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `group` (a number or a name) is a capture group of `pattern`.
fn check_group(pattern: &Regex, group: &str) -> Result<(), String> {
    let exists = match group.parse::<usize>() {
        Ok(index) => index < pattern.captures_len(),
        Err(_) => pattern.capture_names().flatten().any(|n| n == group),
    };
    if exists {
        Ok(())
    } else {
        Err(format!("replacement refers to unknown group '{group}'"))
    }
}

#[cfg(test)]
mod tests;
