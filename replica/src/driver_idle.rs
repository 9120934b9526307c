//! How the embedded Aeron driver's thread sleeps when idle: in ppoll(2) on the driver's own UDP
//! sockets and a [`Bell`] (an eventfd rung by a send or the stop), for at most its back-off. A
//! datagram that arrives wakes it at once instead of waiting out the back-off (up to 4 ms before),
//! which an AppendEntries round trip paid at both ends (`docs/REPLICATION.md`, 5).
//!
//! The sockets are noted as the driver opens and closes them.
//! Aeron's C driver opens every socket through a table of transport functions that a driver
//! context may replace (`aeron_udp_channel_transport_bindings_t`, the seam Aeron offers for
//! other media). Ours is Aeron's default table with `init` and `close` wrapped: each calls
//! Aeron's own and notes or forgets the socket in a list of the calling thread. With SHARED
//! threading the driver's conductor, sender and receiver all run on the one thread that runs
//! its duty cycle, so that thread's list holds exactly its driver's sockets, however many drivers
//! a process runs.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::OnceLock;
use std::time::Duration;

use rusteron_media_driver::bindings::{
    aeron_driver_context_t, aeron_udp_channel_transport_affinity_t,
    aeron_udp_channel_transport_bindings_load_media, aeron_udp_channel_transport_bindings_t,
    aeron_udp_channel_transport_params_t, aeron_udp_channel_transport_t, sockaddr_storage,
};

/// Most sockets one driver's list holds (a member has one receive socket and one send socket
/// per peer, and at most `cluster_file::MAX_MEMBERS` members): beyond it a socket is not
/// watched, and datagrams on it wait for the idle back-off as before.
pub const MAX_WATCHED_SOCKETS: usize = 32;

thread_local! {
    /// The sockets the driver run by this thread has open.
    static SOCKETS: RefCell<Vec<c_int>> = const { RefCell::new(Vec::new()) };
}

/// Aeron's default table, and ours: the default with `init` and `close` wrapped.
struct Tables {
    default: aeron_udp_channel_transport_bindings_t,
    ours: *mut aeron_udp_channel_transport_bindings_t,
}

// SAFETY: both tables are written once, before any driver uses them, and only read after; the
// pointers in them are to Aeron's static functions and strings.
unsafe impl Send for Tables {}
// SAFETY: see `Send`.
unsafe impl Sync for Tables {}

static TABLES: OnceLock<Result<Tables, String>> = OnceLock::new();

fn tables() -> Result<&'static Tables, String> {
    TABLES
        .get_or_init(|| {
            // SAFETY: Aeron returns a pointer to its static default table (or null).
            let default = unsafe { aeron_udp_channel_transport_bindings_load_media(c"default".as_ptr()) };
            if default.is_null() {
                return Err("Aeron has no default UDP transport".to_string());
            }
            // SAFETY: non-null, and Aeron's static table lives as long as the process.
            let default = unsafe { *default };
            let mut ours = default;
            ours.init_func = Some(init_and_note);
            ours.close_func = Some(forget_and_close);
            // Leaked on purpose: a driver context keeps the pointer for as long as it runs.
            let ours = Box::into_raw(Box::new(ours));
            Ok(Tables { default, ours })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Our transport table, for `aeron_driver_context_set_udp_channel_transport_bindings`.
pub fn bindings() -> Result<*mut aeron_udp_channel_transport_bindings_t, String> {
    tables().map(|t| t.ours)
}

/// The sockets the driver run by this thread has open now.
pub fn watched(out: &mut Vec<c_int>) {
    out.clear();
    SOCKETS.with(|s| out.extend_from_slice(&s.borrow()));
}

fn note(fd: c_int) {
    SOCKETS.with(|s| {
        let mut s = s.borrow_mut();
        if fd >= 0 && !s.contains(&fd) && s.len() < MAX_WATCHED_SOCKETS {
            s.push(fd);
        }
    });
}

fn forget(fd: c_int) {
    SOCKETS.with(|s| s.borrow_mut().retain(|&f| f != fd));
}

/// Aeron's default table, once ours is set up (it is, before any driver can call us).
fn default_table() -> Option<&'static aeron_udp_channel_transport_bindings_t> {
    TABLES.get().and_then(|t| t.as_ref().ok()).map(|t| &t.default)
}

unsafe extern "C" fn init_and_note(
    transport: *mut aeron_udp_channel_transport_t,
    bind_addr: *mut sockaddr_storage,
    multicast_if_addr: *mut sockaddr_storage,
    connect_addr: *mut sockaddr_storage,
    params: *mut aeron_udp_channel_transport_params_t,
    context: *mut aeron_driver_context_t,
    affinity: aeron_udp_channel_transport_affinity_t,
) -> c_int {
    let Some(init) = default_table().and_then(|t| t.init_func) else {
        return -1;
    };
    // SAFETY: Aeron's own init, with the arguments Aeron gave us.
    let result = unsafe {
        init(
            transport,
            bind_addr,
            multicast_if_addr,
            connect_addr,
            params,
            context,
            affinity,
        )
    };
    if result >= 0 && !transport.is_null() {
        // SAFETY: a transport Aeron has just initialised.
        let (fd, recv_fd) = unsafe { ((*transport).fd, (*transport).recv_fd) };
        note(fd);
        note(recv_fd);
    }
    result
}

unsafe extern "C" fn forget_and_close(transport: *mut aeron_udp_channel_transport_t) -> c_int {
    let Some(close) = default_table().and_then(|t| t.close_func) else {
        return -1;
    };
    if !transport.is_null() {
        // SAFETY: a transport Aeron is about to close.
        let (fd, recv_fd) = unsafe { ((*transport).fd, (*transport).recv_fd) };
        forget(fd);
        forget(recv_fd);
    }
    // SAFETY: Aeron's own close, with the transport Aeron gave us.
    unsafe { close(transport) }
}

/// Wakes a sleeping driver thread (an eventfd).
#[derive(Debug)]
pub struct Bell(OwnedFd);

impl Bell {
    /// A new bell.
    pub fn new() -> std::io::Result<Bell> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(Bell(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes the sleeper (or its next sleep returns at once).
    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter (never, at 2^64)
        // would only mean it is rung already.
        unsafe {
            libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8);
        }
    }

    fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe {
            libc::read(self.0.as_raw_fd(), (&raw mut count).cast(), 8);
        }
    }
}

