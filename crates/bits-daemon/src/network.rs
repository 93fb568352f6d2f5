//! Network awareness: the kernel tells us when links, addresses or routes
//! change (a routing netlink socket subscribed to those groups; nothing is
//! polled). After each change (and a short pause, so that a burst of
//! messages is one change) every job that may transfer is checked: is
//! there still a route to its server (or the proxy it used)? The kernel
//! answers that without sending a packet: connecting a UDP socket is a
//! route lookup. The lifecycle owner then holds the jobs whose server is
//! unreachable in TransientError (BG_E_NETWORK_DISCONNECTED) and queues
//! again, at once, the ones waiting for a network that is back.
//!
//! The messages themselves are not parsed: any of them is only a reason to
//! look again.

use crate::lifecycle::{Command, Handle};
use crate::state::Shared;
use bits_core::{JobId, JobState};
use nix::sys::socket::{
    bind, socket, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// Changes that come within this long are one change.
const SETTLE: Duration = Duration::from_millis(100);

/// The longest a server's name may take to resolve for the check; a name
/// that does not resolve is neither reachable nor not.
const RESOLVE_WAIT: Duration = Duration::from_secs(2);

/// Links, IPv4 and IPv6 addresses and routes.
const GROUPS: u32 = (libc::RTMGRP_LINK
    | libc::RTMGRP_IPV4_IFADDR
    | libc::RTMGRP_IPV4_ROUTE
    | libc::RTMGRP_IPV6_IFADDR
    | libc::RTMGRP_IPV6_ROUTE) as u32;

/// What a check found.
#[derive(Debug, Default)]
pub struct Reachability {
    /// Jobs whose server has no route.
    pub unreachable: HashSet<JobId>,
    /// Jobs whose server has one.
    pub reachable: HashSet<JobId>,
}

/// Starts watching; logs and returns `None` where routing netlink is not
/// available (jobs then find out about a lost network by failing).
pub fn spawn(shared: Arc<Shared>, manager: Handle) -> Option<tokio::task::JoinHandle<()>> {
    let socket = match open() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot watch the network (routing netlink): jobs notice a lost network when their transfers fail");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        if let Err(e) = watch(socket, &shared, &manager).await {
            tracing::warn!(cause = %e, "stopped watching the network");
        }
    }))
}

fn open() -> std::io::Result<AsyncFd<OwnedFd>> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, GROUPS))?;
    // SAFETY: the AsyncFd owns `fd` (an OwnedFd, open and ours) until it
    // is dropped, and an OwnedFd always returns the same descriptor.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

async fn watch(
    socket: AsyncFd<OwnedFd>,
    shared: &Arc<Shared>,
    manager: &Handle,
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            ready = socket.readable() => {
                let mut guard = ready?;
                drain(socket.get_ref())?;
                guard.clear_ready();
            }
            () = shared.shutdown.cancelled() => return Ok(()),
        }
        tokio::time::sleep(SETTLE).await;
        drain(socket.get_ref())?;
        let found = check(shared).await;
        tracing::debug!(
            unreachable = found.unreachable.len(),
            reachable = found.reachable.len(),
            "the network changed"
        );
        manager.tell(Command::NetworkChanged(found));
    }
}

/// Reads every pending message (their contents do not matter). A full
/// receive queue (ENOBUFS: messages were lost) is a change like any other.
fn drain(fd: &OwnedFd) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN) => return Ok(()),
            Err(nix::errno::Errno::ENOBUFS | nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where each job that may transfer goes first: its proxy if it used one,
/// else the server of its next file.
fn targets(shared: &Shared) -> Vec<(JobId, String, u16)> {
    let view = shared.read();
    view.jobs
        .values()
        .filter(|e| {
            matches!(
                e.job.state(),
                JobState::Queued
                    | JobState::Connecting
                    | JobState::Transferring
                    | JobState::TransientError
            )
        })
        .filter_map(|e| {
            let url = match &e.job.proxy_used {
                Some(proxy) => proxy.clone(),
                None => e.job.files.get(e.job.next_file()?)?.remote.to_string(),
            };
            let url = url::Url::parse(&url).ok()?;
            let host = url
                .host_str()?
                .trim_start_matches('[')
                .trim_end_matches(']');
            Some((e.job.id, host.to_string(), url.port_or_known_default()?))
        })
        .collect()
}

async fn check(shared: &Shared) -> Reachability {
    let mut found = Reachability::default();
    for (id, host, port) in targets(shared) {
        let resolved =
            tokio::time::timeout(RESOLVE_WAIT, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|addrs| addrs.collect::<Vec<_>>());
        let Some(addrs) = resolved.filter(|a| !a.is_empty()) else {
            continue;
        };
        if addrs.iter().any(|a| routed(*a)) {
            found.reachable.insert(id);
        } else {
            found.unreachable.insert(id);
        }
    }
    found
}

/// Whether the kernel has a route to `addr` (a UDP connect sends nothing).
fn routed(addr: SocketAddr) -> bool {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("a literal address")
    } else {
        "[::]:0".parse().expect("a literal address")
    };
    UdpSocket::bind(local).and_then(|s| s.connect(addr)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_routed() {
        assert!(routed("127.0.0.1:80".parse().unwrap()));
    }
}
