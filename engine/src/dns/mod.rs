//! DNS interception: the overlay name grammar, configuration rules that rewrite names, and
//! the DNS wire handling the engine uses to answer applications itself (DESIGN §4–§5).

pub mod names;
pub mod rules;
pub mod message;

pub use names::{parse_name, split_options, Hop, NameError, OverlayName, Security};
