//! The Open Inference Protocol client against a real MLServer (installed by scripts/setup in
//! target/tools/mlserver, serving models/mlserver with ONNX Runtime), started and stopped
//! here on free loopback ports.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cascade::remote::{
    Access, Client, Endpoint, GrpcClient, Outcome, RemoteStage, RestClient, Timeouts, Unanswered,
};
use cascade::runtime::{LoadOptions, Model, Preprocessor};
use cascade::{decode_file, Error, ModelSpec};

use crate::common;
use crate::mlserver::{free_port, MlServer};

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
    let gone = RestClient::new(endpoint, &Access::default());
    let e = gone.ready().unwrap_err();
    assert!(matches!(e, Error::Remote { status: None, .. }), "{e}");
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
}

/// A bearer-token gate in front of a server: what a site's ingress does. Refuses a request
/// without `Authorization: Bearer <token>` (401, JSON body) and forwards the rest, one
/// request per connection. Logs nothing.
pub struct TokenGate {
    port: u16,
}

impl TokenGate {
    pub fn start(upstream: u16, token: &'static str) -> TokenGate {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::TcpStream;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                let mut length = 0usize;
                let mut authorized = false;
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = l.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if l.trim_end() == format!("Authorization: Bearer {token}")
                        || l.trim_end() == format!("authorization: Bearer {token}")
                    {
                        authorized = true;
                    }
                    let end = l == "\r\n";
                    if !lower.starts_with("connection:") {
                        head.push(l);
                    }
                    if end {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut client = client;
                if !authorized {
                    let msg = r#"{"error":"missing or wrong bearer token"}"#;
                    let _ = write!(
                        client,
                        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{msg}",
                        msg.len()
                    );
                    continue;
                }
                let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let last = head.len() - 1;
                head.insert(last, "Connection: close\r\n".into());
                let _ = up.write_all(head.concat().as_bytes());
                let _ = up.write_all(&body);
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer);
                // Tell the client this connection ends with this answer.
                if let Some(i) = answer.windows(2).position(|w| w == b"\r\n") {
                    answer.splice(i + 2..i + 2, b"connection: close\r\n".iter().copied());
                }
                let _ = client.write_all(&answer);
            }
        });
        TokenGate { port }
    }

    pub fn endpoint(&self) -> Endpoint {
        format!(
            "http://127.0.0.1:{}/v2/models/efficientnet-lite2",
            self.port
        )
        .parse()
        .unwrap()
    }
}

