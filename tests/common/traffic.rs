//! Traffic between namespaces: ping, a verified TCP echo, a UDP echo.
//! Every helper is bounded by timeouts and never hangs a test.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::rig::Container;
use std::sync::Arc;

/// Per-operation socket timeout: a stalled path fails within this.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on one whole TCP transfer.
const TCP_DEADLINE: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 * 1024;

/// `ping -c count` from `ns` to `ip` (0.2 s apart, 1 s per reply); true if
/// every probe was answered exactly once. A failing ping takes a few seconds
/// (its `-w` deadline), never longer.
pub fn ping(ns: &Netns, ip: impl Into<IpAddr>, count: u32) -> bool {
    let ip: IpAddr = ip.into();
    let deadline = (count / 5 + 3).to_string();
    let out = ns.exec(&[
        "ping",
        "-q",
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
        "-w",
        &deadline,
        &ip.to_string(),
    ]);
    if !out.status.success() {
        eprintln!(
            "ping from {} to {ip} failed:\n{}{}",
            ns.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return false;
    }
    let summary = String::from_utf8_lossy(&out.stdout);
    summary.contains(&format!("{count} packets transmitted, {count} received"))
        || summary.contains(&format!(
            "{count} packets transmitted, {count} packets received"
        ))
}

/// A TCP listener on `server_ip` in `server_ns` echoes what a client in
/// `client_ns` sends: `bytes` of pseudo-random data. Both sides check every
/// byte (server what arrived, client what came back) and the exact length.
pub fn tcp_transfer(
    server_ns: &Netns,
    server_ip: impl Into<IpAddr>,
    client_ns: &Netns,
    bytes: usize,
) -> Result<(), String> {
    let server_ip: IpAddr = server_ip.into();
    let seed = seed();
    let listener = server_ns
        .in_ns(|| TcpListener::bind((server_ip, 0)))
        .map_err(|e| format!("bind {server_ip} in {}: {e}", server_ns.name()))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + TCP_DEADLINE;

    let client_gave_up = AtomicBool::new(false);

    std::thread::scope(|s| {
        let gave_up = &client_gave_up;
        let server = s.spawn(move || tcp_echo_server(listener, seed, bytes, deadline, gave_up));
        let client = client_ns
            .in_ns(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
            .map_err(|e| format!("connect from {} to {addr}: {e}", client_ns.name()));
        if client.is_err() {
            client_gave_up.store(true, Ordering::Relaxed);
        }
        let client = client.and_then(|stream| tcp_client(stream, seed, bytes, deadline));
        let server = server
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (client, server) {
            (Ok(()), Ok(())) => Ok(()),
            (c, s) => Err(format!(
                "TCP {} -> {addr} ({bytes} bytes): client: {}; server: {}",
                client_ns.name(),
                c.err().unwrap_or_else(|| "ok".into()),
                s.err().unwrap_or_else(|| "ok".into())
            )),
        }
    })
}

fn tcp_echo_server(
    listener: TcpListener,
    seed: u64,
    bytes: usize,
    deadline: Instant,
    client_gave_up: &AtomicBool,
) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let accept_deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if client_gave_up.load(Ordering::Relaxed) {
                    return Err("client could not connect".into());
                }
                if Instant::now() >= accept_deadline {
                    return Err("no connection within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    set_timeouts(&stream)?;
    let mut expected = Prng::new(seed);
    let mut want = vec![0u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0usize;
    loop {
        if Instant::now() >= deadline {
            return Err(format!("deadline passed after {got} bytes"));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read after {got} bytes: {}", io_error(&e))),
        };
        if got + n > bytes {
            return Err(format!("received more than the {bytes} bytes sent"));
        }
        expected.fill(&mut want[..n]);
        if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
            return Err(format!("received data differs at byte {}", got + i));
        }
        stream
            .write_all(&buf[..n])
            .map_err(|e| format!("echo after {got} bytes: {}", io_error(&e)))?;
        got += n;
    }
    if got != bytes {
        return Err(format!("received {got} of {bytes} bytes before EOF"));
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))
}

fn tcp_client(stream: TcpStream, seed: u64, bytes: usize, deadline: Instant) -> Result<(), String> {
    set_timeouts(&stream)?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = stream;
    std::thread::scope(|s| {
        // Write and read concurrently, or both sides block on full buffers.
        let sending = s.spawn(move || -> Result<(), String> {
            let mut data = Prng::new(seed);
            let mut buf = vec![0u8; CHUNK];
            let mut sent = 0;
            while sent < bytes {
                let n = CHUNK.min(bytes - sent);
                data.fill(&mut buf[..n]);
                writer
                    .write_all(&buf[..n])
                    .map_err(|e| format!("send after {sent} bytes: {}", io_error(&e)))?;
                sent += n;
            }
            writer
                .shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))
        });
        let mut expected = Prng::new(seed);
        let mut want = vec![0u8; CHUNK];
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0usize;
        let received = loop {
            if Instant::now() >= deadline {
                break Err(format!("deadline passed after {got} echoed bytes"));
            }
            let n = match reader.read(&mut buf) {
                Ok(0) if got == bytes => break Ok(()),
                Ok(0) => break Err(format!("echo ended after {got} of {bytes} bytes")),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(format!("read echo after {got} bytes: {}", io_error(&e))),
            };
            if got + n > bytes {
                break Err(format!("echo longer than the {bytes} bytes sent"));
            }
            expected.fill(&mut want[..n]);
            if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                break Err(format!("echoed data differs at byte {}", got + i));
            }
            got += n;
        };
        if received.is_err() {
            // Unblock the writer if it is stuck on a dead path.
            let _ = reader.shutdown(Shutdown::Both);
        }
        let sent = sending
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        received.and(sent)
    })
}

