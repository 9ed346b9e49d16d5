//! Where a remote stage lives: `http(s)://HOST:PORT/v2/models/NAME` (the Open Inference
//! Protocol's REST binding, KServe v2) as written on the command line or in a profile.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// A model on an Open Inference Protocol server, reached over HTTP or HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://HOST:PORT` or `https://HOST:PORT`, no trailing slash.
    base: String,
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

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the host is this machine: plain HTTP there crosses no network.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `/v2/models/NAME` and what follows, as a full URL.
    pub fn url(&self, tail: &str) -> String {
        format!("{}/v2/models/{}{tail}", self.base, self.model)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url(""))
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;

    /// Parses `http(s)://HOST[:PORT]/v2/models/NAME`. Anything else (another path, a
    /// query, credentials in the URL) is refused with the form expected.
    fn from_str(s: &str) -> Result<Endpoint> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "{s:?} is not a remote stage: {why} (expected http://HOST:PORT/v2/models/NAME or https://...)"
            ))
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("the scheme must be http or https"));
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
        let model = path
            .strip_prefix("v2/models/")
            .ok_or_else(|| bad("the path must be /v2/models/NAME"))?
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
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || authority.starts_with('[') => {
                if !port.is_empty() && port.parse::<u16>().is_err() {
                    return Err(bad("the port must be a number up to 65535"));
                }
                h
            }
            _ => authority,
        };
        Ok(Endpoint {
            base: format!("{}://{authority}", if tls { "https" } else { "http" }),
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
        ] {
            let e = url.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("secret") || why == "credentials", "{e}");
        }
    }
}
