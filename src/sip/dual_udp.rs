//! One rsipstack UDP transport over an IPv4 and an IPv6 socket.
//!
//! rsipstack 0.7.14 sends every UDP request through its *first* UDP listener whatever the
//! destination's family, and an IPv4 socket cannot reach `::1`. With an IPv4 and an IPv6 UDP
//! listener configured, the endpoint therefore registers this pair as its one UDP transport:
//! each datagram leaves by the socket of its destination's family, and both sockets are read.
//! (The Via of such a request is fixed by `family::fix_via`.)

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

/// An IPv4 and an IPv6 UDP socket as one.
pub(crate) struct DualUdp {
    /// The socket rsipstack sees as the listener (its address is `local_addr`).
    pub(crate) first: UdpSocket,
    /// The socket of the other family.
    pub(crate) second: UdpSocket,
    /// Which socket is read first next time: alternating, so a busy one cannot starve the other.
    pub(crate) second_first: AtomicBool,
}

impl DualUdp {
    fn by_family(&self, to: SocketAddr) -> &UdpSocket {
        let first_v6 = self.first.local_addr().is_ok_and(|a| a.is_ipv6());
        if to.is_ipv6() == first_v6 {
            &self.first
        } else {
            &self.second
        }
    }
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for DualUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        // Both sockets are polled into the same buffer; only the one that is ready fills it.
        let order = if self.second_first.fetch_xor(true, Ordering::Relaxed) {
            [&self.second, &self.first]
        } else {
            [&self.first, &self.second]
        };
        let got = poll_fn(|cx| {
            for s in order {
                let mut rb = ReadBuf::new(buf);
                match s.poll_recv_from(cx, &mut rb) {
                    Poll::Ready(Ok(from)) => return Poll::Ready(Ok((rb.filled().len(), from))),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await?;
        Ok(got)
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.by_family(addr).send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.first.local_addr()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::platform::net::UdpSocket as _;

    #[tokio::test]
    async fn each_family_leaves_and_arrives_by_its_own_socket() {
        // 1. A pair on 127.0.0.1 and ::1, and one peer of each family.
        let dual = DualUdp {
            first: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            second: UdpSocket::bind("[::1]:0").await.unwrap(),
            second_first: AtomicBool::new(false),
        };
        let p4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let p6 = UdpSocket::bind("[::1]:0").await.unwrap();
        // 2. Sending to each peer works (an IPv4 socket alone cannot reach ::1).
        dual.send_to(b"to6", p6.local_addr().unwrap())
            .await
            .unwrap();
        dual.send_to(b"to4", p4.local_addr().unwrap())
            .await
            .unwrap();
        let mut b = [0u8; 16];
        let (n, from) = p6.recv_from(&mut b).await.unwrap();
        assert_eq!(
            (&b[..n], from),
            (&b"to6"[..], dual.second.local_addr().unwrap())
        );
        let (n, from) = p4.recv_from(&mut b).await.unwrap();
        assert_eq!(
            (&b[..n], from),
            (&b"to4"[..], dual.first.local_addr().unwrap())
        );
        // 3. Datagrams to either socket are received.
        p6.send_to(b"from6", dual.second.local_addr().unwrap())
            .await
            .unwrap();
        let (n, from) = dual.recv_from(&mut b).await.unwrap();
        assert_eq!((&b[..n], from), (&b"from6"[..], p6.local_addr().unwrap()));
        p4.send_to(b"from4", dual.first.local_addr().unwrap())
            .await
            .unwrap();
        let (n, from) = dual.recv_from(&mut b).await.unwrap();
        assert_eq!((&b[..n], from), (&b"from4"[..], p4.local_addr().unwrap()));
    }
}
