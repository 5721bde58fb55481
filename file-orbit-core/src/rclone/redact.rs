//! Keeps secrets out of everything rclone says: values of secret-looking options in
//! connection strings and JSON (`pass=…`, `"secret_access_key":"…"`), and URL passwords.

use regex::Regex;
use std::sync::LazyLock;

/// Option names whose values are secrets, in rclone's backends and our own.
const SECRET_NAME: &str =
    r"[A-Za-z0-9_]*(?:pass|secret|token|key_pem|private_key|customer_key|credentials)[A-Za-z0-9_]*";

static CONNECTION_STRING_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)(\b{SECRET_NAME}\s*=\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^,:\s"'}}]+)"#
    ))
    .expect("valid regex")
});

static JSON_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)("{SECRET_NAME}"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}}\s]+)"#
    ))
    .expect("valid regex")
});

static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@/\s]+@").expect("valid regex")
});

/// `text` with every recognisable secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let text = JSON_VALUE.replace_all(text, "$1\"***\"");
    let text = CONNECTION_STRING_VALUE.replace_all(&text, "$1***");
    URL_PASSWORD.replace_all(&text, "$1***@").into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn connection_string_secrets_are_redacted() {
        let text =
            r#"failed to create file system for ":sftp,host=h,pass=Zm9vYmFy,user=u:/x": dial"#;
        let out = redact(text);
        assert!(!out.contains("Zm9vYmFy"), "{out}");
        assert!(out.contains("host=h") && out.contains("user=u"), "{out}");
        let quoted = redact(r#":s3,secret_access_key="a,b:c",region=x:"#);
        assert!(!quoted.contains("a,b"), "{quoted}");
        assert!(quoted.contains("region=x"), "{quoted}");
    }

    #[test]
    fn json_and_url_secrets_are_redacted() {
        let out = redact(r#"{"user":"u","pass":"hunter2","session_token": "q7\"zz"}"#);
        assert!(
            !out.contains("hunter2") && !out.contains("q7") && !out.contains("zz"),
            "{out}"
        );
        assert!(out.contains(r#""user":"u""#), "{out}");
        let url = redact("GET https://admin:s3cr3t@host/path failed");
        assert_eq!(url, "GET https://admin:***@host/path failed");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let text = "copied 3 files to key_file=/home/u/.ssh/id host=passport.example";
        assert_eq!(redact(text), text);
    }
}
