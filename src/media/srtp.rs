//! SRTP (RFC 3711) for the carrier leg through Debian's libsrtp2, opened at run time.
//!
//! Why libsrtp2: it is the reference implementation that PJSIP, Asterisk and FreeSWITCH use,
//! Debian maintains it (security updates), and its `srtp_protect`/`srtp_unprotect` work in
//! place on the caller's buffer — the relay keeps its one reused buffer and allocates nothing
//! per packet. (The maintained pure-Rust `webrtc-srtp` returns a new `Bytes` per packet.)
//! The library is opened with `dlopen` when the first SRTP call needs it, as the phonemizer
//! does for libespeak-ng: building dialgate needs no C headers, and a host without
//! `libsrtp2-1` only fails the calls of `srtp` trunks, with a clear reason.
//!
//! Contexts are created and dropped on the relay thread's control path (a re-INVITE, a new
//! session), never per packet.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use std::sync::OnceLock;

pub use crate::core::srtp::{MASTER_LEN, SrtpKeys, SrtpSuite};

/// What went wrong with SRTP.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SrtpError {
    /// libsrtp2 is not installed (Debian: `libsrtp2-1`) or lacks a function.
    #[error("libsrtp2 is not available ({0}); install the libsrtp2-1 package")]
    Library(String),
    /// libsrtp2 returned an error status.
    #[error("libsrtp2 {op} failed with status {status}")]
    Status {
        /// The operation.
        op: &'static str,
        /// libsrtp2's `srtp_err_status_t`.
        status: i32,
    },
    /// The media session or engine is stopped.
    #[error("media session stopped")]
    Stopped,
    /// The buffer has no room for the authentication tag.
    #[error("no room for the SRTP trailer")]
    NoRoom,
}

/// Room `srtp_protect` may write after the packet (`SRTP_MAX_TRAILER_LEN`: tag + MKI).
pub const MAX_TRAILER: usize = 16 + 128;

// The C structures of libsrtp2 2.x (`srtp2/srtp.h`), field for field.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CryptoPolicy {
    cipher_type: u32,
    cipher_key_len: c_int,
    auth_type: u32,
    auth_key_len: c_int,
    auth_tag_len: c_int,
    sec_serv: c_int,
}

#[repr(C)]
struct Policy {
    ssrc_type: c_int,
    ssrc_value: c_uint,
    rtp: CryptoPolicy,
    rtcp: CryptoPolicy,
    key: *const u8,
    keys: *mut c_void,
    num_master_keys: c_ulong,
    deprecated_ekt: *mut c_void,
    window_size: c_ulong,
    allow_repeat_tx: c_int,
    enc_xtn_hdr: *mut c_int,
    enc_xtn_hdr_count: c_int,
    next: *mut Policy,
}

/// `ssrc_any_outbound` / `ssrc_any_inbound` of `srtp_ssrc_type_t`.
const SSRC_ANY_OUTBOUND: c_int = 2;
const SSRC_ANY_INBOUND: c_int = 3;

type InitFn = unsafe extern "C" fn() -> c_int;
type CreateFn = unsafe extern "C" fn(*mut *mut c_void, *const Policy) -> c_int;
type DeallocFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type ProtectFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int) -> c_int;
type PolicyFn = unsafe extern "C" fn(*mut CryptoPolicy);
type VersionFn = unsafe extern "C" fn() -> *const c_char;

struct Lib {
    _lib: libloading::Library,
    create: CreateFn,
    dealloc: DeallocFn,
    protect: ProtectFn,
    unprotect: ProtectFn,
    protect_rtcp: ProtectFn,
    unprotect_rtcp: ProtectFn,
    policy_80: PolicyFn,
    policy_32: PolicyFn,
    policy_rtcp: PolicyFn,
    /// `srtp_get_version_string()`, when the library has it.
    version: Option<String>,
}

const LIBRARY: &str = "libsrtp2.so.1";

/// Environment variable naming the libsrtp2 file to open instead of `libsrtp2.so.1` (a path,
/// or a name the dynamic loader searches for): for a library outside the loader's path, and
/// for tests of a host without it.
pub const LIBRARY_ENV: &str = "DIALGATE_LIBSRTP2";

