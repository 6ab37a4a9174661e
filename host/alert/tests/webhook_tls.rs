//! Webhooks over TLS: a real rustls receiver on loopback with a self-signed
//! certificate. Trusted through `ca_file`, the alert arrives; without it the
//! handshake fails and every attempt is counted as failed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use remora_alert::{Alert, AlertConfig, AlertHub, Severity};
use remora_core::Timestamp;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

struct Receiver {
    port: u16,
    cert_pem: String,
    /// The request the receiver read, or the handshake error it saw.
    done: JoinHandle<Result<String, String>>,
}

/// A one-shot HTTPS receiver for 127.0.0.1 that answers 200.
fn receiver() -> Receiver {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let done = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let conn = ServerConnection::new(Arc::new(cfg)).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req);
            let complete = text
                .find("\r\n\r\n")
                .is_some_and(|i| text[i + 4..].ends_with('}'));
            if complete || n == 0 {
                break;
            }
        }
        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&req).into_owned())
    });
    Receiver {
        port,
        cert_pem,
        done,
    }
}

fn alert(summary: &str) -> Alert {
    Alert {
        id: 0,
        rule: "tls-test".into(),
        source: "rules".into(),
        severity: Severity::Critical,
        summary: summary.into(),
        entry_ids: vec![42],
        labels: vec![("team".into(), "web".into())],
        at: Timestamp::from_micros(1),
    }
}

fn hub(url: &str, ca_file: Option<&Path>, attempts: u32) -> AlertHub {
    let ca = ca_file
        .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    let cfg = AlertConfig::parse(
        &format!(
            "allow_hosts = [\"127.0.0.1\"]\n[[webhook]]\nname = \"tls\"\nurl = \"{url}\"\n\
             backoff = \"50ms\"\nattempts = {attempts}\n{ca}"
        ),
        "t",
    )
    .unwrap();
    AlertHub::from_config(&cfg).unwrap()
}

fn wait_idle(hub: &AlertHub) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hub.idle() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn https_webhook_trusting_its_ca_file_delivers() {
    let r = receiver();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &r.cert_pem).unwrap();
    let hub = hub(&format!("https://127.0.0.1:{}/hook", r.port), Some(&ca), 3);
    hub.raise(alert("secret read failed"));
    let req = r.done.join().unwrap().expect("receiver got a request");
    assert!(req.starts_with("POST /hook HTTP/1.1\r\n"), "{req}");
    let body: serde_json::Value =
        serde_json::from_str(&req[req.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["summary"], "secret read failed", "{body}");
    assert_eq!(body["entry_ids"][0], 42, "{body}");
    wait_idle(&hub);
    let k = hub.counters();
    assert_eq!((k.delivered, k.dropped), (1, 0), "{k:?}");
}

#[test]
fn https_webhook_with_an_untrusted_certificate_fails_and_counts() {
    let r = receiver();
    let hub = hub(&format!("https://127.0.0.1:{}/hook", r.port), None, 1);
    hub.raise(alert("never delivered"));
    let seen = r.done.join().unwrap();
    assert!(seen.is_err(), "the handshake must fail: {seen:?}");
    wait_idle(&hub);
    let k = hub.counters();
    assert_eq!((k.delivered, k.dropped), (0, 1), "{k:?}");
}

#[test]
fn ca_file_errors_name_the_file_and_the_url() {
    let bad_scheme = AlertConfig::parse(
        "allow_hosts = [\"127.0.0.1\"]\n[[webhook]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/h\"\nca_file = \"/x.pem\"\n",
        "t",
    )
    .unwrap();
    let e = AlertHub::from_config(&bad_scheme)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("ca_file") && e.contains("http://127.0.0.1:9/h"),
        "{e}"
    );

    let missing = AlertConfig::parse(
        "allow_hosts = [\"127.0.0.1\"]\n[[webhook]]\nname = \"w\"\nurl = \"https://127.0.0.1:9/h\"\nca_file = \"/nonexistent/ca.pem\"\n",
        "t",
    )
    .unwrap();
    let e = AlertHub::from_config(&missing).err().unwrap().to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");

    let scheme = AlertConfig::parse(
        "allow_hosts = [\"127.0.0.1\"]\n[[webhook]]\nname = \"w\"\nurl = \"ftp://127.0.0.1/h\"\n",
        "t",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        scheme.contains("ftp://127.0.0.1/h") && scheme.contains("https://"),
        "{scheme}"
    );
}
