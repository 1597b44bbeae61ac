//! The moto server (AWS on localhost), started from the project venv on a free port.
//!
//! Plain threads and `std::process`, no async runtime: test binaries keep one moto in a
//! static shared by tests that each run their own tokio runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::paths;

/// A running moto; killed when dropped. It also exits by itself when the process that
/// started it goes away (see moto_server.py), so a static one never outlives its test binary.
pub struct Moto {
    endpoint: String,
    child: Child,
}

impl Moto {
    pub fn start() -> Result<Moto> {
        paths::ensure_venv()?;
        let script = paths::repo_root().join("infra/local/moto_server.py");
        let started = Instant::now();
        let mut child = Command::new(paths::python())
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Reads the port, then keeps draining moto's request log so it never blocks on a full pipe.
        std::thread::Builder::new()
            .name("moto-stderr".into())
            .spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.trim().strip_prefix("* Running on http://127.0.0.1:") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(
                                rest.trim()
                                    .parse::<u16>()
                                    .map_err(|e| format!("{line:?}: {e}")),
                            );
                        }
                    } else if line.contains("Traceback") || line.contains("Error") {
                        tracing::debug!(target: "moto", "{line}");
                    }
                }
            })?;
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => bail!("moto printed a bad port: {e}"),
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "moto did not print its port within 60 s (or exited: {:?})",
                    child.try_wait()
                );
            }
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_ready(port).with_context(|| format!("moto at {endpoint}"))?;
        tracing::debug!("moto ready at {endpoint} after {:?}", started.elapsed());
        Ok(Moto { endpoint, child })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /moto-api/` until it answers 200.
fn wait_ready(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = (|| -> std::io::Result<bool> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head)?;
            Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
        })()
        .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow!("no answer within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
