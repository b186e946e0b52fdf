//! The `virtio_net_hdr` that a TUN device opened with `IFF_VNET_HDR` puts in front of every
//! packet: how the kernel says "this is one 64 KiB TCP segment (or UDP train), cut it at
//! `gso_size`" and "the checksum is only partial", and how the daemon says the same back.

/// Its size without the mergeable-buffers count (`TUNSETVNETHDRSZ` default).
pub const LEN: usize = 10;

/// `flags`: the transport checksum is partial (`csum_start`, `csum_offset` say where).
pub const NEEDS_CSUM: u8 = 1;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation (USO), either IP version: datagrams of `gso_size` bytes of payload.
pub const GSO_UDP_L4: u8 = 5;
/// Set beside a type when the segments carry ECN's CWR.
pub const GSO_ECN: u8 = 0x80;

/// One header. Fields are in the host's byte order: the TUN speaks legacy virtio unless told
/// otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Splits a read into its header and packet; `None` when shorter than a header.
    pub fn parse(read: &mut [u8]) -> Option<(VnetHdr, &mut [u8])> {
        let (h, packet) = read.split_at_mut_checked(LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        let hdr = VnetHdr {
            flags: h[0],
            gso_type: h[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        };
        Some((hdr, packet))
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_is_identity_and_short_reads_are_refused() {
        let h = VnetHdr {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV6 | GSO_ECN,
            hdr_len: 60,
            gso_size: 1348,
            csum_start: 40,
            csum_offset: 16,
        };
        let mut read = h.encode().to_vec();
        read.extend_from_slice(&[1, 2, 3]);
        let (back, packet) = VnetHdr::parse(&mut read).unwrap();
        assert_eq!(back, h);
        assert_eq!(packet, &[1, 2, 3]);
        assert!(VnetHdr::parse(&mut [0u8; LEN - 1]).is_none());
    }
}
