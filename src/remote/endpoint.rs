//! Where a remote stage lives, as written on the command line or in a profile: a model on
//! an Open Inference Protocol (KServe v2) server, over one of the protocol's bindings:
//! `http(s)://HOST:PORT/v2/models/NAME` (REST, v2 JSON) or `grpc(s)://HOST:PORT/NAME` (the
//! `inference.GRPCInferenceService`, over HTTP/2).

use std::net::IpAddr;

use crate::error::{Error, Result};

/// How the protocol is carried to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// v2 JSON over HTTP/1.1: `http(s)://HOST:PORT/v2/models/NAME`.
    Rest,
    /// v2 protobuf over HTTP/2: `grpc(s)://HOST:PORT/NAME`.
    Grpc,
}

/// A model on an Open Inference Protocol server, reached over REST or gRPC, in clear or
/// over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    binding: Binding,
    /// `HOST[:PORT]` as written.
    authority: String,
    host: String,
    tls: bool,
    model: String,
}

impl Endpoint {
    /// The model's name on the server.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn binding(&self) -> Binding {
        self.binding
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the host is this machine: plain HTTP there crosses no network.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `http://HOST:PORT` or `https://HOST:PORT`: the HTTP origin either binding is carried
    /// to (gRPC's is HTTP/2's).
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }

    /// The REST binding's `/v2/models/NAME` and what follows, as a full URL.
    pub fn url(&self, tail: &str) -> String {
        format!("{}/v2/models/{}{tail}", self.origin(), self.model)
    }
}

impl std::fmt::Display for Endpoint {
    /// As written (less a trailing slash): the REST URL, or `grpc(s)://HOST:PORT/NAME`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.binding {
            Binding::Rest => f.write_str(&self.url("")),
            Binding::Grpc => write!(
                f,
                "{}://{}/{}",
                if self.tls { "grpcs" } else { "grpc" },
                self.authority,
                self.model
            ),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;

    /// Parses `http(s)://HOST[:PORT]/v2/models/NAME` or `grpc(s)://HOST:PORT/NAME`.
    /// Anything else (another path, a query, credentials in the URL, a gRPC endpoint in
    /// clear without its port) is refused with the forms expected.
    fn from_str(s: &str) -> Result<Endpoint> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "{s:?} is not a remote stage: {why} (expected http://HOST:PORT/v2/models/NAME, \
                 https://..., grpc://HOST:PORT/NAME or grpcs://...)"
            ))
        };
        let (binding, tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (Binding::Rest, true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Binding::Rest, false, r)
        } else if let Some(r) = s.strip_prefix("grpcs://") {
            (Binding::Grpc, true, r)
        } else if let Some(r) = s.strip_prefix("grpc://") {
            (Binding::Grpc, false, r)
        } else {
            return Err(bad("the scheme must be http, https, grpc or grpcs"));
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no model path"))?;
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad(
                "credentials do not belong in a URL; use --token-file or --token-env",
            ));
        }
        let model = match binding {
            Binding::Rest => path
                .strip_prefix("v2/models/")
                .ok_or_else(|| bad("the path must be /v2/models/NAME"))?,
            Binding::Grpc if path.starts_with("v2/") => {
                return Err(bad(
                    "over gRPC the path is the model's name alone, /NAME, not /v2/models/NAME",
                ))
            }
            Binding::Grpc => path,
        }
        .trim_end_matches('/');
        let name_ok = !model.is_empty()
            && model
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(bad(
                "the model name must be letters, digits, '-', '_' or '.'",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || authority.starts_with('[') => {
                if !port.is_empty() && port.parse::<u16>().is_err() {
                    return Err(bad("the port must be a number up to 65535"));
                }
                (h, Some(port).filter(|p| !p.is_empty()))
            }
            _ => (authority, None),
        };
        // gRPC servers have no common port in clear (MLServer 8081, Triton 8001, OpenVINO
        // Model Server 9000), and HTTP's 80 is none of them; over TLS 443 is an ingress's.
        if binding == Binding::Grpc && !tls && port.is_none() {
            return Err(bad(
                "a gRPC endpoint in clear needs its port (MLServer serves gRPC on 8081, Triton on 8001)",
            ));
        }
        Ok(Endpoint {
            binding,
            authority: authority.to_string(),
            host: host.to_string(),
            tls,
            model: model.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_v2_model_url() {
        let e: Endpoint = "http://127.0.0.1:8080/v2/models/efficientnet-lite2"
            .parse()
            .unwrap();
        assert_eq!(e.model(), "efficientnet-lite2");
        assert_eq!(e.host(), "127.0.0.1");
        assert!(e.is_loopback() && !e.is_tls());
        assert_eq!(
            e.url("/infer"),
            "http://127.0.0.1:8080/v2/models/efficientnet-lite2/infer"
        );
        let e: Endpoint = "https://models.example.org/v2/models/lite2/"
            .parse()
            .unwrap();
        assert!(e.is_tls() && !e.is_loopback());
        assert_eq!(e.to_string(), "https://models.example.org/v2/models/lite2");
        let e: Endpoint = "http://[::1]:9000/v2/models/m".parse().unwrap();
        assert!(e.is_loopback());
        assert!("http://localhost:1/v2/models/m"
            .parse::<Endpoint>()
            .unwrap()
            .is_loopback());
        assert_eq!(e.binding(), Binding::Rest);
    }

    #[test]
    fn parses_the_grpc_model_url() {
        let e: Endpoint = "grpc://127.0.0.1:8081/efficientnet-lite2".parse().unwrap();
        assert_eq!(e.binding(), Binding::Grpc);
        assert_eq!(e.model(), "efficientnet-lite2");
        assert_eq!(e.host(), "127.0.0.1");
        assert!(e.is_loopback() && !e.is_tls());
        assert_eq!(e.origin(), "http://127.0.0.1:8081");
        assert_eq!(e.to_string(), "grpc://127.0.0.1:8081/efficientnet-lite2");
        // Over TLS the port may be left to 443 (an ingress).
        let e: Endpoint = "grpcs://models.example.org/lite2/".parse().unwrap();
        assert!(e.is_tls() && !e.is_loopback());
        assert_eq!(e.origin(), "https://models.example.org");
        assert_eq!(e.to_string(), "grpcs://models.example.org/lite2");
        let e: Endpoint = "grpc://[::1]:9000/m".parse().unwrap();
        assert!(e.is_loopback());
        assert_eq!(e.origin(), "http://[::1]:9000");
    }

    #[test]
    fn refuses_what_is_not_a_v2_model_url() {
        for (url, why) in [
            ("ftp://h/v2/models/m", "scheme"),
            ("http://h:80/models/m", "/v2/models/NAME"),
            ("http://h:80/v2/models/", "model name"),
            ("http://h:http/v2/models/m", "port"),
            ("http://user:secret@h/v2/models/m", "credentials"),
            ("http:///v2/models/m", "no host"),
            ("http://h/v2/models/m?x=1", "model name"),
            ("grpc://h/m", "needs its port"),
            ("grpc://h:8081/v2/models/m", "the model's name alone"),
            ("grpc://h:8081/", "model name"),
            ("grpc://h:8081", "no model path"),
            ("grpc://h:8081/a/b", "model name"),
            ("grpc://h:grpc/m", "port"),
            ("grpcs://token:secret@h/m", "credentials"),
            ("grpc+tls://h:1/m", "scheme"),
        ] {
            let e = url.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("secret") || why == "credentials", "{e}");
        }
    }
}
