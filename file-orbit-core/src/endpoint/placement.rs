//! EndpointPlacement: which agents may run the transfers of an endpoint (by name or by label), its
//! stored form (`|agent:b|label:dmz|`, matched by the lease statement), and whether an
//! agent satisfies it. An endpoint without placement runs anywhere, the control plane's
//! own workers included.

use serde::{Deserialize, Serialize};

/// The most names plus labels one placement (or one agent's labels) may hold.
pub const MAX_PLACES: usize = 32;

/// Where an endpoint's transfers may run: on the agents named in `agents`, or on any agent
/// with a label in `labels`. Both empty (the default) means anywhere.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPlacement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Whether `name` is a valid agent name or label: 1-63 of `a-z 0-9 . _ -`, starting with a
/// letter or digit.
pub fn valid_agent_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.len() <= 63
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// Checks a list of agent names or labels; the error is the message for the field.
pub fn check_agent_names(names: &[String], what: &str) -> Result<(), String> {
    if names.len() > MAX_PLACES {
        return Err(format!("at most {MAX_PLACES} {what}, not {}", names.len()));
    }
    match names.iter().find(|name| !valid_agent_name(name)) {
        Some(bad) => Err(format!(
            "{bad:?} is not a valid {what} name (1-63 of a-z 0-9 . _ -, starting with a letter or digit)"
        )),
        None => Ok(()),
    }
}

/// The tokens an agent presents when it leases: the stored placements it satisfies
/// contain one of them.
pub fn reach_tokens(agent: &str, labels: &[String]) -> Vec<String> {
    std::iter::once(format!("|agent:{agent}|"))
        .chain(labels.iter().map(|label| format!("|label:{label}|")))
        .collect()
}

impl EndpointPlacement {
    pub fn is_anywhere(&self) -> bool {
        self.agents.is_empty() && self.labels.is_empty()
    }

    /// Checks the names; the error is (field, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        check_agent_names(&self.agents, "agent").map_err(|why| ("placement.agents", why))?;
        check_agent_names(&self.labels, "label").map_err(|why| ("placement.labels", why))
    }

    /// The stored form: `|agent:b|label:dmz|`; none when anywhere.
    pub fn stored(&self) -> Option<String> {
        if self.is_anywhere() {
            return None;
        }
        let places: Vec<String> = self
            .agents
            .iter()
            .map(|agent| format!("agent:{agent}"))
            .chain(self.labels.iter().map(|label| format!("label:{label}")))
            .collect();
        Some(format!("|{}|", places.join("|")))
    }

    /// The placement a stored form describes (none or empty: anywhere).
    pub fn from_stored(stored: Option<&str>) -> EndpointPlacement {
        let mut placement = EndpointPlacement::default();
        for place in stored.unwrap_or_default().split('|') {
            if let Some(agent) = place.strip_prefix("agent:") {
                placement.agents.push(agent.to_string());
            } else if let Some(label) = place.strip_prefix("label:") {
                placement.labels.push(label.to_string());
            }
        }
        placement
    }

    /// Whether an agent named `agent` with `labels` may run this endpoint's transfers.
    pub fn admits(&self, agent: &str, labels: &[String]) -> bool {
        self.is_anywhere()
            || self.agents.iter().any(|name| name == agent)
            || self.labels.iter().any(|label| labels.contains(label))
    }

    /// As people read it: `agents b, c; labels dmz`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.agents.is_empty() {
            parts.push(format!("agents {}", self.agents.join(", ")));
        }
        if !self.labels.is_empty() {
            parts.push(format!("labels {}", self.labels.join(", ")));
        }
        match parts.is_empty() {
            true => "anywhere".into(),
            false => parts.join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(agents: &[&str], labels: &[&str]) -> EndpointPlacement {
        EndpointPlacement {
            agents: agents.iter().map(|a| a.to_string()).collect(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn stored_form_round_trips_and_matches_the_tokens() {
        let pinned = placement(&["b"], &["dmz", "eu-west"]);
        let stored = pinned.stored().unwrap();
        assert_eq!(stored, "|agent:b|label:dmz|label:eu-west|");
        assert_eq!(EndpointPlacement::from_stored(Some(&stored)), pinned);
        assert_eq!(EndpointPlacement::default().stored(), None);
        assert!(EndpointPlacement::from_stored(None).is_anywhere());
        // The lease statement's test: a token of the agent inside the stored form.
        let holds = |agent: &str, labels: &[String]| {
            reach_tokens(agent, labels)
                .iter()
                .any(|token| stored.contains(token.as_str()))
        };
        assert!(holds("b", &[]));
        assert!(holds("c", &["dmz".into()]));
        assert!(
            !holds("c", &["eu".into()]),
            "a label prefix is not the label"
        );
        assert!(!holds("bb", &[]));
        assert_eq!(
            holds("c", &["eu-west".into()]),
            pinned.admits("c", &["eu-west".into()])
        );
    }

    #[test]
    fn bad_names_are_named() {
        assert!(placement(&["b"], &["dmz"]).check().is_ok());
        let (field, why) = placement(&["B!"], &[]).check().unwrap_err();
        assert_eq!(field, "placement.agents");
        assert!(why.contains("\"B!\""), "{why}");
        let (field, _) = placement(&[], &["|agent:x|"]).check().unwrap_err();
        assert_eq!(field, "placement.labels");
        let many: Vec<String> = (0..33).map(|n| format!("l{n}")).collect();
        let (_, why) = EndpointPlacement {
            agents: vec![],
            labels: many,
        }
        .check()
        .unwrap_err();
        assert!(why.contains("at most 32"), "{why}");
        assert!(!valid_agent_name(""));
        assert!(!valid_agent_name(&"a".repeat(64)));
        assert!(valid_agent_name("agent-b.dmz_1"));
    }
}