#[test]
fn a_token_protected_server_takes_the_token_and_no_message_shows_it() {
    let server = MlServer::start();
    let gate = TokenGate::start(server.http, "t0ps3cret");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0ps3cret\n").unwrap();

    // Without the token: refused, with the server's reason, and nothing secret in it.
    let e = RestClient::new(gate.endpoint(), &Access::default())
        .ready()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Remote {
                status: Some(401),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    // A wrong token: refused too, and the error does not echo it.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-one\n").unwrap();
    let token = cascade::remote::Token::from_file(&wrong).unwrap();
    let e = RestClient::new(gate.endpoint(), &Access::default().with_token(token))
        .ready()
        .unwrap_err();
    assert!(!format!("{e} {e:?}").contains("not-the-one"), "{e:?}");

    // With it, through the CLI (file and environment), at full verbosity: accepted, and
    // neither stdout nor stderr carries the token.
    let tench = common::sample_dir().join("n01440764_tench.JPEG");
    let url = gate.endpoint().to_string();
    let lite2 = common::model_arg("efficientnet-lite2");
    let base = [
        "-vv",
        "time",
        "--model",
        &lite2,
        common::arg(&tench),
        "--runs",
        "2",
        "--json",
        "--remote",
        &url,
    ];
    let with_file = [&base[..], &["--token-file", common::arg(&token_file)]].concat();
    let out = common::cascade(&with_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["same_class"], true);
    assert_eq!(v["remote"][0]["count"], 2);
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!everything.contains("t0ps3cret"), "{everything}");
    let with_env = [&base[..], &["--token-env", "CASCADE_TEST_TOKEN"]].concat();
    let out = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(&with_env)
        .env("CASCADE_TEST_TOKEN", "t0ps3cret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("t0ps3cret"));
}

const LITE2_SHAPE: [usize; 4] = [1, 3, 260, 260];

fn tensor() -> Vec<f32> {
    vec![0.1; LITE2_SHAPE.iter().product()]
}

fn unanswered_reason(o: Outcome) -> String {
    match o {
        Outcome::Unanswered(Unanswered::Failed { reason }) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The protocol's two bindings, for the tests that hold for both.
#[derive(Debug, Clone, Copy)]
enum Binding {
    Rest,
    Grpc,
}

impl Binding {
    /// `model` on a server listening on these ports, over this binding.
    fn endpoint(self, http: u16, grpc: u16, model: &str) -> Endpoint {
        match self {
            Binding::Rest => format!("http://127.0.0.1:{http}/v2/models/{model}"),
            Binding::Grpc => format!("grpc://127.0.0.1:{grpc}/{model}"),
        }
        .parse()
        .unwrap()
    }

    fn client(self, server: &MlServer, model: &str) -> Client {
        let endpoint = match self {
            Binding::Rest => server.endpoint(model),
            Binding::Grpc => server.grpc_endpoint(model),
        };
        Client::new(endpoint, &Access::default()).unwrap()
    }

    /// How the binding says a model is not there.
    fn not_found(self) -> &'static str {
        match self {
            Binding::Rest => "HTTP 404",
            Binding::Grpc => "gRPC NOT_FOUND",
        }
    }
}

/// A stage whose server is not started, then started, killed and restarted on the same
/// ports: it never fails the input, answers whenever the server is there, and counts.
fn falls_back_while_the_server_is_down_and_uses_it_again(binding: Binding) {
    let (http, grpc) = (free_port(), free_port());
    let endpoint = binding.endpoint(http, grpc, "efficientnet-lite2");
    let client = Client::new(endpoint, &Access::default()).unwrap();
    // Not started: the stage still builds, and backs off instead of failing each input.
    let mut stage = RemoteStage::connect(client, LITE2_SHAPE).unwrap();
    assert!(matches!(
        stage.infer(&tensor()).unwrap(),
        Outcome::Unanswered(Unanswered::BackingOff { .. })
    ));
    stage.retry_now();
    let reason = unanswered_reason(stage.infer(&tensor()).unwrap());
    assert!(reason.contains("cannot reach the server"), "{reason}");

    // Started: answered (the shape is checked on first contact), on the same connection
    // object that failed before, with the logits REST gives for the same tensor.
    let server = MlServer::start_on_ports(http, grpc);
    stage.retry_now();
    let Outcome::Answered(logits) = stage.infer(&tensor()).unwrap() else {
        panic!("no answer from a ready server")
    };
    assert_eq!(logits.len(), 1000);
    let over_rest = server
        .client("efficientnet-lite2")
        .infer("input", &LITE2_SHAPE, &tensor())
        .unwrap();
    assert_eq!(argmax(&logits), argmax(&over_rest));
    // Killed mid-stream: a fallback, then a back-off; restarted: answered again.
    drop(server);
    let reason = unanswered_reason(stage.infer(&tensor()).unwrap());
    assert!(reason.contains("cannot reach the server"), "{reason}");
    assert!(matches!(
        stage.infer(&tensor()).unwrap(),
        Outcome::Unanswered(Unanswered::BackingOff { .. })
    ));
    let _server = MlServer::start_on_ports(http, grpc);
    stage.retry_now();
    assert!(matches!(
        stage.infer(&tensor()).unwrap(),
        Outcome::Answered(_)
    ));
    let s = stage.stats();
    assert_eq!((s.answered, s.skipped), (2, 2), "{s:?}");
    // Failed inputs: the one sent while nothing listened (its metadata) and the one after
    // the kill; requests: the three inference requests sent.
    assert_eq!((s.failed, s.requests), (2, 3), "{s:?}");
}

#[test]
fn over_rest_a_remote_stage_falls_back_while_its_server_is_down_and_uses_it_again() {
    falls_back_while_the_server_is_down_and_uses_it_again(Binding::Rest);
}

#[test]
fn over_grpc_a_remote_stage_falls_back_while_its_server_is_down_and_uses_it_again() {
    falls_back_while_the_server_is_down_and_uses_it_again(Binding::Grpc);
}

/// A model of another shape is refused when the stage connects, naming both shapes; a
/// model the server does not have (yet) is a fallback for each input, with the status.
#[test]
fn a_model_of_another_shape_is_a_clear_error_and_an_unready_model_a_fallback() {
    let server = MlServer::start();
    for binding in [Binding::Rest, Binding::Grpc] {
        let client = binding.client(&server, "efficientnet-lite2");
        let e = RemoteStage::connect(client, [1, 3, 224, 224])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("takes FP32 [1, 3, 260, 260]"),
            "{binding:?}: {e}"
        );
        assert!(e.contains("[1, 3, 224, 224]"), "{binding:?}: {e}");
        let client = binding.client(&server, "not-loaded");
        let mut stage = RemoteStage::connect(client, LITE2_SHAPE).unwrap();
        stage.retry_now();
        let reason = unanswered_reason(stage.infer(&tensor()).unwrap());
        assert!(
            reason.contains(binding.not_found()),
            "{binding:?}: {reason}"
        );
    }
}

/// A stand-in server that answers metadata properly and inference as told: what real
/// servers send when they fail (plain-text 5xx, FastAPI-style 422, malformed JSON) or
/// answer late.
fn fake_server(
    status: u16,
    content_type: &'static str,
    body: &'static str,
    delay: Duration,
) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut length = 0usize;
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                    break;
                }
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut sink = vec![0u8; length];
            let _ = reader.read_exact(&mut sink);
            let (status, content_type, body) = if request_line.starts_with("GET") {
                (
                    200,
                    "application/json",
                    r#"{"name":"m","inputs":[{"name":"input","datatype":"FP32","shape":[-1,3,260,260]}],"outputs":[]}"#,
                )
            } else {
                std::thread::sleep(delay);
                (status, content_type, body)
            };
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn error_bodies_slow_answers_and_malformed_json_are_fallbacks_with_their_reason() {
    let stage_on = |port: u16, timeouts: Timeouts| {
        let endpoint: Endpoint = format!("http://127.0.0.1:{port}/v2/models/m")
            .parse()
            .unwrap();
        RemoteStage::connect(
            RestClient::new(
                endpoint,
                &Access {
                    timeouts,
                    ..Access::default()
                },
            ),
            LITE2_SHAPE,
        )
        .unwrap()
    };
    let cases = [
        (
            500,
            "text/plain",
            "upstream exploded",
            "HTTP 500: upstream exploded",
        ),
        (
            422,
            "application/json",
            r#"{"detail":[{"loc":["body","inputs"],"msg":"field required"}]}"#,
            "field required",
        ),
        (503, "application/json", "", "HTTP 503)"),
        (
            200,
            "application/json",
            "{not json",
            "unreadable inference answer",
        ),
        (200, "application/json", r#"{"outputs":[]}"#, "no output"),
    ];
    for (status, content_type, body, expected) in cases {
        let port = fake_server(status, content_type, body, Duration::ZERO);
        let mut stage = stage_on(port, Timeouts::default());
        let reason = unanswered_reason(stage.infer(&tensor()).unwrap());
        assert!(reason.contains(expected), "{status} {body:?}: {reason}");
    }
    // Slower than the request timeout: a fallback that says so, not a stall.
    let port = fake_server(
        200,
        "application/json",
        r#"{"outputs":[]}"#,
        Duration::from_secs(3),
    );
    let mut stage = stage_on(
        port,
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_millis(300),
        },
    );
    let reason = unanswered_reason(stage.infer(&tensor()).unwrap());
    assert!(reason.contains("no answer in time"), "{reason}");
}

