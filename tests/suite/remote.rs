//! The Open Inference Protocol client against a real MLServer (installed by scripts/setup in
//! target/tools/mlserver, serving models/mlserver with ONNX Runtime), started and stopped
//! here on free loopback ports.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cascade::remote::{Endpoint, RestClient, Timeouts};
use cascade::runtime::{LoadOptions, Model, Preprocessor};
use cascade::{decode_file, Error, ModelSpec};

use crate::common;

/// A free loopback port (bound, read, released: the server takes it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An MLServer serving `models/mlserver`, stopped (SIGTERM) when dropped.
struct MlServer {
    child: Child,
    http: u16,
}

impl MlServer {
    fn start() -> MlServer {
        let bin = common::root().join("target/tools/mlserver/bin/mlserver");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup",
            bin.display()
        );
        let (http, grpc, metrics) = (free_port(), free_port(), free_port());
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
        let server = MlServer { child, http };
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
        server
    }

    fn endpoint(&self, model: &str) -> Endpoint {
        format!("http://127.0.0.1:{}/v2/models/{model}", self.http)
            .parse()
            .unwrap()
    }

    fn client(&self, model: &str) -> RestClient {
        RestClient::new(self.endpoint(model), None, Timeouts::default())
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

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap()
}

#[test]
fn mlserver_answers_what_the_local_model_answers_and_refuses_clearly() {
    let server = MlServer::start();
    let client = server.client("efficientnet-lite2");
    let meta = client.metadata().unwrap();
    assert_eq!(meta.inputs[0].name, "input");
    assert_eq!(meta.inputs[0].shape, [1, 3, 260, 260]);

    // The board preprocesses; only the tensor travels. The server's ONNX Runtime and the
    // local tract give the same class, and logits within float noise.
    let spec = ModelSpec::new(common::model("efficientnet-lite2"));
    let mut local = Model::load(&spec, LoadOptions::default()).unwrap();
    let mut pre = Preprocessor::new(local.input().clone());
    let shape = local.input().shape();
    let photos: Vec<PathBuf> = common::sample_set(8)
        .samples
        .iter()
        .map(|s| s.path.clone())
        .collect();
    for photo in &photos {
        let image = decode_file(photo).unwrap();
        let tensor = pre.run(&image).unwrap().to_vec();
        let remote = client.infer("input", &shape, &tensor).unwrap();
        let here = local.infer(&tensor).unwrap();
        assert_eq!(remote.len(), here.len());
        assert_eq!(argmax(&remote), argmax(here), "{}", photo.display());
        let worst = remote
            .iter()
            .zip(here)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-2,
            "{}: logits differ by {worst}",
            photo.display()
        );
    }

    // A model the server does not have: the status and its JSON body, in one line.
    let e = server.client("no-such-model").ready().unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            Error::Remote {
                status: Some(404),
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("not found"), "{text}");
    // A tensor of the wrong shape: refused by the server, reported with its reason.
    let e = client
        .infer("input", &[1, 3, 8, 8], &[0.0; 192])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Remote {
                status: Some(_),
                ..
            }
        ),
        "{e}"
    );

    // Server gone: a clear error within the connect timeout, not a hang.
    let endpoint = server.endpoint("efficientnet-lite2");
    drop(server);
    let gone = RestClient::new(endpoint, None, Timeouts::default());
    let e = gone.ready().unwrap_err();
    assert!(matches!(e, Error::Remote { status: None, .. }), "{e}");
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
}
