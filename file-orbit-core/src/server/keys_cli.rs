//! The server's `keys` command line (`keys create | list | revoke`): parses its arguments,
//! runs it on the store through `keys` (audited as `cli`) and returns the text to print.
//! It never serves; `examples/server.rs` calls it instead of starting the server.

use super::config::{ApiKeyEntry, Role};
use super::keys::{create_api_key, days_from_now, list_api_keys, revoke_api_key};
use crate::engine::Store;
use crate::error::{Error, ErrorKind, Result};

/// How the `keys` command is used.
pub const KEYS_USAGE: &str = "keys create --name NAME --role viewer|operator|admin \
    [--expires-days N] | keys list | keys revoke NAME";

fn usage(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, "keys command", message)
}

/// What `keys create` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CreateArgs {
    name: String,
    role: Role,
    expires_days: Option<u32>,
}

fn parse_create(args: &[String]) -> Result<CreateArgs> {
    let (mut name, mut role, mut days) = (None, None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || {
            rest.next()
                .ok_or_else(|| usage(format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--name" => name = Some(value()?.clone()),
            "--role" => {
                let text = value()?;
                role = Some(
                    serde_json::from_value::<Role>(serde_json::json!(text)).map_err(|_| {
                        usage(format!("--role {text:?}: viewer, operator or admin"))
                    })?,
                );
            }
            "--expires-days" => {
                let text = value()?;
                days = Some(
                    text.parse::<u32>()
                        .ok()
                        .filter(|days| *days > 0)
                        .ok_or_else(|| {
                            usage(format!("--expires-days {text:?}: a positive number"))
                        })?,
                );
            }
            other => return Err(usage(format!("keys create: unknown argument {other:?}"))),
        }
    }
    Ok(CreateArgs {
        name: name.ok_or_else(|| usage("keys create needs --name NAME"))?,
        role: role.ok_or_else(|| usage("keys create needs --role viewer|operator|admin"))?,
        expires_days: days,
    })
}

fn role_name(role: Role) -> String {
    format!("{role:?}").to_lowercase()
}

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM`, or `-`.
fn minute(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or("-".to_string(), |at| {
            at.format("%Y-%m-%d %H:%M").to_string()
        })
}

/// Runs `keys <args>` on `store` beside the `declared` keys and returns what to print: a
/// created key (shown only then), the list, or the revocation.
pub async fn keys_command(
    store: &Store,
    declared: &[ApiKeyEntry],
    args: &[String],
) -> Result<String> {
    match args.first().map(String::as_str) {
        Some("create") => {
            let create = parse_create(&args[1..])?;
            let expires_at = create.expires_days.map(days_from_now);
            let (key, info) = create_api_key(
                store,
                declared,
                &create.name,
                create.role,
                expires_at,
                "cli",
            )
            .await?;
            let mut text = format!(
                "API key {:?} ({}) created; it is shown only now:\n{}\n",
                info.name,
                role_name(info.role),
                key.expose()
            );
            if let Some(expires) = info
                .expires_at
                .and_then(chrono::DateTime::from_timestamp_millis)
            {
                text.push_str(&format!("It expires at {}.\n", expires.to_rfc3339()));
            }
            Ok(text)
        }
        Some("list") if args.len() == 1 => {
            let mut text = format!(
                "{:<24} {:<9} {:<7} {:<17} {:<17} {:<17} state\n",
                "name", "role", "source", "created", "expires", "last used"
            );
            for key in list_api_keys(store, declared).await? {
                let state = if key.revoked {
                    "revoked"
                } else if key.expired {
                    "expired"
                } else {
                    "active"
                };
                text.push_str(&format!(
                    "{:<24} {:<9} {:<7} {:<17} {:<17} {:<17} {state}\n",
                    key.name,
                    role_name(key.role),
                    key.source,
                    minute(key.created_at),
                    minute(key.expires_at),
                    minute(key.last_used_at),
                ));
            }
            Ok(text)
        }
        Some("revoke") if args.len() == 2 => {
            revoke_api_key(store, declared, &args[1], "cli").await?;
            Ok(format!("API key {:?} revoked.\n", args[1]))
        }
        _ => Err(usage(format!("usage: {KEYS_USAGE}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn create_arguments_are_parsed_and_named_when_wrong() {
        let parsed = parse_create(&args("--name ci --role operator --expires-days 30")).unwrap();
        assert_eq!(
            parsed,
            CreateArgs {
                name: "ci".into(),
                role: Role::Operator,
                expires_days: Some(30)
            }
        );
        for (line, expected) in [
            ("--role admin", "needs --name"),
            ("--name ci", "needs --role"),
            ("--name ci --role root", "--role \"root\""),
            (
                "--name ci --role admin --expires-days 0",
                "--expires-days \"0\"",
            ),
            ("--name", "--name needs a value"),
            ("--name ci --colour red", "unknown argument \"--colour\""),
        ] {
            let err = parse_create(&args(line)).unwrap_err();
            assert!(err.to_string().contains(expected), "{line}: {err}");
        }
    }

    #[tokio::test]
    async fn keys_are_created_listed_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keys.db").display());
        let store = Store::open(&url).await.unwrap();
        let created = keys_command(
            &store,
            &[],
            &args("create --name ci --role viewer --expires-days 2"),
        )
        .await
        .unwrap();
        assert!(
            created.starts_with("API key \"ci\" (viewer) created"),
            "{created}"
        );
        assert!(
            created.contains("\nfo_") && created.contains("It expires at"),
            "{created}"
        );
        let listed = keys_command(&store, &[], &args("list")).await.unwrap();
        let row = listed.lines().nth(1).unwrap();
        assert!(
            row.starts_with("ci ") && row.contains("viewer") && row.ends_with("active"),
            "{listed}"
        );
        let revoked = keys_command(&store, &[], &args("revoke ci")).await.unwrap();
        assert_eq!(revoked, "API key \"ci\" revoked.\n");
        let listed = keys_command(&store, &[], &args("list")).await.unwrap();
        assert!(
            listed.lines().nth(1).unwrap().ends_with("revoked"),
            "{listed}"
        );
        for wrong in ["", "list extra", "revoke", "rotate ci"] {
            let err = keys_command(&store, &[], &args(wrong)).await.unwrap_err();
            assert!(
                err.detail().starts_with("usage: keys create"),
                "{wrong}: {err}"
            );
        }
    }
}
