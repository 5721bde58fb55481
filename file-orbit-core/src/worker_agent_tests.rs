//! The worker service's configuration in agent mode: `[agent]` instead of `store_url`, its
//! defaults, its bad settings refused by field, and the environment's overrides.

use super::{STORE_URL_ENV, WorkerConfig};
use crate::agent::ENROLMENT_TOKEN_ENV;
use crate::secret::Secret;

const TOKEN: &str = "foe_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

fn agent_toml(agent: &str) -> String {
    format!(
        "workers = 2\n[agent]\ncontrol_plane = [\"https://10.0.0.1:8443\"]\n\
         credential_file = \"/var/lib/fo/agent.credential\"\n{agent}"
    )
}

fn refused(toml: &str) -> String {
    match WorkerConfig::from_toml(toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn an_agent_config_needs_no_store_url_and_takes_the_defaults() {
    let config = WorkerConfig::from_toml(&agent_toml("")).unwrap();
    let agent = config.agent.as_ref().unwrap();
    assert_eq!(config.store_url, "");
    assert_eq!(agent.wait_secs, 20);
    assert_eq!(agent.urls().unwrap()[0].as_str(), "https://10.0.0.1:8443/");
    let full = WorkerConfig::from_toml(&agent_toml(&format!(
        "ca_file = \"/etc/fo/ca.pem\"\nenrolment_token = \"{TOKEN}\"\nwait_secs = 60\n"
    )))
    .unwrap();
    let agent = full.agent.unwrap();
    assert_eq!(
        (agent.wait_secs, agent.enrolment_token.unwrap().expose()),
        (60, TOKEN)
    );
}

#[test]
fn bad_agent_settings_are_refused_by_field() {
    let with_urls = |urls: &str| {
        refused(&format!(
            "[agent]\ncontrol_plane = [{urls}]\ncredential_file = \"/c\"\n"
        ))
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with_urls(""),
            "agent.control_plane: needs 1 to 8 URLs, got 0",
        ),
        (
            with_urls(&["\"http://h:1\""; 9].join(",")),
            "agent.control_plane: needs 1 to 8 URLs, got 9",
        ),
        (
            with_urls("\"ftp://h:1\""),
            "agent.control_plane[0]: \"ftp://h:1\" must be http:// or https://",
        ),
        (
            with_urls("\"https://h:1\", \"https://h:2/api\""),
            "agent.control_plane[1]: \"https://h:2/api\" must have no path",
        ),
        (with_urls("\"https://h:1/?x=1\""), "agent.control_plane[0]"),
        (
            with_urls("\"https://h:1\", \"https://h:1/\""),
            "is given twice",
        ),
        (with_urls("\"not a url\""), "is not a URL"),
        (
            refused(&agent_toml("wait_secs = 0\n")),
            "agent.wait_secs: 0 is not between 1 and 60",
        ),
        (
            refused(&agent_toml("wait_secs = 61\n")),
            "agent.wait_secs: 61",
        ),
        (
            refused(&agent_toml("enrolment_token = \"foa_nope\"\n")),
            "agent.enrolment_token: is not an enrolment token",
        ),
        (
            refused(&agent_toml("ca_file = \"\"\n")),
            "agent.ca_file: must not be empty",
        ),
        (
            refused(&agent_toml("colour = \"blue\"\n")),
            "unknown field `colour`",
        ),
    ];
    for (err, expected) in cases {
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }
    // The password in a URL is never quoted back.
    let err = with_urls("\"https://u:hunter2@h:1\"");
    assert!(err.contains("must not carry a user or password"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = refused("[agent]\ncontrol_plane = [\"https://h:1\"]\ncredential_file = \"\"\n");
    assert!(
        err.contains("agent.credential_file: must not be empty"),
        "{err}"
    );
}

#[test]
fn a_worker_is_either_a_store_worker_or_an_agent() {
    let both = format!("store_url = \"sqlite://w.db\"\n{}", agent_toml(""));
    assert!(refused(&both).contains("store_url: an agent talks to the control plane"));
    assert!(refused("workers = 2\n").contains("store_url: must be set (or an [agent] section"));
    let unsupported = [
        (
            "[[sources]]\nname = \"s\"\nkind = \"remote_poll\"\nspec = { endpoint = \"e\" }\n",
            "sources: is not supported on agents yet",
        ),
        (
            "[[notifications]]\nname = \"n\"\nevents = [\"job_dead\"]\n\
             channel = { type = \"webhook\", url = \"https://h/x\", signing_key = \"0123456789abcdef\" }\n",
            "notifications: is not supported on agents yet",
        ),
        (
            "bandwidth = \"1M\"\n",
            "bandwidth: is not supported on agents yet",
        ),
    ];
    for (section, expected) in unsupported {
        let toml = format!(
            "workers = 2\n{section}[agent]\ncontrol_plane = [\"https://h:1\"]\ncredential_file = \"/c\"\n"
        );
        let err = refused(&toml);
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }
}

#[test]
fn the_environment_gives_the_token_and_a_store_url_there_conflicts() {
    let mut config = WorkerConfig::from_toml(&agent_toml("")).unwrap();
    // No store URL in the environment: agent mode stays valid.
    config.apply_env_from(|_| None).unwrap();
    config
        .apply_env_from(|name| (name == ENROLMENT_TOKEN_ENV).then(|| TOKEN.to_string()))
        .unwrap();
    let token = config.agent.as_ref().unwrap().enrolment_token.as_ref();
    assert_eq!(token.map(Secret::expose), Some(TOKEN));
    let err = config
        .apply_env_from(|name| (name == ENROLMENT_TOKEN_ENV).then(|| "foe_short".to_string()))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agent.enrolment_token"), "{err}");
    assert!(!err.to_string().contains("foe_short"), "{err}");
    let mut config = WorkerConfig::from_toml(&agent_toml("")).unwrap();
    let err = config
        .apply_env_from(|name| (name == STORE_URL_ENV).then(|| "postgres://db/x".to_string()))
        .unwrap_err();
    assert!(err.to_string().contains("FILE_ORBIT_STORE_URL"), "{err}");
}
