//! DNS wire handling.