#[test]
fn mlserver_over_grpc_answers_what_the_local_model_and_rest_answer_and_refuses_clearly() {
    let server = MlServer::start();
    let client = server.grpc_client("efficientnet-lite2");
    client.ready().unwrap();
    let meta = client.metadata().unwrap();
    assert_eq!(meta.name, "efficientnet-lite2");
    assert_eq!(meta.inputs[0].name, "input");
    assert_eq!(meta.inputs[0].datatype, "FP32");
    assert_eq!(meta.inputs[0].shape, [1, 3, 260, 260]);
    assert_eq!(meta.outputs[0].shape, [1, 1000]);

    // The same tensor as raw bytes: the local tract model's class and logits within float
    // noise, and the REST binding's logits (the same ONNX Runtime on the same input).
    let rest = server.client("efficientnet-lite2");
    let spec = ModelSpec::new(common::model("efficientnet-lite2"));
    let mut local = Model::load(&spec, LoadOptions::default()).unwrap();
    let mut pre = Preprocessor::new(local.input().clone());
    let shape = local.input().shape();
    for sample in &common::sample_set(8).samples {
        let image = decode_file(&sample.path).unwrap();
        let tensor = pre.run(&image).unwrap().to_vec();
        let remote = client.infer("input", &shape, &tensor).unwrap();
        let over_rest = rest.infer("input", &shape, &tensor).unwrap();
        let here = local.infer(&tensor).unwrap();
        assert_eq!(remote.len(), here.len());
        assert_eq!(argmax(&remote), argmax(here), "{}", sample.path.display());
        let differ = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        };
        let worst = differ(&remote, here);
        assert!(
            worst < 1e-2,
            "{}: logits differ by {worst}",
            sample.path.display()
        );
        let worst = differ(&remote, &over_rest);
        assert!(
            worst < 1e-5,
            "{}: gRPC and REST differ by {worst}",
            sample.path.display()
        );
    }

    // A model the server does not have: its status named, its message kept. (MLServer 1.7
    // answers ModelReady for it with UNKNOWN and its exception's text, ModelMetadata with
    // NOT_FOUND.)
    let missing = server.grpc_client("no-such-model");
    let e = missing.metadata().unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Remote { status: None, .. }), "{text}");
    assert!(
        text.contains("no such model (or not ready) (gRPC NOT_FOUND: "),
        "{text}"
    );
    let e = missing.ready().unwrap_err().to_string();
    assert!(e.contains("(gRPC "), "{e}");
    assert!(
        e.contains("no-such-model") && e.contains("not found"),
        "{e}"
    );
    // A tensor of the wrong shape: refused by the server, reported with its reason.
    let e = client
        .infer("input", &[1, 3, 8, 8], &[0.0; 192])
        .unwrap_err()
        .to_string();
    assert!(e.contains("(gRPC "), "{e}");

    // `time` alternates in-process runs with both bindings, and each gives the local class.
    let tench = common::sample_dir().join("n01440764_tench.JPEG");
    let lite2 = common::model_arg("efficientnet-lite2");
    let (over_rest, over_grpc) = (
        server.endpoint("efficientnet-lite2").to_string(),
        server.grpc_endpoint("efficientnet-lite2").to_string(),
    );
    let out = common::cascade(&[
        "time",
        "--model",
        &lite2,
        common::arg(&tench),
        "--runs",
        "2",
        "--json",
        "--remote",
        &over_rest,
        "--remote",
        &over_grpc,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["same_class"], true);
    assert_eq!(v["remote"][0]["endpoint"], over_rest.as_str());
    assert_eq!(v["remote"][1]["endpoint"], over_grpc.as_str());
    assert_eq!(v["remote"][1]["count"], 2);
    assert_eq!(v["remote"][1]["same_class"], true);

    // Server gone: a clear error, not a hang.
    let endpoint = server.grpc_endpoint("efficientnet-lite2");
    drop(server);
    let e = client.ready().unwrap_err();
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
    let gone = GrpcClient::new(endpoint, &Access::default()).unwrap();
    let e = gone.metadata().unwrap_err();
    assert!(matches!(e, Error::Remote { status: None, .. }), "{e}");
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
}