/// An I/O error as text; a socket timeout reads as one, not as `EAGAIN`.
fn io_error(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("timed out ({}s without progress)", IO_TIMEOUT.as_secs())
        }
        _ => e.to_string(),
    }
}

fn set_timeouts(stream: &TcpStream) -> Result<(), String> {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("set timeouts: {e}"))
}

/// UDP echo: a socket bound to `ip_a` in `ns_a` echoes every datagram back;
/// a socket in `ns_b` sends `n` numbered 64-byte datagrams to it (at most 32
/// outstanding) and counts the echoes. Returns `(sent, received)`, where
/// `received` counts every valid echo, duplicates included, so
/// `sent == received` means each datagram went both ways exactly once.
pub fn udp_exchange(ns_a: &Netns, ip_a: Ipv4Addr, ns_b: &Netns, n: usize) -> (usize, usize) {
    const WINDOW: usize = 32;
    const LEN: usize = 64;
    let token = seed().to_be_bytes();
    let a = ns_a
        .in_ns(|| UdpSocket::bind((ip_a, 0)))
        .unwrap_or_else(|e| panic!("bind UDP {ip_a} in {}: {e}", ns_a.name()));
    let a_addr: SocketAddr = a.local_addr().expect("UDP local address");
    let b = ns_b
        .in_ns(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap_or_else(|e| panic!("bind UDP in {}: {e}", ns_b.name()));
    b.connect(a_addr).expect("connect UDP socket");
    a.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("UDP timeout");
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((len, from)) = a.recv_from(&mut buf) {
                    if len == LEN && buf[..8] == token {
                        let _ = a.send_to(&buf[..len], from);
                    }
                }
            }
        });

        b.set_read_timeout(Some(Duration::from_millis(10)))
            .expect("UDP timeout");
        let mut sent = 0usize;
        let mut received = 0usize;
        let mut buf = [0u8; 2048];
        // Counts echoes until `until(received)` holds or `deadline` passes.
        let mut drain = |received: &mut usize, until: &dyn Fn(usize) -> bool, deadline: Instant| {
            while !until(*received) && Instant::now() < deadline {
                if let Ok(len) = b.recv(&mut buf) {
                    let seq = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
                    if len == LEN && buf[..8] == token && seq < n {
                        *received += 1;
                    }
                }
            }
        };
        // One budget for the whole send phase: a dead path costs it once,
        // not once per window.
        let send_deadline = Instant::now() + Duration::from_secs(3);
        let mut payload = [0u8; LEN];
        payload[..8].copy_from_slice(&token);
        for seq in 0..n {
            payload[8..12].copy_from_slice(&(seq as u32).to_be_bytes());
            if b.send(&payload).is_ok() {
                sent += 1;
            }
            drain(&mut received, &|r| r + WINDOW >= sent, send_deadline);
        }
        let end = Instant::now() + Duration::from_secs(2);
        drain(&mut received, &|r| r >= sent, end);
        // Catch late duplicates.
        let end = Instant::now() + Duration::from_millis(100);
        drain(&mut received, &|_| false, end);
        stop.store(true, Ordering::Relaxed);
        (sent, received)
    })
}