/// How many wakes by a readable socket after which the driver found nothing are allowed before
/// the sockets are left out of the sleep until it next times out: a socket the driver does not
/// read must not keep its thread from sleeping (it would spin).
const FRUITLESS_WAKES_MAX: u32 = 3;

/// The driver thread's sleeps.
pub struct Sleeper<'a> {
    bell: &'a Bell,
    fds: Vec<libc::pollfd>,
    sockets: Vec<c_int>,
    /// The last sleep ended because a socket was readable.
    woken_by_socket: bool,
    /// Wakes by a socket still allowed before the next timeout ([`FRUITLESS_WAKES_MAX`]).
    socket_wakes_left: u32,
}

impl<'a> Sleeper<'a> {
    /// A sleeper woken by `bell` and, once the driver has opened them, its sockets.
    pub fn new(bell: &'a Bell) -> Self {
        Sleeper {
            bell,
            fds: Vec::with_capacity(MAX_WATCHED_SOCKETS + 1),
            sockets: Vec::with_capacity(MAX_WATCHED_SOCKETS),
            woken_by_socket: false,
            socket_wakes_left: FRUITLESS_WAKES_MAX,
        }
    }

    /// After each duty cycle: whether it found work (a wake by a socket that found none counts
    /// against the sockets).
    pub fn after_cycle(&mut self, found_work: bool) {
        if self.woken_by_socket && !found_work {
            self.socket_wakes_left = self.socket_wakes_left.saturating_sub(1);
        }
        self.woken_by_socket = false;
    }

    /// Sleeps up to `timeout`, or until the bell rings or one of the driver's sockets is
    /// readable.
    pub fn sleep(&mut self, timeout: Duration) {
        self.fds.clear();
        self.fds.push(libc::pollfd {
            fd: self.bell.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        if self.socket_wakes_left > 0 {
            watched(&mut self.sockets);
            self.fds.extend(self.sockets.iter().map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }));
        }
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: fds holds fds.len() initialised pollfds; ts is a valid timespec; a null
        // sigmask leaves the signal mask as it is.
        let ready = unsafe {
            libc::ppoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if ready <= 0 {
            // Timed out (or interrupted): the sockets are trusted again.
            self.socket_wakes_left = FRUITLESS_WAKES_MAX;
            return;
        }
        if self.fds[0].revents != 0 {
            self.bell.drain();
        }
        self.woken_by_socket = self.fds[1..].iter().any(|p| p.revents != 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A datagram waiting on a noted socket wakes the sleeper; a socket whose datagram nobody
    /// reads wakes it at most FRUITLESS_WAKES_MAX times before it is left out, and it is trusted
    /// again once a sleep has timed out.
    #[test]
    fn a_readable_socket_wakes_the_sleeper_and_one_never_read_is_left_out() {
        let unread = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"x", unread.local_addr().unwrap()).unwrap();
        note(unread.as_raw_fd());
        let bell = Bell::new().unwrap();
        let mut sleeper = Sleeper::new(&bell);
        let long = Duration::from_secs(30);
        for left in (0..FRUITLESS_WAKES_MAX).rev() {
            sleeper.sleep(long);
            assert!(sleeper.woken_by_socket, "the readable socket woke it");
            sleeper.after_cycle(false);
            assert_eq!(sleeper.socket_wakes_left, left);
        }
        // Left out now: only the bell (or the timeout) ends the sleep.
        bell.ring();
        sleeper.sleep(long);
        assert!(!sleeper.woken_by_socket);
        sleeper.sleep(Duration::from_millis(1));
        assert_eq!(
            sleeper.socket_wakes_left, FRUITLESS_WAKES_MAX,
            "trusted again after a timeout"
        );
        forget(unread.as_raw_fd());
        watched(&mut sleeper.sockets);
        assert!(sleeper.sockets.is_empty());
    }

    /// The list of one thread's sockets holds at most MAX_WATCHED_SOCKETS, once each.
    #[test]
    fn the_socket_list_is_bounded_and_holds_each_socket_once() {
        for fd in 1000..1000 + MAX_WATCHED_SOCKETS as c_int + 5 {
            note(fd);
            note(fd);
        }
        note(-1);
        let mut out = Vec::new();
        watched(&mut out);
        assert_eq!(out.len(), MAX_WATCHED_SOCKETS);
        assert_eq!(out[0], 1000);
        for fd in 1000..1000 + MAX_WATCHED_SOCKETS as c_int + 5 {
            forget(fd);
        }
        watched(&mut out);
        assert!(out.is_empty());
    }
}