/// The library file that is opened: [`LIBRARY_ENV`] if set and not empty, else `libsrtp2.so.1`.
pub fn library_name() -> String {
    std::env::var(LIBRARY_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| LIBRARY.to_owned())
}

fn load() -> Result<Lib, String> {
    let name = library_name();
    // SAFETY: libsrtp2 has no library constructors with preconditions; the symbols are
    // looked up with the signatures of srtp2/srtp.h (2.x), and the library stays loaded
    // (owned by the returned value, kept for the process in a OnceLock).
    unsafe {
        // libloading's message is only "dlopen failed"; the loader's own reason is its source.
        let lib =
            libloading::Library::new(&name).map_err(|e| match std::error::Error::source(&e) {
                Some(why) => format!("{e}: {why}"),
                None => e.to_string(),
            })?;
        macro_rules! sym {
            ($name:literal, $t:ty) => {
                *lib.get::<$t>($name).map_err(|e| e.to_string())?
            };
        }
        let init: InitFn = sym!(b"srtp_init\0", InitFn);
        let status = init();
        if status != 0 {
            return Err(format!("srtp_init failed with status {status}"));
        }
        // Optional: only for `dialgate check`; the text is static in the library.
        let version = lib
            .get::<VersionFn>(b"srtp_get_version_string\0")
            .ok()
            .map(|f| f())
            .filter(|p| !p.is_null())
            .map(|p| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned());
        Ok(Lib {
            version,
            create: sym!(b"srtp_create\0", CreateFn),
            dealloc: sym!(b"srtp_dealloc\0", DeallocFn),
            protect: sym!(b"srtp_protect\0", ProtectFn),
            unprotect: sym!(b"srtp_unprotect\0", ProtectFn),
            protect_rtcp: sym!(b"srtp_protect_rtcp\0", ProtectFn),
            unprotect_rtcp: sym!(b"srtp_unprotect_rtcp\0", ProtectFn),
            policy_80: sym!(b"srtp_crypto_policy_set_rtp_default\0", PolicyFn),
            policy_32: sym!(
                b"srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32\0",
                PolicyFn
            ),
            policy_rtcp: sym!(b"srtp_crypto_policy_set_rtcp_default\0", PolicyFn),
            _lib: lib,
        })
    }
}

fn lib() -> Result<&'static Lib, SrtpError> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load)
        .as_ref()
        .map_err(|e| SrtpError::Library(e.clone()))
}

/// Whether libsrtp2 can be used here (`dialgate check`, tests).
pub fn available() -> Result<(), SrtpError> {
    lib().map(|_| ())
}

/// The loaded libsrtp2's version text (e.g. `libsrtp2 2.5.0`), `Ok(None)` when it has no
/// `srtp_get_version_string`; `Err` when the library cannot be loaded.
pub fn version() -> Result<Option<String>, SrtpError> {
    lib().map(|l| l.version.clone())
}

/// One libsrtp2 session: one direction of one leg, any SSRC.
struct Session {
    ctx: *mut c_void,
    lib: &'static Lib,
}

// SAFETY: a libsrtp2 session is plain memory owned by this value; it is used by one thread at
// a time (the relay thread owns it), which is all libsrtp2 requires.
unsafe impl Send for Session {}

