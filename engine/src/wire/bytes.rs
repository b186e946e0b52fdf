//! Bounds-checked big-endian field access shared by the parsers.
//!
//! Every read and write goes through `get`/`get_mut`, so an offset taken from untrusted
//! input can at worst produce [`WireError::Truncated`], never a panic.

use super::WireError;

/// `buf[start..start + len]`, or `Truncated` if any part lies outside `buf`.
pub(crate) fn slice(buf: &[u8], start: usize, len: usize) -> Result<&[u8], WireError> {
    let end = start.checked_add(len).ok_or(WireError::Truncated)?;
    buf.get(start..end).ok_or(WireError::Truncated)
}

/// Mutable counterpart of [`slice`].
pub(crate) fn slice_mut(buf: &mut [u8], start: usize, len: usize) -> Result<&mut [u8], WireError> {
    let end = start.checked_add(len).ok_or(WireError::Truncated)?;
    buf.get_mut(start..end).ok_or(WireError::Truncated)
}

/// A fixed-size array copied out of `buf` at `off`.
pub(crate) fn array<const N: usize>(buf: &[u8], off: usize) -> Result<[u8; N], WireError> {
    let s = slice(buf, off, N)?;
    <[u8; N]>::try_from(s).map_err(|_| WireError::Truncated)
}

pub(crate) fn u8_at(buf: &[u8], off: usize) -> Result<u8, WireError> {
    buf.get(off).copied().ok_or(WireError::Truncated)
}

pub(crate) fn u16_at(buf: &[u8], off: usize) -> Result<u16, WireError> {
    array::<2>(buf, off).map(u16::from_be_bytes)
}

pub(crate) fn u32_at(buf: &[u8], off: usize) -> Result<u32, WireError> {
    array::<4>(buf, off).map(u32::from_be_bytes)
}

pub(crate) fn u64_at(buf: &[u8], off: usize) -> Result<u64, WireError> {
    array::<8>(buf, off).map(u64::from_be_bytes)
}

/// Writes `bytes` at `off`, or fails without touching `buf`.
pub(crate) fn put(buf: &mut [u8], off: usize, bytes: &[u8]) -> Result<(), WireError> {
    slice_mut(buf, off, bytes.len())?.copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn put_u16(buf: &mut [u8], off: usize, v: u16) -> Result<(), WireError> {
    put(buf, off, &v.to_be_bytes())
}

/// Reads fields one after another from the front of a datagram; what is left stays in `.0`.
pub(crate) struct Cursor<'a>(pub(crate) &'a [u8]);

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        array::<N>(self.take(N)?, 0)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Magic and version of an overlay's own packets; the packet type after them.
    pub(crate) fn header(&mut self, magic: u8, version: u8) -> Result<u8, WireError> {
        let m = self.u8()?;
        if m != magic {
            return Err(WireError::UnknownType(m));
        }
        if self.u8()? != version {
            return Err(WireError::BadVersion);
        }
        self.u8()
    }

    /// Nothing may be left.
    pub(crate) fn end(&self) -> Result<(), WireError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(WireError::BadLength),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(u16_at(&b, 3), Ok(0x0405));
        assert_eq!(u16_at(&b, 4), Err(WireError::Truncated));
        assert_eq!(u32_at(&b, usize::MAX), Err(WireError::Truncated));
        assert_eq!(slice(&b, usize::MAX, 2), Err(WireError::Truncated));
        assert_eq!(u8_at(&b, 5), Err(WireError::Truncated));
    }

    #[test]
    fn writes_are_bounds_checked() {
        let mut b = [0u8; 3];
        assert_eq!(put_u16(&mut b, 2, 0xabcd), Err(WireError::Truncated));
        assert_eq!(b, [0, 0, 0]);
        put_u16(&mut b, 1, 0xabcd).unwrap();
        assert_eq!(b, [0, 0xab, 0xcd]);
    }
}
