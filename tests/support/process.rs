//! `prescaler run`, the release binary, as its own process against the fake API served over HTTP
//! and a Prometheus; killed when dropped, so that no test leaves one running.

use super::fake_api::FakeApi;

/// `prescaler run` without leader election (one replica), serving its metrics on a free port,
/// with `args` added.
pub async fn operator_process(api: &FakeApi, prometheus: &str, args: &[&str]) -> OperatorProcess {
    spawn(
        api,
        prometheus,
        None,
        &[&["--no-leader-election"], args].concat(),
    )
    .await
}

/// One replica of several, `identity`, taking part in leader election (and its shards) through
/// Leases in the namespace `ops`; its requests are logged as `via` its identity.
pub async fn operator_replica(
    api: &FakeApi,
    prometheus: &str,
    identity: &str,
    args: &[&str],
) -> OperatorProcess {
    let election = ["--identity", identity, "--lease-namespace", "ops"];
    spawn(api, prometheus, Some(identity), &[&election, args].concat()).await
}

async fn spawn(
    api: &FakeApi,
    prometheus: &str,
    via: Option<&str>,
    args: &[&str],
) -> OperatorProcess {
    let kubeconfig_dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.serve_http_as(kubeconfig_dir.path(), via).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_prescaler"))
        .args(["run", "--prometheus-url", prometheus])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    OperatorProcess {
        child,
        port,
        _kubeconfig_dir: kubeconfig_dir,
    }
}

pub struct OperatorProcess {
    child: std::process::Child,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    pub port: u16,
    _kubeconfig_dir: tempfile::TempDir,
}

impl OperatorProcess {
    /// Its `/metrics` as text; empty when it does not answer within a second (not yet
    /// listening, or stopped).
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let read = || -> std::io::Result<String> {
            let timeout = std::time::Duration::from_secs(1);
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
            let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        };
        read().unwrap_or_default()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-TERM`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal}");
    }
}

impl std::ops::Deref for OperatorProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.child
    }
}

impl std::ops::DerefMut for OperatorProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.child
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        // A stopped process is killed all the same (SIGKILL reaches it), and reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