impl Session {
    fn new(suite: SrtpSuite, key: &[u8; MASTER_LEN], inbound: bool) -> Result<Self, SrtpError> {
        let lib = lib()?;
        let mut rtp = CryptoPolicy::default();
        let mut rtcp = CryptoPolicy::default();
        // SAFETY: the policy functions only fill in the structure they are given.
        unsafe {
            match suite {
                SrtpSuite::AesCm128HmacSha1_80 => (lib.policy_80)(&mut rtp),
                SrtpSuite::AesCm128HmacSha1_32 => (lib.policy_32)(&mut rtp),
            }
            // RFC 4568 §6.2: SRTCP keeps the 80-bit tag with either suite.
            (lib.policy_rtcp)(&mut rtcp);
        }
        let policy = Policy {
            ssrc_type: if inbound {
                SSRC_ANY_INBOUND
            } else {
                SSRC_ANY_OUTBOUND
            },
            ssrc_value: 0,
            rtp,
            rtcp,
            key: key.as_ptr(),
            keys: std::ptr::null_mut(),
            num_master_keys: 0,
            deprecated_ekt: std::ptr::null_mut(),
            // 0 = libsrtp's default replay window (128).
            window_size: 0,
            allow_repeat_tx: 0,
            enc_xtn_hdr: std::ptr::null_mut(),
            enc_xtn_hdr_count: 0,
            next: std::ptr::null_mut(),
        };
        let mut ctx = std::ptr::null_mut();
        // SAFETY: `policy` and `key` outlive the call; libsrtp copies the key material.
        let status = unsafe { (lib.create)(&mut ctx, &policy) };
        if status != 0 || ctx.is_null() {
            return Err(SrtpError::Status {
                op: "srtp_create",
                status,
            });
        }
        Ok(Session { ctx, lib })
    }

    fn run(
        &mut self,
        f: ProtectFn,
        op: &'static str,
        buf: &mut [u8],
        len: usize,
        grows: bool,
    ) -> Result<usize, SrtpError> {
        if len > buf.len() || (grows && buf.len() - len < MAX_TRAILER) {
            return Err(SrtpError::NoRoom);
        }
        let mut n = c_int::try_from(len).map_err(|_| SrtpError::NoRoom)?;
        // SAFETY: `buf` holds `len` bytes of packet and, when protecting, MAX_TRAILER more
        // bytes of room after it, as libsrtp2 requires; it writes `n` back.
        let status = unsafe { f(self.ctx, buf.as_mut_ptr().cast(), &mut n) };
        if status != 0 {
            return Err(SrtpError::Status { op, status });
        }
        usize::try_from(n).map_err(|_| SrtpError::NoRoom)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from srtp_create and is freed once.
        unsafe {
            (self.lib.dealloc)(self.ctx);
        }
    }
}

/// Both directions of an SRTP leg: protect what we send, unprotect what we receive.
pub struct SrtpLeg {
    keys: SrtpKeys,
    tx: Session,
    rx: Session,
}

impl SrtpLeg {
    /// Sessions for these keys (allocates in libsrtp2: call it off the packet path).
    pub fn new(keys: SrtpKeys) -> Result<Self, SrtpError> {
        Ok(SrtpLeg {
            keys,
            tx: Session::new(keys.suite, &keys.local, false)?,
            rx: Session::new(keys.suite, &keys.remote, true)?,
        })
    }

    /// The keys this leg was made with.
    pub fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// Takes over `old`'s outbound session when our key and suite did not change (the peer
    /// re-keyed, or the same answer came again): the packets we send keep their SRTP index
    /// (rollover counter), which a fresh session would restart — the peer would then fail to
    /// authenticate them after a wrap, and the keystream would repeat.
    pub fn keep_outbound_of(&mut self, mut old: SrtpLeg) {
        if old.keys.suite == self.keys.suite && old.keys.local == self.keys.local {
            std::mem::swap(&mut self.tx, &mut old.tx);
        }
    }