#[test]
fn a_grpc_server_that_never_answers_costs_the_request_timeout_not_a_stall() {
    // Accepts connections, reads what comes, answers nothing: a hung server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let endpoint: Endpoint = format!("grpc://127.0.0.1:{port}/m").parse().unwrap();
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        request: Duration::from_millis(300),
    };
    let mut stage = RemoteStage::connect(
        GrpcClient::new(
            endpoint,
            &Access {
                timeouts,
                ..Access::default()
            },
        )
        .unwrap(),
        LITE2_SHAPE,
    )
    .unwrap();
    stage.retry_now();
    let reason = unanswered_reason(stage.infer(&tensor()).unwrap());
    assert!(reason.contains("no answer in time (300 ms)"), "{reason}");
}

/// The token gate for the gRPC binding: an HTTP/2 proxy that answers a call without
/// `authorization: Bearer <token>` with UNAUTHENTICATED (what a site's ingress does) and
/// forwards the rest to the server, frame by frame. Logs nothing.
struct GrpcTokenGate {
    port: u16,
}

/// Serves every connection to a new loopback port with `handle`, each as a task of a
/// current-thread tokio runtime on a thread of its own; returns the port. What the proxies
/// in front of MLServer (token gates, TLS) are built on.
pub fn serve_loopback<F, Fut>(handle: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(handle(socket));
            }
        });
    });
    port
}

