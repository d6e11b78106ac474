//! The server name (SNI) of a TLS ClientHello, read from the first record a client sends in a
//! CONNECT tunnel. Untrusted input: every length is checked against what is there.

/// What the first bytes of a tunnel are.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not (yet) a complete first TLS record: read more, up to [`MAX_RECORD`].
    Incomplete,
    /// Not TLS at all.
    NotTls,
    /// A ClientHello, with its server name if it has one.
    Tls(Option<String>),
    /// A TLS handshake record that is not one whole ClientHello (split over records, or
    /// malformed): its name cannot be checked, so it is refused on every port (a fragmented
    /// ClientHello would otherwise carry another name past the check).
    Unreadable,
}

/// A TLS record is at most 16 KiB plus its 5-byte header.
pub const MAX_RECORD: usize = 5 + 16 * 1024;

pub fn parse(buf: &[u8]) -> Hello {
    if buf.is_empty() {
        return Hello::Incomplete;
    }
    if buf[0] != 0x16 {
        return Hello::NotTls;
    }
    if buf.len() < 5 {
        return Hello::Incomplete;
    }
    if buf[1] != 0x03 {
        return Hello::NotTls;
    }
    let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return Hello::Incomplete;
    }
    match client_hello(&buf[5..5 + len]) {
        Some(sni) => Hello::Tls(sni),
        None => Hello::Unreadable,
    }
}

/// A cursor over untrusted bytes.
struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
}

/// `Some(None)`: a ClientHello without a server name; `None`: not a ClientHello (or one
/// split over several records, which real clients do not do for the first one).
fn client_hello(rec: &[u8]) -> Option<Option<String>> {
    let mut r = R(rec);
    if r.u8()? != 1 {
        return None;
    }
    let len = r.take(3)?;
    let len = (len[0] as usize) << 16 | (len[1] as usize) << 8 | len[2] as usize;
    let mut h = R(r.take(len)?);
    h.take(2 + 32)?; // version, random
    let sid = h.u8()?;
    h.take(sid)?;
    let suites = h.u16()?;
    h.take(suites)?;
    let comp = h.u8()?;
    h.take(comp)?;
    if h.0.is_empty() {
        return Some(None);
    }
    let ext_len = h.u16()?;
    let mut ext = R(h.take(ext_len)?);
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let len = ext.u16()?;
        let body = ext.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut b = R(body);
        let list = b.u16()?;
        let mut l = R(b.take(list)?);
        while !l.0.is_empty() {
            let name_type = l.u8()?;
            let n = l.u16()?;
            let name = l.take(n)?;
            if name_type == 0 {
                let s = std::str::from_utf8(name).ok()?;
                return Some(Some(s.to_ascii_lowercase()));
            }
        }
        return None;
    }
    Some(None)
}

#[cfg(test)]
pub(crate) fn hello_with_sni(name: Option<&str>) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(n) = name {
        let n = n.as_bytes();
        let mut list = vec![0u8];
        list.extend((n.len() as u16).to_be_bytes());
        list.extend(n);
        let mut body = (list.len() as u16).to_be_bytes().to_vec();
        body.extend(list);
        ext.extend(0u16.to_be_bytes());
        ext.extend((body.len() as u16).to_be_bytes());
        ext.extend(body);
    }
    let mut h = vec![3, 3];
    h.extend([7u8; 32]);
    h.push(0); // session id
    h.extend(2u16.to_be_bytes());
    h.extend([0x13, 0x01]);
    h.extend([1, 0]); // compression
    h.extend((ext.len() as u16).to_be_bytes());
    h.extend(ext);
    let mut msg = vec![1];
    msg.extend(&(h.len() as u32).to_be_bytes()[1..]);
    msg.extend(h);
    let mut rec = vec![0x16, 3, 1];
    rec.extend((msg.len() as u16).to_be_bytes());
    rec.extend(msg);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_server_name() {
        let rec = hello_with_sni(Some("Example.COM"));
        assert_eq!(parse(&rec), Hello::Tls(Some("example.com".into())));
        assert_eq!(parse(&hello_with_sni(None)), Hello::Tls(None));
        assert_eq!(parse(&rec[..rec.len() - 1]), Hello::Incomplete);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(parse(&[]), Hello::Incomplete);
    }

    #[test]
    fn lies_in_lengths_are_never_a_name() {
        let mut rec = hello_with_sni(Some("a.example"));
        // The extension list claims more than the record has.
        let n = rec.len();
        rec[n - 16] = 0xff;
        // Never a name the check would accept by mistake: unreadable (refused), or the
        // name parsed from what is really there.
        assert!(matches!(
            parse(&rec),
            Hello::Unreadable | Hello::Tls(None) | Hello::Tls(Some(_))
        ));
        assert_ne!(parse(&rec), Hello::NotTls);
        for cut in 0..rec.len() {
            let _ = parse(&rec[..cut]);
        }
    }
}

#[cfg(test)]
mod fragment_tests {
    use super::*;

    /// A handshake record holding only the start of a ClientHello (the rest would follow in
    /// a second record) is unreadable, not "not TLS".
    #[test]
    fn a_fragmented_client_hello_is_unreadable() {
        // Handshake header says 200 bytes of ClientHello, the record carries 8.
        let body = [1u8, 0, 0, 200, 3, 3, 0, 0];
        let mut rec = vec![0x16, 0x03, 0x01, 0, body.len() as u8];
        rec.extend_from_slice(&body);
        assert_eq!(parse(&rec), Hello::Unreadable);
    }
}
