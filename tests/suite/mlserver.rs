//! An MLServer for tests (installed by scripts/setup in target/tools/mlserver, serving
//! models/mlserver with ONNX Runtime), started on free loopback ports and stopped with
//! SIGTERM when dropped. Shared by the protocol tests and the cascade-with-a-remote-stage
//! tests.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cascade::remote::{Access, Endpoint, GrpcClient, RestClient};

use crate::common;

/// A free loopback port (bound, read, released: the server takes it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An MLServer serving `models/mlserver`, stopped (SIGTERM) when dropped.
pub struct MlServer {
    child: Child,
    pub http: u16,
    /// The v2 gRPC service's port.
    pub grpc: u16,
    /// The server's output, read if it exits early; removed when dropped.
    log: tempfile::NamedTempFile,
}

/// How long a server may take to load its model: a start-up wait, not a timing check. Python
/// importing ONNX Runtime, gRPC and the web stack on a 2-core machine that is also compiling
/// has taken over 90 s.
const READY_WITHIN: Duration = Duration::from_secs(240);

impl MlServer {
    /// On free ports. A server that exits before its model is ready (another process took a
    /// port between `free_port` and the server binding it) is started again on new ones.
    pub fn start() -> MlServer {
        let mut last = String::new();
        for _ in 0..3 {
            match MlServer::launch(free_port(), free_port()) {
                Ok(server) => return server,
                Err(log) => last = log,
            }
        }
        panic!(
            "MLServer exited before its model was ready, three times; the last log ends:\n{last}"
        )
    }

    /// On a given HTTP port (a restart where the last one was).
    pub fn start_on(http: u16) -> MlServer {
        MlServer::start_on_ports(http, free_port())
    }

    /// On given HTTP and gRPC ports (a restart where the last one was).
    pub fn start_on_ports(http: u16, grpc: u16) -> MlServer {
        MlServer::launch(http, grpc).unwrap_or_else(|log| {
            panic!("MLServer exited before its model was ready; its log ends:\n{log}")
        })
    }

    /// Starts a server and waits for its model over HTTP and gRPC; the end of its log if it
    /// exits first.
    fn launch(http: u16, grpc: u16) -> Result<MlServer, String> {
        let bin = common::root().join("target/tools/mlserver/bin/mlserver");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup",
            bin.display()
        );
        let metrics = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(&bin)
            .args(["start", "."])
            .current_dir(common::root().join("models/mlserver"))
            .env("MLSERVER_HTTP_PORT", http.to_string())
            .env("MLSERVER_GRPC_PORT", grpc.to_string())
            .env("MLSERVER_METRICS_PORT", metrics.to_string())
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("the log file"))
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("mlserver starts");
        let mut server = MlServer {
            child,
            http,
            grpc,
            log,
        };
        let deadline = Instant::now() + READY_WITHIN;
        // The server reports live before the model is loaded: wait for the model, then over
        // gRPC, which listens on its own.
        let rest = server.client("efficientnet-lite2");
        let grpc = server.grpc_client("efficientnet-lite2");
        while rest.ready().is_err() || grpc.ready().is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let text = std::fs::read_to_string(server.log.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!("({status})\n{}", tail.join("\n")));
            }
            assert!(
                Instant::now() < deadline,
                "MLServer's model not ready over HTTP and gRPC in {} s",
                READY_WITHIN.as_secs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(server)
    }

    pub fn endpoint(&self, model: &str) -> Endpoint {
        format!("http://127.0.0.1:{}/v2/models/{model}", self.http)
            .parse()
            .unwrap()
    }

    pub fn client(&self, model: &str) -> RestClient {
        RestClient::new(self.endpoint(model), &Access::default())
    }

    /// The same model over the v2 gRPC service.
    pub fn grpc_endpoint(&self, model: &str) -> Endpoint {
        format!("grpc://127.0.0.1:{}/{model}", self.grpc)
            .parse()
            .unwrap()
    }

    pub fn grpc_client(&self, model: &str) -> GrpcClient {
        GrpcClient::new(self.grpc_endpoint(model), &Access::default()).unwrap()
    }
}

impl Drop for MlServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
