//! The engine's only source of randomness: ChaCha20 keyed by the seed the driver passes in,
//! so the same seed gives the same path ids and query ids on every run.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

pub(crate) struct Rng(ChaCha20Rng);

impl Rng {
    pub(crate) fn new(seed: [u8; 32]) -> Rng {
        Rng(ChaCha20Rng::from_seed(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng")
    }
}
