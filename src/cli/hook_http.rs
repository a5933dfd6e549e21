//! The hook's HTTP/1.1 client: one POST at a time over a kept-alive
//! connection, plain TCP for `http://`, rustls for `https://`.
//!
//! Written on `std` rather than taken from an HTTP crate because the hook
//! runs on every tool call and its cost is mostly process start-up: every
//! pointer in the binary's data is relocated before `main`, so each crate
//! linked in costs time on every call whether it is used or not (see
//! BENCHMARKS.md, "`ccotel hook` end to end"). The client needs a tiny part
//! of HTTP: `Content-Length` requests, and replies framed by
//! `Content-Length`, chunked encoding or the end of the connection.
//!
//! Each phase (connect, TLS handshake, write, read) may take the time left
//! until the deadline, through socket timeouts; the caller's watchdog is
//! what bounds the whole call. DNS names resolve through the system
//! resolver, which no timeout bounds (the watchdog does); IP literals, as in
//! the default endpoint, skip it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest reply head (status line and headers) we accept.
const MAX_HEAD: usize = 64 * 1024;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    tls: bool,
    /// Host name or IP address, without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    /// Path and query, at least `/`.
    target: String,
}

impl Url {
    /// Parses `url`. `None` for anything but a plain `http(s)://host[:port]
    /// [/path][?query]` URL that can go on a request line unchanged.
    pub fn parse(url: &str) -> Option<Url> {
        let (scheme, rest) = url.split_once("://")?;
        let tls = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return None;
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        // Credentials in the URL are not supported (the token is the way).
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']')?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None if tls => 443,
            None => 80,
        };
        let target = match target {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if host.is_empty() || !printable(host) || !printable(&target) {
            return None;
        }
        Some(Url {
            tls,
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            target,
        })
    }
}

/// A POST-only HTTP/1.1 client for one URL, which keeps its connection
/// alive between calls so that draining a spool costs one connect.
pub struct Client {
    url: Option<Url>,
    user_agent: String,
    conn: Option<BufReader<Stream>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// PEM certificates trusted besides the public roots.
    ca_cert: Option<PathBuf>,
}

impl Client {
    /// A client for `url`. An unusable URL makes every [`Client::post`]
    /// fail, which the hook treats like a bridge that is down.
    pub fn new(url: &str, user_agent: String) -> Client {
        Client {
            url: Url::parse(url),
            user_agent,
            conn: None,
            tls: None,
            ca_cert: None,
        }
    }

    /// Also trusts the certificates in PEM file `ca_cert`, for a server
    /// whose certificate a private CA signed. A file that cannot be read
    /// fails every `https://` request, like an unknown certificate would.
    pub fn trusting(mut self, ca_cert: Option<&Path>) -> Client {
        self.ca_cert = ca_cert.map(Path::to_path_buf);
        self
    }

    /// POSTs `body` with `headers` (names and values already valid; see
    /// [`valid_header_value`]) and reads the whole reply, giving up at
    /// `deadline`. Returns the status code.
    pub fn post(
        &mut self,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> io::Result<u16> {
        let url = self.url.clone().ok_or_else(|| invalid("unusable URL"))?;
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => BufReader::new(self.connect(&url, deadline)?),
        };
        let mut request = Vec::with_capacity(256 + body.len());
        write!(
            request,
            "POST {} HTTP/1.1\r\nhost: {}\r\nuser-agent: {}\r\ncontent-length: {}\r\n",
            url.target,
            url.authority,
            self.user_agent,
            body.len()
        )?;
        for (name, value) in headers {
            write!(request, "{name}: {value}\r\n")?;
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        conn.get_mut().set_write_timeout(Some(left(deadline)?))?;
        conn.get_mut().write_all(&request)?;
        conn.get_mut().flush()?;
        let (status, reusable) = read_reply(&mut conn, deadline)?;
        if reusable {
            self.conn = Some(conn);
        }
        Ok(status)
    }

    fn connect(&mut self, url: &Url, deadline: Instant) -> io::Result<Stream> {
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, left(deadline)?) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or(last)?;
        // Head and body go out in one write; nothing to wait for.
        tcp.set_nodelay(true)?;
        if !url.tls {
            return Ok(Stream::Plain(tcp));
        }
        let config = match &self.tls {
            Some(c) => c.clone(),
            None => {
                let c = tls_config(self.ca_cert.as_deref())?;
                self.tls = Some(c.clone());
                c
            }
        };
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|_| invalid("bad TLS server name"))?;
        let session = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
            session, tcp,
        ))))
    }
}

