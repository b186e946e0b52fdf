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
