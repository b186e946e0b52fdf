//! DNS interception: the overlay name grammar, configuration rules that rewrite names, and
//! the DNS wire handling the engine uses to answer applications itself (DESIGN §4–§5).
//!
//! The order of use for an application's query: [`parse_query`], then [`Rules::apply`] to
//! the name, then [`parse_name`]; `Ok(None)` sends the original datagram upstream
//! unchanged, an error becomes NXDOMAIN with the error's text as Extended DNS Error.

mod explain;
pub(crate) mod intercept;
pub mod message;
pub mod names;
pub mod rules;
pub mod trace;

pub use message::{parse_query, ErrorCode, Query, QueryError};
pub use names::{parse_name, split_options, Hop, NameError, OverlayName, Security};
pub use rules::{RuleError, Rules};