    /// Encrypts and authenticates the RTP packet `buf[..len]` in place; returns the new length.
    /// `buf` needs [`MAX_TRAILER`] bytes of room after the packet.
    #[inline]
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let f = self.tx.lib.protect;
        self.tx.run(f, "srtp_protect", buf, len, true)
    }

    /// Checks and decrypts the SRTP packet `buf[..len]` in place; returns the RTP length.
    #[inline]
    pub fn unprotect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let f = self.rx.lib.unprotect;
        self.rx.run(f, "srtp_unprotect", buf, len, false)
    }

    /// [`protect`](Self::protect) for RTCP (SRTCP).
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let f = self.tx.lib.protect_rtcp;
        self.tx.run(f, "srtp_protect_rtcp", buf, len, true)
    }

    /// [`unprotect`](Self::unprotect) for RTCP (SRTCP).
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let f = self.rx.lib.unprotect_rtcp;
        self.rx.run(f, "srtp_unprotect_rtcp", buf, len, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![
            0x80,
            0,
            (seq >> 8) as u8,
            seq as u8,
            0,
            0,
            0,
            160,
            1,
            2,
            3,
            4,
        ];
        p.extend(std::iter::repeat_n(0xd5, 160));
        p
    }

    /// Two legs with crossed keys talk to each other; a tampered packet is refused.
    #[test]
    fn protect_then_unprotect_round_trips() {
        if available().is_err() {
            eprintln!("libsrtp2 not installed: skipped");
            return;
        }
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            // 1. Alice's local key is Bob's remote key and vice versa.
            let (ka, kb) = ([7u8; MASTER_LEN], [9u8; MASTER_LEN]);
            let mut alice = SrtpLeg::new(SrtpKeys {
                suite,
                local: ka,
                remote: kb,
            })
            .expect("a");
            let mut bob = SrtpLeg::new(SrtpKeys {
                suite,
                local: kb,
                remote: ka,
            })
            .expect("b");
            let mut buf = [0u8; 2048];
            let plain = rtp(1);
            buf[..plain.len()].copy_from_slice(&plain);
            // 2. Protected: longer by the tag, payload changed.
            let n = alice.protect(&mut buf, plain.len()).expect("protect");
            let tag = if suite == SrtpSuite::AesCm128HmacSha1_80 {
                10
            } else {
                4
            };
            assert_eq!(n, plain.len() + tag);
            assert_ne!(&buf[12..plain.len()], &plain[12..]);
            // 3. Bob gets the plain packet back.
            let m = bob.unprotect(&mut buf, n).expect("unprotect");
            assert_eq!(&buf[..m], &plain[..]);
            // 4. A flipped bit fails authentication.
            let p2 = rtp(2);
            buf[..p2.len()].copy_from_slice(&p2);
            let n = alice.protect(&mut buf, p2.len()).expect("protect");
            buf[20] ^= 1;
            assert!(bob.unprotect(&mut buf, n).is_err());
        }
    }

    /// The peer re-keys (a re-INVITE): our outbound context carries over, so packets after a
    /// sequence wrap still authenticate at the peer; a fresh one would restart the index.
    #[test]
    fn a_peer_rekey_keeps_our_outbound_index() {
        if available().is_err() {
            eprintln!("libsrtp2 not installed: skipped");
            return;
        }
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let (ka, kb, kb2) = ([7u8; MASTER_LEN], [9u8; MASTER_LEN], [4u8; MASTER_LEN]);
        let keys = |remote| SrtpKeys {
            suite,
            local: ka,
            remote,
        };
        let mut bob = SrtpLeg::new(SrtpKeys {
            suite,
            local: kb,
            remote: ka,
        })
        .expect("b");
        let mut buf = [0u8; 2048];
        let mut send = |leg: &mut SrtpLeg, bob: &mut SrtpLeg, seq: u16| {
            let p = rtp(seq);
            buf[..p.len()].copy_from_slice(&p);
            let n = leg.protect(&mut buf, p.len()).expect("protect");
            bob.unprotect(&mut buf, n).is_ok()
        };
        // 1. Alice sends up to the sequence wrap (Bob's index now has rollover 1 coming).
        let mut alice = SrtpLeg::new(keys(kb)).expect("a");
        assert!(send(&mut alice, &mut bob, 65534));
        assert!(send(&mut alice, &mut bob, 65535));
        // 2. Bob re-keys his side: Alice's new leg takes over her outbound context, and her
        //    packet after the wrap (rollover 1) authenticates.
        let mut rekeyed = SrtpLeg::new(keys(kb2)).expect("a2");
        rekeyed.keep_outbound_of(alice);
        assert!(send(&mut rekeyed, &mut bob, 0));
        // 3. Without the carry-over the same packet goes out with rollover 0 and is refused.
        let mut bob2 = SrtpLeg::new(SrtpKeys {
            suite,
            local: kb,
            remote: ka,
        })
        .expect("b2");
        let mut old = SrtpLeg::new(keys(kb)).expect("a3");
        assert!(send(&mut old, &mut bob2, 65534));
        assert!(send(&mut old, &mut bob2, 65535));
        let mut fresh = SrtpLeg::new(keys(kb2)).expect("a4");
        assert!(!send(&mut fresh, &mut bob2, 0));
    }
}
