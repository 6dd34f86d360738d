//! A byte relay: the floor for any proxy on this machine, used only by
//! `benches/proxy_overhead.rs`.
//!
//! It accepts a connection, opens one to the upstream (both with `TCP_NODELAY`) and copies bytes
//! both ways with `tokio::io::copy_bidirectional`, on the same tokio runtime shape as
//! `tenantgate serve`. It parses nothing, authenticates nobody and enforces nothing, so what it
//! costs is what the kernel and the runtime charge for relaying one command: the part of
//! tenantgate's overhead that no proxy can avoid.
#![allow(dead_code)]

use tokio::net::{TcpListener, TcpStream};

/// Relays every connection accepted on `listener` to `upstream`, forever.
pub async fn serve(listener: TcpListener, upstream: String) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
