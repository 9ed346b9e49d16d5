//! The bearer token a protected server wants: read from a file or an environment variable,
//! never from the command line (which other users of the board can read in `ps`), never
//! logged, printed or written into a profile.

use std::path::Path;

use crate::error::{Error, Result};

/// A bearer token. Its `Debug` and `Display` show `Token(***)`, so no log line, error or
/// report can carry it by accident; only [`Token::header`] gives the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The first line of `path`, trimmed.
    pub fn from_file(path: &Path) -> Result<Token> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Token::new(
            text.lines().next().unwrap_or(""),
            &path.display().to_string(),
        )
    }

    /// The value of the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Token> {
        let value = std::env::var(name).map_err(|_| {
            Error::InvalidArgument(format!("the environment variable {name} is not set"))
        })?;
        Token::new(&value, name)
    }

    fn new(value: &str, from: &str) -> Result<Token> {
        let value = value.trim();
        if value.is_empty() || value.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Error::InvalidArgument(format!(
                "the token from {from} is empty or not one word"
            )));
        }
        Ok(Token(value.to_string()))
    }

    /// The `Authorization` header's value.
    pub fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_read_from_a_file_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        let t = Token::from_file(&path).unwrap();
        assert_eq!(t.header(), "Bearer s3cret-value");
        assert_eq!(format!("{t:?}"), "Token(***)");
        std::fs::write(&path, "\n").unwrap();
        let e = Token::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = Token::from_env("CASCADE_TEST_NO_SUCH_VARIABLE")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not set"), "{e}");
    }
}