/// A seed that differs per call, so parallel transfers never agree by luck.
fn seed() -> u64 {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32) ^ NEXT.fetch_add(0x9e37_79b9, Ordering::Relaxed)
        | 1
}

/// xorshift64* as a byte stream: the same seed yields the same bytes however
/// the reads and writes happen to be split.
struct Prng {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Prng {
    fn new(seed: u64) -> Prng {
        Prng {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            if self.used == 8 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                self.word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                self.used = 0;
            }
            *byte = self.word[self.used];
            self.used += 1;
        }
    }
}

/// A numbered UDP stream from `from` to container `c` at `rate`
/// datagrams/s until finished, and its receiver, which counts what arrives
/// and whether it came in order.
pub struct UdpStream {
    stop: Arc<AtomicBool>,
    sender: std::thread::JoinHandle<u32>,
    receiver: std::thread::JoinHandle<(u32, bool)>,
}

impl UdpStream {
    /// Starts sending.
    pub fn start(from: &Netns, c: &Container, rate: u64) -> UdpStream {
        let rx =
            c.ns.in_ns(|| UdpSocket::bind((c.ip, 0)))
                .expect("bind in the container");
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let dst = (c.ip, rx.local_addr().unwrap().port());
        let tx = from
            .in_ns(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
            .expect("bind in wire");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sender = std::thread::spawn(move || {
            let start = Instant::now();
            let mut i: u32 = 0;
            while !flag.load(Ordering::Relaxed) {
                let due = start + Duration::from_nanos(1_000_000_000 / rate * u64::from(i));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                tx.send_to(&i.to_be_bytes(), dst).expect("send");
                i += 1;
            }
            i
        });
        let flag_rx = stop.clone();
        let receiver = std::thread::spawn(move || {
            let (mut n, mut next, mut ordered) = (0u32, 0u32, true);
            let mut buf = [0u8; 64];
            let mut quiet = 0;
            while quiet < 10 || !flag_rx.load(Ordering::Relaxed) {
                match rx.recv(&mut buf) {
                    Ok(4) => {
                        let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
                        // In order: never behind what came before (a gap is a loss, counted apart).
                        ordered &= i >= next;
                        next = i + 1;
                        n += 1;
                        quiet = 0;
                    }
                    Ok(_) => {}
                    Err(_) => quiet += 1,
                }
            }
            (n, ordered)
        });
        UdpStream {
            stop,
            sender,
            receiver,
        }
    }

    /// Stops sending; (sent, received, in order) once the receiver has been
    /// quiet for 2 s.
    pub fn finish(self) -> (u32, u32, bool) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.join().unwrap();
        let (received, ordered) = self.receiver.join().unwrap();
        (sent, received, ordered)
    }
}
