//! OC-I: the overlay-independent sublayer (paper §2.2, §3). Handles for names, path
//! descriptors and their labels, the tunnels paths share, path setup through gateways, and
//! the data path.

pub(crate) mod answer;
pub(crate) mod forward;
pub(crate) mod gateway;
pub(crate) mod handles;
pub(crate) mod middlebox;
pub(crate) mod paths;
pub(crate) mod rekey;
pub(crate) mod setup;
pub(crate) mod teardown;
pub(crate) mod tunnels;
