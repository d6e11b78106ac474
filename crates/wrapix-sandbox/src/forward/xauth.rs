//! The Xauthority file format (what `xauth` reads and writes): the cookie of one display, and
//! nothing else of the user's file, for a sandbox.
//!
//! An entry is five fields, each big-endian: `family: u16`, then four length-prefixed byte
//! strings (`u16` length): address, display number, auth name, auth data.

/// `FamilyLocal`: a local connection, address = host name.
pub const FAMILY_LOCAL: u16 = 256;
/// `FamilyWild`: any address (what a sandbox with its own host name needs).
pub const FAMILY_WILD: u16 = 65535;
/// The only auth scheme Xvfb and Xorg use by default.
pub const MIT_MAGIC_COOKIE: &[u8] = b"MIT-MAGIC-COOKIE-1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub family: u16,
    pub address: Vec<u8>,
    pub number: Vec<u8>,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// Parses a whole file; `None` when it is not an Xauthority file.
pub fn parse(mut b: &[u8]) -> Option<Vec<Entry>> {
    fn u16_of(b: &mut &[u8]) -> Option<u16> {
        let (head, rest) = b.split_first_chunk::<2>()?;
        *b = rest;
        Some(u16::from_be_bytes(*head))
    }
    fn bytes_of(b: &mut &[u8]) -> Option<Vec<u8>> {
        let n = usize::from(u16_of(b)?);
        if b.len() < n {
            return None;
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Some(head.to_vec())
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        out.push(Entry {
            family: u16_of(&mut b)?,
            address: bytes_of(&mut b)?,
            number: bytes_of(&mut b)?,
            name: bytes_of(&mut b)?,
            data: bytes_of(&mut b)?,
        });
    }
    Some(out)
}

pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.family.to_be_bytes());
        for field in [&e.address, &e.number, &e.name, &e.data] {
            // Fields longer than u16 cannot come from `parse`; cut rather than corrupt.
            let n = field.len().min(usize::from(u16::MAX));
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&field[..n]);
        }
    }
    out
}

/// The entries of `display` (its number) among the local ones (a local or wildcard family),
/// rewritten as wildcard entries, so that the sandbox's own host name matches them. The
/// cookies of every other display, and of remote ones, stay out.
pub fn for_display(entries: &[Entry], display: u32) -> Vec<Entry> {
    let number = display.to_string().into_bytes();
    let mut out: Vec<Entry> = Vec::new();
    for e in entries {
        let local = e.family == FAMILY_LOCAL || e.family == FAMILY_WILD;
        if !local || e.number != number {
            continue;
        }
        let wild = Entry {
            family: FAMILY_WILD,
            address: Vec::new(),
            ..e.clone()
        };
        if !out.iter().any(|o| o.name == wild.name) {
            out.push(wild);
        }
    }
    out
}

/// One MIT-MAGIC-COOKIE-1 entry for `display`, any address.
pub fn cookie_entry(display: u32, cookie: &[u8]) -> Entry {
    Entry {
        family: FAMILY_WILD,
        address: Vec::new(),
        number: display.to_string().into_bytes(),
        name: MIT_MAGIC_COOKIE.to_vec(),
        data: cookie.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(family: u16, addr: &str, n: &str, data: &[u8]) -> Entry {
        Entry {
            family,
            address: addr.into(),
            number: n.into(),
            name: MIT_MAGIC_COOKIE.to_vec(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn round_trip_and_only_the_display_asked_for() {
        let all = vec![
            entry(FAMILY_LOCAL, "laptop", "0", b"zero"),
            entry(FAMILY_LOCAL, "laptop", "1", b"one"),
            entry(0, "\x0a\0\0\x01", "1", b"remote"),
            entry(FAMILY_WILD, "", "10", b"ten"),
        ];
        let bytes = write(&all);
        assert_eq!(parse(&bytes), Some(all.clone()));
        let one = for_display(&all, 1);
        assert_eq!(one, vec![entry(FAMILY_WILD, "", "1", b"one")]);
        assert_eq!(
            for_display(&all, 10),
            vec![entry(FAMILY_WILD, "", "10", b"ten")]
        );
        assert!(for_display(&all, 2).is_empty());
        assert_eq!(parse(&bytes[..bytes.len() - 1]), None);
    }
}
