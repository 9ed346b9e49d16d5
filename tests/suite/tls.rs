//! Remote stages over TLS (`https://`, `grpcs://`) to a server whose certificate a site's
//! own CA signed: trusted with `--ca-cert` (that CA), refused by the public roots and by
//! another CA. The server is MLServer behind a TLS-terminating proxy, what a site's ingress
//! does; the certificates are `tests/fixtures/tls` (see its `make`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use cascade::remote::{Access, Endpoint, GrpcClient, RestClient, TrustRoots};

use crate::common;
use crate::mlserver::MlServer;
use crate::remote::serve_loopback;

fn tls_fixture(name: &str) -> PathBuf {
    common::fixture("tls").join(name)
}

/// TLS in front of a plain TCP server on `upstream`: the server certificate of
/// `tests/fixtures/tls` (for localhost and 127.0.0.1), ALPN h2 for gRPC and http/1.1 for
/// REST, then the bytes forwarded both ways. Logs nothing.
struct TlsProxy {
    port: u16,
}

impl TlsProxy {
    fn start(upstream: u16) -> TlsProxy {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::{crypto, ServerConfig};

        let chain: Vec<CertificateDer> =
            CertificateDer::pem_file_iter(tls_fixture("server-chain.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(tls_fixture("server.key")).unwrap();
        let provider = Arc::new(crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let port = serve_loopback(move |socket| {
            let acceptor = acceptor.clone();
            async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            }
        });
        TlsProxy { port }
    }
}

#[test]
fn a_site_ca_lets_tls_servers_in_and_the_public_roots_or_another_ca_do_not() {
    let server = MlServer::start();
    let (rest_tls, grpc_tls) = (TlsProxy::start(server.http), TlsProxy::start(server.grpc));
    let https: Endpoint = format!(
        "https://localhost:{}/v2/models/efficientnet-lite2",
        rest_tls.port
    )
    .parse()
    .unwrap();
    let grpcs: Endpoint = format!("grpcs://127.0.0.1:{}/efficientnet-lite2", grpc_tls.port)
        .parse()
        .unwrap();
    let site = TrustRoots::from_pem_file(&tls_fixture("ca.pem")).unwrap();
    let other = TrustRoots::from_pem_file(&tls_fixture("other-ca.pem")).unwrap();
    let trusting = |roots: Option<&TrustRoots>| Access::default().trusting(roots.cloned());

    // Trusting the site's CA: both bindings reach the model, and answer as in clear.
    let rest = RestClient::new(https.clone(), &trusting(Some(&site)));
    rest.ready().unwrap();
    assert_eq!(
        rest.metadata().unwrap(),
        server.client("efficientnet-lite2").metadata().unwrap()
    );
    let grpc = GrpcClient::new(grpcs.clone(), &trusting(Some(&site))).unwrap();
    grpc.ready().unwrap();
    let shape = [1usize, 3, 260, 260];
    let tensor = vec![0.25f32; shape.iter().product()];
    assert_eq!(
        grpc.infer("input", &shape, &tensor).unwrap(),
        server
            .grpc_client("efficientnet-lite2")
            .infer("input", &shape, &tensor)
            .unwrap()
    );

    // The public roots (the default) and another CA refuse the certificate, and say so.
    for roots in [None, Some(&other)] {
        let rest = RestClient::new(https.clone(), &trusting(roots)).ready();
        let grpc = GrpcClient::new(grpcs.clone(), &trusting(roots))
            .unwrap()
            .ready();
        for e in [rest.unwrap_err(), grpc.unwrap_err()] {
            let e = e.to_string();
            assert!(
                e.contains("cannot reach the server") && e.contains("certificate"),
                "{e}"
            );
        }
    }

    // Through the CLI: `--ca-cert` on `time --remote`, both bindings in one run.
    let tench = common::sample_dir().join("n01440764_tench.JPEG");
    let lite2 = common::model_arg("efficientnet-lite2");
    let ca = tls_fixture("ca.pem");
    let (https_s, grpcs_s) = (https.to_string(), grpcs.to_string());
    let args = [
        "time",
        "--model",
        &lite2,
        common::arg(&tench),
        "--runs",
        "1",
        "--json",
        "--remote",
        &https_s,
        "--remote",
        &grpcs_s,
        "--ca-cert",
        common::arg(&ca),
    ];
    let out = common::cascade(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["same_class"], true, "{v}");
    assert_eq!(v["remote"].as_array().map(Vec::len), Some(2), "{v}");

    // A file with no certificate is refused before anything is sent.
    let key = tls_fixture("server.key");
    let bad = [&args[..args.len() - 1], &[common::arg(&key)]].concat();
    let out = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(&bad)
        .output()
        .unwrap();
    common::assert_fails_with(&out, "no certificate in it");
}
