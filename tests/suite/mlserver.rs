//! An MLServer for tests (installed by scripts/setup in target/tools/mlserver, serving
//! models/mlserver with ONNX Runtime), started on free loopback ports and stopped with
//! SIGTERM when dropped. Shared by the protocol tests and the cascade-with-a-remote-stage
//! tests.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cascade::remote::{Endpoint, GrpcClient, RestClient, Timeouts};

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
}

impl MlServer {
    pub fn start() -> MlServer {
        MlServer::start_on(free_port())
    }

    /// On a given HTTP port (a restart where the last one was).
    pub fn start_on(http: u16) -> MlServer {
        MlServer::start_on_ports(http, free_port())
    }

    /// On given HTTP and gRPC ports (a restart where the last one was).
    pub fn start_on_ports(http: u16, grpc: u16) -> MlServer {
        let bin = common::root().join("target/tools/mlserver/bin/mlserver");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup",
            bin.display()
        );
        let metrics = free_port();
        let child = Command::new(&bin)
            .args(["start", "."])
            .current_dir(common::root().join("models/mlserver"))
            .env("MLSERVER_HTTP_PORT", http.to_string())
            .env("MLSERVER_GRPC_PORT", grpc.to_string())
            .env("MLSERVER_METRICS_PORT", metrics.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mlserver starts");
        let server = MlServer { child, http, grpc };
        // The server reports live before the model is loaded: wait for the model.
        let client = server.client("efficientnet-lite2");
        let deadline = Instant::now() + Duration::from_secs(90);
        while client.ready().is_err() {
            assert!(
                Instant::now() < deadline,
                "MLServer's model not ready in 90 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // And over gRPC, which listens on its own.
        let client = server.grpc_client("efficientnet-lite2");
        while client.ready().is_err() {
            assert!(
                Instant::now() < deadline,
                "MLServer's gRPC service not ready in 90 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    pub fn endpoint(&self, model: &str) -> Endpoint {
        format!("http://127.0.0.1:{}/v2/models/{model}", self.http)
            .parse()
            .unwrap()
    }

    pub fn client(&self, model: &str) -> RestClient {
        RestClient::new(self.endpoint(model), None, Timeouts::default())
    }

    /// The same model over the v2 gRPC service.
    pub fn grpc_endpoint(&self, model: &str) -> Endpoint {
        format!("grpc://127.0.0.1:{}/{model}", self.grpc)
            .parse()
            .unwrap()
    }

    pub fn grpc_client(&self, model: &str) -> GrpcClient {
        GrpcClient::new(self.grpc_endpoint(model), None, Timeouts::default()).unwrap()
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
