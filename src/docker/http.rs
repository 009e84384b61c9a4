//! Just enough HTTP/1.1 for Docker's plugin client: one request per
//! connection (`Connection: close`), a body by `Content-Length` or chunked,
//! a JSON answer.

use std::io::{self, BufRead, BufReader, Read, Write};

/// The largest request body accepted; Docker's calls are a few KiB.
const MAX_BODY: usize = 1 << 20;
/// The longest request line or header line accepted.
const MAX_LINE: usize = 8 * 1024;

/// One request: its path (`/NetworkDriver.Join`) and its body.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path, e.g. `/Plugin.Activate`.
    pub path: String,
    /// The body, empty if none.
    pub body: Vec<u8>,
}

fn bad(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if line.len() > MAX_LINE {
        return Err(bad("line too long"));
    }
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-request",
        ));
    }
    let text = String::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one request from `stream`.
pub fn read_request(stream: impl Read) -> io::Result<Request> {
    let mut r = BufReader::new(stream);
    let line = read_line(&mut r)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("not an HTTP request line: {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("unsupported HTTP version {version:?}")));
    }
    let mut length = None;
    let mut chunked = false;
    loop {
        let header = read_line(&mut r)?;
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad(format!("malformed header {header:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| bad(format!("bad Content-Length {value:?}")))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        read_chunked(&mut r)?
    } else {
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(bad(format!("body of {n} bytes is too large")));
        }
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        body
    };
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        body,
    })
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(r)?;
        let size = size_line.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
        if body.len().saturating_add(n) > MAX_BODY {
            return Err(bad("chunked body too large"));
        }
        if n == 0 {
            // Trailers, then the empty line.
            while !read_line(r)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r)?.is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

/// Writes a complete answer with a JSON body and closes the exchange.
pub fn write_response(mut stream: impl Write, status: u16, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: application/vnd.docker.plugins.v1+json\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_with_content_length() {
        let raw = b"POST /NetworkDriver.Join HTTP/1.1\r\nHost: plugin\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let r = read_request(&raw[..]).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/NetworkDriver.Join");
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn reads_a_chunked_request() {
        let raw = b"POST /Plugin.Activate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        let r = read_request(&raw[..]).unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn rejects_what_is_not_http() {
        for raw in [
            &b"hello\r\n\r\n"[..],
            b"POST / SPDY/3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nno colon\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        ] {
            assert!(
                read_request(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn writes_a_json_answer() {
        let mut out = Vec::new();
        write_response(&mut out, 200, b"{}").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
    }
}
