//! Real servers and a real `remora tap` for the live end-to-end tests, all
//! on 127.0.0.1; every process is killed when its guard drops.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{remora_bin, TempDir};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with kill(1): "TERM", "INT", "KILL".
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.name);
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn need(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run scripts/test.sh (README command 2), which installs it"
    );
}

/// Polls `f` every 50 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// nginx on 127.0.0.1:port: `/` is a page, `/fail` answers 500, anything
/// missing 404.
pub fn nginx(dir: &Path, port: u16) -> Proc {
    need("nginx");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>remora live test</h1>\n").unwrap();
    // nginx workers run unprivileged: let them read the pages.
    for p in [dir, &www] {
        Command::new("chmod").arg("755").arg(p).status().unwrap();
    }
    Command::new("chmod")
        .arg("644")
        .arg(www.join("index.html"))
        .status()
        .unwrap();
    let d = dir.display();
    let conf = format!(
        "worker_processes 1; error_log {d}/error.log; pid {d}/nginx.pid;\n\
         events {{ worker_connections 256; }}\n\
         http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n\
           fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
           server {{ listen 127.0.0.1:{port}; root {d}/www; location = /fail {{ return 500; }} }} }}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let p = Proc {
        child,
        name: "nginx",
    };
    assert!(
        wait_until(Duration::from_secs(10), || port_open(port)),
        "nginx did not start on {port}"
    );
    p
}

/// redis-server on 127.0.0.1:port, nothing persisted.
pub fn redis(port: u16) -> Proc {
    need("redis-server");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let p = Proc {
        child,
        name: "redis-server",
    };
    assert!(
        wait_until(Duration::from_secs(10), || port_open(port)),
        "redis-server did not start on {port}"
    );
    p
}

/// `remora tap ARGS --listen 127.0.0.1:api --data-dir DIR`, waited for
/// until /healthz answers. Its stderr is collected.
pub struct Tap {
    pub proc: Proc,
    pub api: u16,
    pub stderr: Arc<Mutex<String>>,
}

impl Tap {
    pub fn start(args: &[&str], api: u16, data_dir: &Path) -> Tap {
        let mut child = Command::new(remora_bin())
            .arg("tap")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start remora tap");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut tap = Tap {
            proc: Proc {
                child,
                name: "remora tap",
            },
            api,
            stderr,
        };
        let up = wait_until(Duration::from_secs(60), || {
            tap.proc.child.try_wait().ok().flatten().is_none() && port_open(api)
        });
        assert!(
            up,
            "remora tap did not start serving on {api}: {}",
            tap.stderr()
        );
        tap
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    /// POST /graphql with curl; the parsed response.
    pub fn graphql(&self, query: &str) -> Value {
        let body = serde_json::json!({ "query": query }).to_string();
        let out = curl(&[
            "-sS",
            "-H",
            "content-type: application/json",
            "--data-binary",
            &body,
            &format!("{}/graphql", self.url()),
        ]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "GraphQL answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

pub fn curl(args: &[&str]) -> Output {
    need("curl");
    Command::new("curl")
        .args(["--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

pub fn redis_cli(port: u16, args: &[&str]) -> String {
    need("redis-cli");
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Lines a child prints, each with the instant it arrived.
pub struct Follower {
    pub proc: Proc,
    pub lines: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Follower {
    /// `remora query --follow --format jsonl -n 0 FILTER`.
    pub fn start(server: &str, filter: &str) -> Follower {
        Self::spawn(&[
            "query", "--follow", "--format", "jsonl", "-n", "0", "--server", server, filter,
        ])
    }

    /// `remora ARGS`, one JSON value per stdout line.
    pub fn spawn(args: &[&str]) -> Follower {
        let mut child = Command::new(remora_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start remora query --follow");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push((Instant::now(), v));
                }
            }
        });
        Follower {
            proc: Proc {
                child,
                name: "remora --follow",
            },
            lines,
        }
    }

    /// When the first entry satisfying `f` arrived.
    pub fn arrival(&self, f: impl Fn(&Value) -> bool) -> Option<Instant> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|(_, v)| f(v))
            .map(|(t, _)| *t)
    }
}

pub fn temp(tag: &str) -> (TempDir, PathBuf) {
    let t = TempDir::new(tag);
    let p = t.path().to_path_buf();
    (t, p)
}
