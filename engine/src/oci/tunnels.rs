//! OC-I's view of tunnels (paper §2.2): one overlay hop, owned by an overlay module, shared by
//! every path that crosses it. Found by the hop's name element when setting up — so one name
//! with different options is a different tunnel (§3.3) — and by the module's own descriptor
//! when datagrams arrive. OC-I owns the reference count: it closes the module's tunnel once
//! no path uses it.

use crate::api::OverlayId;
use crate::last_lookup::LastLookup;
use crate::ocd::TunnelRef;
use slab::Slab;
use std::collections::BTreeMap;

#[derive(Debug)]
pub(crate) struct Tunnel {
    pub(crate) overlay: OverlayId,
    pub(crate) module_ref: TunnelRef,
    /// Name elements that lead here (none for tunnels peers opened to us).
    pub(crate) elements: Vec<String>,
    /// The module reported it usable.
    pub(crate) up: bool,
    /// Paths using it.
    pub(crate) paths: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Tunnels {
    slab: Slab<Tunnel>,
    by_element: BTreeMap<(OverlayId, String), usize>,
    by_module: BTreeMap<(OverlayId, TunnelRef), usize>,
    /// `by_module`'s last answer, asked for every datagram. Forgotten when a tunnel goes
    /// (registering one only adds a descriptor no answer was for).
    last: LastLookup<(OverlayId, TunnelRef), usize>,
    /// Bumped by every registration and removal (`Engine::check_tables_since`).
    version: u64,
}

impl Tunnels {
    pub(crate) fn by_element(&self, overlay: OverlayId, element: &str) -> Option<usize> {
        self.by_element
            .get(&(overlay, element.to_string()))
            .copied()
    }

    pub(crate) fn by_module(&self, overlay: OverlayId, module_ref: TunnelRef) -> Option<usize> {
        let key = (overlay, module_ref);
        self.last.get(key, || self.by_module.get(&key).copied())
    }

    /// The tunnel for a module descriptor, registered now if new; `element` (if any) is
    /// remembered as leading to it.
    pub(crate) fn register(
        &mut self,
        overlay: OverlayId,
        module_ref: TunnelRef,
        element: Option<&str>,
        up: bool,
    ) -> usize {
        let key = match self.by_module(overlay, module_ref) {
            Some(key) => key,
            None => {
                self.version += 1;
                let key = self.slab.insert(Tunnel {
                    overlay,
                    module_ref,
                    elements: Vec::new(),
                    up,
                    paths: 0,
                });
                self.by_module.insert((overlay, module_ref), key);
                key
            }
        };
        if let Some(e) = element {
            let entry = (overlay, e.to_string());
            if !self.by_element.contains_key(&entry) {
                if let Some(t) = self.slab.get_mut(key) {
                    t.elements.push(e.to_string());
                }
                self.by_element.insert(entry, key);
            }
        }
        key
    }

    /// Changes with every registration and removal.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn get(&self, key: usize) -> Option<&Tunnel> {
        self.slab.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut Tunnel> {
        self.slab.get_mut(key)
    }

    /// Forgets a tunnel; the caller closes the module's side.
    pub(crate) fn remove(&mut self, key: usize) -> Option<Tunnel> {
        let t = self.slab.try_remove(key)?;
        self.version += 1;
        for e in &t.elements {
            self.by_element.remove(&(t.overlay, e.clone()));
        }
        self.by_module.remove(&(t.overlay, t.module_ref));
        self.last.forget();
        Some(t)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Tunnel)> {
        self.slab.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_descriptor_names_the_tunnel_it_has_now() {
        let mut t = Tunnels::default();
        let udp = OverlayId(0);
        let first = t.register(udp, 5, None, true);
        assert_eq!(t.by_module(udp, 5), Some(first));
        assert_eq!(
            t.by_module(udp, 5),
            Some(first),
            "again, from the last lookup"
        );
        assert_eq!(
            t.by_module(OverlayId(1), 5),
            None,
            "another overlay's descriptor"
        );
        t.remove(first);
        assert_eq!(t.by_module(udp, 5), None, "forgotten with the tunnel");
        let other = t.register(udp, 6, None, true);
        let again = t.register(udp, 5, None, true);
        assert_eq!(
            (t.by_module(udp, 6), t.by_module(udp, 5)),
            (Some(other), Some(again))
        );
    }
}