/// Whether a header value can go on the wire as is: no control characters,
/// so a token from the environment cannot inject headers.
pub fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// TLS as ureq set it up before this client: rustls with ring, the Mozilla
/// roots of `webpki-roots`, TLS 1.2 and 1.3; and the certificates of
/// `ca_cert`, when given.
fn tls_config(ca_cert: Option<&Path>) -> io::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_cert {
        add_ca_certs(&mut roots, path)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Adds the certificates of PEM file `path` (`--ca-cert`) to `roots`,
/// and returns how many: at least one, or an error that names the file.
/// `ccotel doctor` checks the file with it too.
pub fn add_ca_certs(roots: &mut rustls::RootCertStore, path: &Path) -> io::Result<usize> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let bad = |e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--ca-cert {}: {e}", path.display()),
        )
    };
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        added += 1;
    }
    if added == 0 {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(added)
}

/// Time left until `deadline`, as a socket timeout (which must not be zero).
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(t)
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        // A TLS read may also write (the handshake), and the other way round.
        self.tcp().set_read_timeout(t)?;
        self.tcp().set_write_timeout(t)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// How a reply body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Reads one reply, skipping interim (1xx) ones, and its body, which is
/// read to keep the connection usable and then dropped: the hook needs only
/// the status. Returns the status and whether the connection can carry
/// another request.
fn read_reply(conn: &mut BufReader<Stream>, deadline: Instant) -> io::Result<(u16, bool)> {
    conn.get_ref().set_read_timeout(Some(left(deadline)?))?;
    let mut budget = MAX_HEAD;
    loop {
        let line = read_line(conn, &mut budget)?;
        let mut words = line.split(' ');
        let version = words.next().unwrap_or_default();
        let status: u16 = words
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..=999).contains(s))
            .ok_or_else(|| invalid("bad status line"))?;
        let mut keep_alive = version == "HTTP/1.1";
        if !keep_alive && version != "HTTP/1.0" {
            return Err(invalid("not HTTP/1.x"));
        }
        let mut length: Option<u64> = None;
        let mut chunked = false;
        loop {
            let line = read_line(conn, &mut budget)?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid("bad header line"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n = value.parse().map_err(|_| invalid("bad content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(invalid("conflicting content-length"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
                if !chunked {
                    keep_alive = false;
                }
            } else if name.eq_ignore_ascii_case("connection") {
                let has = |word: &str| {
                    value
                        .split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case(word))
                };
                if has("close") {
                    keep_alive = false;
                } else if has("keep-alive") && version == "HTTP/1.0" {
                    keep_alive = true;
                }
            }
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = if status == 204 || status == 304 || status == 101 {
            Framing::None
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        // The status decides the event's fate; a body that fails to arrive
        // only makes the connection unusable.
        let complete = skip_body(conn, framing, &mut budget).unwrap_or(false);
        return Ok((status, keep_alive && complete && status != 101));
    }
}

/// Reads and drops a body. Returns false if it was larger than we read (so
/// the connection cannot be reused) or ran to the end of the connection.
fn skip_body(
    conn: &mut BufReader<Stream>,
    framing: Framing,
    budget: &mut usize,
) -> io::Result<bool> {
    match framing {
        Framing::None => Ok(true),
        Framing::Length(n) => {
            if n > super::hook::MAX_REPLY {
                return Ok(false);
            }
            let copied = io::copy(&mut conn.by_ref().take(n), &mut io::sink())?;
            Ok(copied == n)
        }
        Framing::UntilClose => {
            io::copy(
                &mut conn.by_ref().take(super::hook::MAX_REPLY),
                &mut io::sink(),
            )?;
            Ok(false)
        }
        Framing::Chunked => {
            let mut total = 0u64;
            loop {
                let line = read_line(conn, budget)?;
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !read_line(conn, budget)?.is_empty() {}
                    return Ok(true);
                }
                total += size;
                if total > super::hook::MAX_REPLY {
                    return Ok(false);
                }
                let copied = io::copy(&mut conn.by_ref().take(size), &mut io::sink())?;
                if copied != size || !read_line(conn, budget)?.is_empty() {
                    return Err(invalid("bad chunk"));
                }
            }
        }
    }
}

