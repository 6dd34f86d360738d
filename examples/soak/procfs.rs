//! tenantgate's resident memory and open file descriptors, read from `/proc` (Linux only).
//!
//! The descriptors are classified, because a flat total cannot tell a leak from a pool doing
//! its job: the upstream pool opens connections on demand and keeps them (up to
//! `upstream.pool_size`), so the total legitimately grows during the first minutes. A socket
//! whose local port is the proxy's or the API's listening port is a client connection; one whose
//! remote port is the upstream's belongs to the pool; everything else (listeners, Redis, epoll,
//! eventfds, files) is "other" and must not grow.

use std::collections::HashMap;
use std::path::Path;

/// `VmRSS` of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Open descriptors of one process, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fds {
    pub total: usize,
    /// Accepted client connections (proxy or API).
    pub client: usize,
    /// Connections to the upstream MongoDB.
    pub upstream: usize,
}

impl Fds {
    /// Everything that is neither a client connection nor an upstream connection.
    pub fn other(&self) -> usize {
        self.total - self.client - self.upstream
    }
}

/// What `/proc/net/tcp` says about one socket.
#[derive(Debug, Clone, Copy)]
struct TcpSocket {
    local_port: u16,
    remote_port: u16,
    listening: bool,
}

/// Classifies the open descriptors of `pid`: `listen_ports` are tenantgate's own listeners,
/// `upstream_port` the MongoDB server's port.
pub fn fds(pid: u32, listen_ports: &[u16], upstream_port: u16) -> std::io::Result<Fds> {
    let sockets = tcp_sockets(pid);
    let mut out = Fds::default();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(entry) = entry else { continue };
        // A descriptor closed between read_dir and read_link is simply gone.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        out.total += 1;
        let Some(socket) = socket_inode(&target).and_then(|i| sockets.get(&i)) else {
            continue;
        };
        if socket.listening {
            continue;
        }
        if listen_ports.contains(&socket.local_port) {
            out.client += 1;
        } else if socket.remote_port == upstream_port {
            out.upstream += 1;
        }
    }
    Ok(out)
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every TCP socket of `pid`'s network namespace, by inode.
fn tcp_sockets(pid: u32) -> HashMap<u64, TcpSocket> {
    let mut out = HashMap::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some((inode, socket)) = parse_tcp_line(line) {
                out.insert(inode, socket);
            }
        }
    }
    out
}

/// One row of `/proc/net/tcp`: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`.
fn parse_tcp_line(line: &str) -> Option<(u64, TcpSocket)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit_once(':')?.1, 16).ok();
    let socket = TcpSocket {
        local_port: port(f.get(1)?)?,
        remote_port: port(f.get(2)?)?,
        listening: *f.get(3)? == "0A",
    };
    Some((f.get(9)?.parse().ok()?, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_proc_net_tcp_row() {
        let row = "   3: 0100007F:6B8B 0100007F:6AF3 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1";
        let (inode, s) = parse_tcp_line(row).expect("a valid row");
        assert_eq!(inode, 4242);
        assert_eq!(
            (s.local_port, s.remote_port, s.listening),
            (27531, 27379, false)
        );
        assert_eq!(socket_inode(Path::new("socket:[4242]")), Some(4242));
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (_accepted, _) = listener.accept().expect("accept");
        let f = fds(me, &[port], 1).expect("our own fds");
        assert_eq!(f.client, 1, "{f:?}");
        assert!(f.total >= 3, "{f:?}");
    }
}
