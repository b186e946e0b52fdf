//! DNS interception.