/// One CRLF- (or LF-) terminated line without its terminator, counted
/// against `budget`.
fn read_line(conn: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let limit = (*budget as u64) + 1;
    conn.by_ref().take(limit).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(if line.len() as u64 >= limit {
            invalid("reply head too large")
        } else {
            io::ErrorKind::UnexpectedEof.into()
        });
    }
    *budget = budget.saturating_sub(line.len());
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("reply head is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Option<(bool, String, u16, String, String)> {
        Url::parse(s).map(|u| (u.tls, u.host, u.port, u.authority, u.target))
    }

    #[test]
    fn urls() {
        assert_eq!(
            url("http://127.0.0.1:4318/v1/hooks"),
            Some((
                false,
                "127.0.0.1".into(),
                4318,
                "127.0.0.1:4318".into(),
                "/v1/hooks".into()
            ))
        );
        assert_eq!(
            url("HTTPS://gw.example/v1/hooks?x=1#frag"),
            Some((
                true,
                "gw.example".into(),
                443,
                "gw.example".into(),
                "/v1/hooks?x=1".into()
            ))
        );
        assert_eq!(
            url("http://[::1]:9/"),
            Some((false, "::1".into(), 9, "[::1]:9".into(), "/".into()))
        );
        assert_eq!(
            url("http://h"),
            Some((false, "h".into(), 80, "h".into(), "/".into()))
        );
        assert_eq!(url("http://h?q").map(|u| u.4), Some("/?q".into()));
        for bad in [
            "",
            "127.0.0.1:4318",
            "ftp://h/",
            "http://",
            "http:///x",
            "http://u:p@h/",
            "http://h:99999/",
            "http://h:x/",
            "http://h/a b",
            "http://h/\r\nx: y",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_values() {
        assert!(valid_header_value("Bearer abc-DEF_123.~+/="));
        assert!(!valid_header_value("abc\r\nx-evil: 1"));
        assert!(!valid_header_value("a\0b"));
    }

    fn reply(bytes: &[u8]) -> io::Result<(u16, bool)> {
        // A connected pair of sockets: the reply is what the peer sent.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        server.write_all(bytes)?;
        drop(server);
        let mut conn = BufReader::new(Stream::Plain(client));
        read_reply(&mut conn, Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn replies() {
        let ok = |b: &[u8]| reply(b).ok();
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"),
            Some((200, true))
        );
        assert_eq!(
            ok(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"),
            Some((202, true))
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\n{}\r\n0\r\nT: 1\r\n\r\n"),
            Some((200, true))
        );
        assert_eq!(
            ok(b"HTTP/1.1 503 X\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"),
            Some((503, false))
        );
        assert_eq!(ok(b"HTTP/1.0 200 OK\r\n\r\n{}"), Some((200, false)));
        // A body cut short or garbled still carries the status.
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Some((200, false))
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}"),
            Some((200, false))
        );
        assert_eq!(ok(b"HTTP/1.1 204 No Content\n\n"), Some((204, true)));
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\ncontent-length: 999999999\r\n\r\n{}"),
            Some((200, false))
        );
        for bad in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n{}",
        ] {
            assert!(reply(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
