//! A private MIT KDC for tests, started by scripts/kdc.sh in a temporary directory and killed by
//! PID on drop. Shared by the GSSAPI unit tests (included with `#[path]`) and the doctor
//! integration test.
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;

pub struct Kdc {
    pub dir: tempfile::TempDir,
    pub pid: u32,
}

impl Kdc {
    /// Realm EXAMPLE.COM with `kafka/<host>` for each of `hosts`, `client` and `alice`. Retries on
    /// a port taken between choosing and binding; fails loudly when the KDC cannot start.
    pub fn start(hosts: &[&str]) -> Kdc {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kdc.sh");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let output = Command::new("bash")
                .arg(&script)
                .arg(dir.path())
                .arg(port.to_string())
                .args(hosts)
                .output()
                .expect("run bash scripts/kdc.sh");
            if output.status.success() {
                let pid = std::fs::read_to_string(dir.path().join("kdc.pid")).expect("kdc.pid");
                let pid = pid.trim().parse().expect("numeric pid");
                return Kdc { dir, pid };
            }
            last_error = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if !last_error.contains("already in use") {
                break;
            }
        }
        panic!("scripts/kdc.sh failed (MIT KDC needed: scripts/install-deps.sh): {last_error}");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// A port free for both TCP and UDP on 127.0.0.1 (the KDC listens on both).
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
