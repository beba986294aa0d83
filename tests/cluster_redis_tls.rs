//! Cluster mode over `rediss://`: a real redis-server serving TLS only on loopback (Debian's
//! build has TLS), a test CA made with rcgen. Two instances trusting the CA
//! (`cluster.redis_ca_file`) share one bot's limits over TLS; a server whose certificate chains
//! to another CA is refused at start with a clear TLS error, as is a CA file without a
//! certificate; the configuration refuses a CA file with a clear-text `redis://` URL.

use dialgate::call::limiter::{Limits, RateLimiter, Refusal};
use dialgate::cluster::{ClusterError, RedisCluster, RedisSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BOT: &str = "tls-bot";
/// How long redis-server may take to open its TLS port.
const START_WAIT: Duration = Duration::from_secs(10);

/// A CA (its PEM) and a server certificate for 127.0.0.1 it signed (PEM, key PEM).
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Each CA its own name: a server of another CA is then one of an unknown issuer.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("dialgate test CA {n}"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// redis-server with TLS only (`--port 0`), clients not asked for certificates.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(pki: &Pki) -> TlsRedis {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        let (ca, cert, key) = (
            write("ca.pem", &pki.ca_pem),
            write("server.pem", &pki.cert_pem),
            write("server.key", &pki.key_pem),
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let log = std::fs::File::create(dir.path().join("redis.log")).expect("log");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca)
            .args(["--tls-auth-clients", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; run scripts/install-peers)");
        let mut s = TlsRedis {
            child,
            port,
            _dir: dir,
        };
        // Up when its TLS port accepts connections (the handshake is the client's business).
        let deadline = Instant::now() + START_WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!(
                    "redis-server exited ({status}); was it built without TLS? log: {}",
                    std::fs::read_to_string(s._dir.path().join("redis.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no TLS port within {START_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s.port = port;
        s
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn join(url: &str, id: &str, ca: Option<&Path>) -> Result<Arc<RedisCluster>, ClusterError> {
    RedisCluster::start(
        RedisSettings {
            url: url.into(),
            instance_id: id.into(),
            lease: Duration::from_secs(5),
            ca_file: ca.map(Path::to_path_buf),
        },
        CancellationToken::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_shared_over_tls_with_the_configured_ca() {
    // 1. A TLS-only Redis and the CA that signed its certificate, in a file.
    let pki = pki();
    let redis = TlsRedis::start(&pki);
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write CA");

    // 2. Two instances join over rediss:// trusting that CA.
    let a = join(&redis.url(), "a", Some(&ca)).await.expect("a joins");
    let b = join(&redis.url(), "b", Some(&ca)).await.expect("b joins");

    // 3. The bot allows 2 at once: one permit each, and the third is refused on either.
    let limits = Limits {
        max_cps: 100.0,
        max_concurrent: 2,
    };
    let pa = a
        .limiter
        .try_acquire(BOT, limits)
        .await
        .expect("a's permit");
    let _pb = b
        .limiter
        .try_acquire(BOT, limits)
        .await
        .expect("b's permit");
    for node in [&a, &b] {
        assert!(
            matches!(
                node.limiter.try_acquire(BOT, limits).await,
                Err(Refusal::Concurrency { .. })
            ),
            "a third call over TLS must be refused"
        );
    }

    // 4. A call that ends frees its permit for the other instance.
    drop(pa);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match b.limiter.try_acquire(BOT, limits).await {
            Ok(_) => break,
            Err(Refusal::Concurrency { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(r) => panic!("a's permit did not come back: {r:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_another_ca_is_refused_with_a_clear_error() {
    // 1. Redis with a certificate of one CA; the instance trusts another one.
    let redis = TlsRedis::start(&pki());
    let dir = tempfile::tempdir().expect("temp dir");
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, pki().ca_pem).expect("write CA");

    // 2. Joining fails at once with a TLS error naming the cause and the setting.
    let err = match join(&redis.url(), "x", Some(&other)).await {
        Ok(_) => panic!("joined a server whose certificate the CA did not sign"),
        Err(e) => e,
    };
    let text = err.to_string();
    println!("refused as: {text}");
    assert!(matches!(err, ClusterError::Tls(_)), "{err:?}");
    assert!(
        text.contains("certificate") && text.contains("cluster.redis_ca_file"),
        "{text}"
    );

    // 3. A CA file that holds no certificate is named as such.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write junk");
    match join(&redis.url(), "y", Some(&junk)).await {
        Err(ClusterError::CaFile { detail, .. }) => {
            assert!(detail.contains("no certificate"), "{detail}")
        }
        Err(e) => panic!("expected a CA-file error, got {e}"),
        Ok(_) => panic!("joined with an empty CA file"),
    }
}

#[test]
fn a_ca_file_needs_a_tls_url_and_must_exist() {
    // 1. A clear-text Redis URL with a CA file that does not exist.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("dialgate.yaml");
    std::fs::write(
        &cfg,
        "server:\n  sip:\n    listen:\n      - { transport: udp, address: \"127.0.0.1:5060\" }\n  \
         http:\n    listen: \"127.0.0.1:8443\"\n    plain_http: true\n\
         cluster:\n  instance_id: dg-1\n  redis_url: \"redis://127.0.0.1:6379\"\n  \
         redis_ca_file: missing-ca.pem\n",
    )
    .expect("write config");

    // 2. Both mistakes are reported at the key.
    let errors: Vec<String> = match dialgate::config::load(&cfg) {
        Ok(_) => panic!("loaded a CA file with redis://"),
        Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
    };
    let at_key = |what: &str| {
        errors
            .iter()
            .any(|l| l.contains("cluster.redis_ca_file") && l.contains(what))
    };
    assert!(at_key("does not exist"), "{errors:#?}");
    assert!(at_key("rediss://"), "{errors:#?}");
}