impl GrpcTokenGate {
    fn start(upstream: u16, token: &'static str) -> GrpcTokenGate {
        let port = serve_loopback(move |socket| async move {
            let Ok(mut conn) = h2::server::handshake(socket).await else {
                return;
            };
            while let Some(Ok((request, respond))) = conn.accept().await {
                tokio::spawn(Self::call(request, respond, upstream, token));
            }
        });
        GrpcTokenGate { port }
    }

    async fn call(
        request: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<bytes::Bytes>,
        upstream: u16,
        token: &'static str,
    ) {
        let expected = format!("Bearer {token}");
        if request.headers().get("authorization").map(|v| v.as_bytes()) != Some(expected.as_bytes())
        {
            let refusal = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", "16")
                .header("grpc-message", "missing or wrong bearer token")
                .body(())
                .unwrap();
            let _ = respond.send_response(refusal, true);
            return;
        }
        let forward = async {
            let socket = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;
            let (up, connection) = h2::client::handshake(socket).await?;
            tokio::spawn(connection);
            let (parts, mut body) = request.into_parts();
            let mut up = up.ready().await?;
            let (answer, mut sending) =
                up.send_request(http::Request::from_parts(parts, ()), false)?;
            while let Some(chunk) = body.data().await {
                let chunk = chunk?;
                let _ = body.flow_control().release_capacity(chunk.len());
                sending.send_data(chunk, false)?;
            }
            sending.send_data(Default::default(), true)?;
            let (parts, mut body) = answer.await?.into_parts();
            let mut back = respond.send_response(http::Response::from_parts(parts, ()), false)?;
            while let Some(chunk) = body.data().await {
                let chunk = chunk?;
                let _ = body.flow_control().release_capacity(chunk.len());
                back.send_data(chunk, false)?;
            }
            match body.trailers().await? {
                Some(trailers) => back.send_trailers(trailers)?,
                None => back.send_data(Default::default(), true)?,
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        };
        let _ = forward.await;
    }

    fn endpoint(&self) -> Endpoint {
        format!("grpc://127.0.0.1:{}/efficientnet-lite2", self.port)
            .parse()
            .unwrap()
    }
}

#[test]
fn a_token_protected_grpc_server_takes_the_token_and_no_message_shows_it() {
    let server = MlServer::start();
    let gate = GrpcTokenGate::start(server.grpc, "t0ps3cret");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0ps3cret\n").unwrap();

    // Without the token: refused, with the gate's reason.
    let e = GrpcClient::new(gate.endpoint(), &Access::default())
        .unwrap()
        .ready()
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Remote { status: None, .. }), "{text}");
    assert!(
        text.contains(
            "refused the credentials (gRPC UNAUTHENTICATED: missing or wrong bearer token)"
        ),
        "{text}"
    );
    // A wrong token: refused too, and the error does not echo it.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-one\n").unwrap();
    let token = cascade::remote::Token::from_file(&wrong).unwrap();
    let client = GrpcClient::new(gate.endpoint(), &Access::default().with_token(token)).unwrap();
    let e = client.ready().unwrap_err();
    assert!(e.to_string().contains("UNAUTHENTICATED"), "{e}");
    assert!(
        !format!("{e} {e:?} {client:?}").contains("not-the-one"),
        "{e:?}"
    );

    // With it: the same logits as straight to the server.
    let token = cascade::remote::Token::from_file(&token_file).unwrap();
    let through = GrpcClient::new(gate.endpoint(), &Access::default().with_token(token)).unwrap();
    through.ready().unwrap();
    let direct = server
        .grpc_client("efficientnet-lite2")
        .infer("input", &LITE2_SHAPE, &tensor())
        .unwrap();
    assert_eq!(
        through.infer("input", &LITE2_SHAPE, &tensor()).unwrap(),
        direct
    );

    // Through the CLI at full verbosity: accepted, and neither stdout nor stderr carries it.
    let tench = common::sample_dir().join("n01440764_tench.JPEG");
    let url = gate.endpoint().to_string();
    let lite2 = common::model_arg("efficientnet-lite2");
    let out = common::cascade(&[
        "-vv",
        "time",
        "--model",
        &lite2,
        common::arg(&tench),
        "--runs",
        "2",
        "--json",
        "--remote",
        &url,
        "--token-file",
        common::arg(&token_file),
    ]);
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{everything}");
    assert!(!everything.contains("t0ps3cret"), "{everything}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["remote"][0]["same_class"], true);
}
