//! Service logs (features `server`, `worker`): one rotated file per service in a log
//! directory (plain text or JSON lines, old files pruned), mirrored to stderr, and the
//! reader behind the log-viewer API, which walks files newest line first and stops at the
//! limit instead of reading whole files.

use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Overrides `LogConfig::dir`.
pub const LOG_DIR_ENV: &str = "FILE_ORBIT_LOG_DIR";
/// Overrides `LogConfig::format` (`text` or `json`).
pub const LOG_FORMAT_ENV: &str = "FILE_ORBIT_LOG_FORMAT";

/// How a log file's lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-11-30T22:40:00.123456Z  INFO run{job=5 worker=w1}: target: message k=v`
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`).
    Json,
}

/// When a new log file is started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogRotation {
    Hourly,
    #[default]
    Daily,
    Never,
}

/// The `[log]` table of a service's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Where `<service>.<date>.log` files go; unset: stderr only.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default)]
    pub rotation: LogRotation,
    /// Rotated files kept per service; older ones are deleted.
    #[serde(default = "default_keep_files")]
    pub keep_files: usize,
    /// A tracing filter (`info`, `file_orbit=debug,info`); `RUST_LOG` overrides it.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_keep_files() -> usize {
    14
}
fn default_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: None,
            format: LogFormat::default(),
            rotation: LogRotation::default(),
            keep_files: default_keep_files(),
            level: default_level(),
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid_field("log configuration", field, message)
}

impl LogConfig {
    /// Applies `FILE_ORBIT_LOG_DIR` and `FILE_ORBIT_LOG_FORMAT`.
    pub fn apply_env(&mut self) -> Result<()> {
        if let Ok(dir) = std::env::var(LOG_DIR_ENV) {
            self.dir = (!dir.is_empty()).then(|| PathBuf::from(dir));
        }
        if let Ok(format) = std::env::var(LOG_FORMAT_ENV) {
            self.format = match format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(invalid(
                        LOG_FORMAT_ENV,
                        format!("{other:?} is not a log format (text or json)"),
                    ));
                }
            };
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        if self.keep_files == 0 {
            return Err(invalid("log.keep_files", "must be at least 1"));
        }
        EnvFilter::try_new(&self.level)
            .map_err(|err| invalid("log.level", format!("{:?}: {err}", self.level)))?;
        Ok(())
    }
}

/// Installs the process's tracing subscriber: stderr, plus `<dir>/<service>.*.log` when a
/// directory is configured (created if missing). Lines are written as they are logged
/// (no buffering thread), so the viewer sees them at once. Call once per process.
pub fn init(service: &str, config: &LogConfig) -> Result<()> {
    config.validate()?;
    valid_service(service)?;
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let stderr = tracing_subscriber::fmt::layer()
        .fmt_fields(StderrFields::default())
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let file = match &config.dir {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|err| {
                invalid("log.dir", format!("cannot create {}: {err}", dir.display()))
            })?;
            let appender = RollingFileAppender::builder()
                .rotation(match config.rotation {
                    LogRotation::Hourly => Rotation::HOURLY,
                    LogRotation::Daily => Rotation::DAILY,
                    LogRotation::Never => Rotation::NEVER,
                })
                .filename_prefix(service)
                .filename_suffix("log")
                .max_log_files(config.keep_files)
                .build(dir)
                .map_err(|err| invalid("log.dir", format!("{}: {err}", dir.display())))?;
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(appender)
                .with_ansi(false);
            let layer = match config.format {
                LogFormat::Text => layer.with_filter(filter()).boxed(),
                LogFormat::Json => layer
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_filter(filter())
                    .boxed(),
            };
            Some(layer)
        }
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init()
        .map_err(|err| {
            Error::new(
                ErrorKind::InvalidInput,
                "log configuration",
                format!("logging is already set up: {err}"),
            )
        })
}

/// The default field format under its own type: tracing-subscriber caches a span's
/// formatted fields per formatter type, and stderr's colour codes would otherwise end up
/// in the log file's span fields (`job=5` as `\x1b[3mjob\x1b[0m...`).
#[derive(Default)]
struct StderrFields(DefaultFields);

impl<'writer> FormatFields<'writer> for StderrFields {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

fn valid_service(service: &str) -> Result<()> {
    if service.is_empty()
        || !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid_field(
            "reading logs",
            "service",
            format!("{service:?} must be letters, digits, '-' or '_'"),
        ));
    }
    Ok(())
}

/// What to read from the log directory.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only this service's files (`server`, `worker`, ...); unset: every service.
    pub service: Option<String>,
    /// This level and the more severe ones (`error` < `warn` < `info` < `debug` < `trace`).
    pub level: Option<tracing::Level>,
    /// Only lines logged inside this job's span (`job=<id>`).
    pub job: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// At most this many lines, newest first.
    pub limit: usize,
}

/// One log line as the viewer returns it.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub service: String,
    pub time: Option<DateTime<Utc>>,
    pub level: Option<String>,
    pub job: Option<i64>,
    /// The line as written (text, or one JSON object).
    pub line: String,
}

/// Lines matching `query`, newest first, from `<dir>/<service>.*log` files. Files are read
/// backwards from their end and reading stops at `query.limit`, or at the first line older
/// than `query.since` (lines of one file are in time order).
pub fn read(dir: &Path, query: &LogQuery) -> Result<Vec<LogLine>> {
    if let Some(service) = &query.service {
        valid_service(service)?;
    }
    let io_error = |err: std::io::Error| {
        Error::new(
            ErrorKind::Store,
            "reading logs",
            format!("{}: {err}", dir.display()),
        )
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((service, _)) = name.split_once('.') else {
            continue;
        };
        if !name.ends_with(".log") || valid_service(service).is_err() {
            continue;
        }
        if query.service.as_deref().is_some_and(|want| want != service) {
            continue;
        }
        let modified = entry.metadata().and_then(|m| m.modified()).ok();
        files.push((modified, name.clone(), service.to_string(), entry.path()));
    }
    // Newest file first: a rotated file is older than the one written now.
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));

    let mut lines = Vec::new();
    for (_, _, service, path) in files {
        let file = File::open(&path).map_err(io_error)?;
        for raw in rev_lines::RevLines::new(file) {
            let Ok(raw) = raw else { break };
            if raw.trim().is_empty() {
                continue;
            }
            let line = parse_line(&service, raw);
            if let (Some(since), Some(time)) = (query.since, line.time) {
                if time < since {
                    break;
                }
            }
            if matches(&line, query) {
                lines.push(line);
                if lines.len() >= query.limit {
                    return Ok(lines);
                }
            }
        }
    }
    Ok(lines)
}

fn matches(line: &LogLine, query: &LogQuery) -> bool {
    if let Some(until) = query.until {
        if line.time.is_none_or(|time| time > until) {
            return false;
        }
    }
    if let Some(max) = query.level {
        let level = line
            .level
            .as_deref()
            .and_then(|l| l.parse::<tracing::Level>().ok());
        // tracing orders levels by verbosity: ERROR < WARN < ... < TRACE.
        if level.is_none_or(|level| level > max) {
            return false;
        }
    }
    if let Some(job) = query.job {
        if line.job != Some(job) {
            return false;
        }
    }
    true
}

/// Reads the time, level and job of a text or JSON line.
fn parse_line(service: &str, raw: String) -> LogLine {
    let (time, level, job) = if raw.starts_with('{') {
        parse_json_line(&raw)
    } else {
        parse_text_line(&raw)
    };
    LogLine {
        service: service.to_string(),
        time,
        level,
        job,
        line: raw,
    }
}

type Parsed = (Option<DateTime<Utc>>, Option<String>, Option<i64>);

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

fn parse_json_line(raw: &str) -> Parsed {
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return (None, None, None);
    };
    let time = value["timestamp"].as_str().and_then(parse_time);
    let level = value["level"].as_str().map(str::to_string);
    let job = std::iter::once(&value["fields"])
        .chain(std::iter::once(&value["span"]))
        .chain(value["spans"].as_array().into_iter().flatten())
        .find_map(|fields| fields["job"].as_i64());
    (time, level, job)
}

fn parse_text_line(raw: &str) -> Parsed {
    let mut words = raw.split_whitespace();
    let time = words.next().and_then(parse_time);
    let level = words
        .next()
        .filter(|level| level.parse::<tracing::Level>().is_ok())
        .map(str::to_string);
    // Span fields print as `name{job=5 worker=w1}:`; event fields as `job=5`.
    let job = raw
        .split(|c: char| c == '{' || c == '}' || c == ':' || c.is_whitespace())
        .find_map(|word| word.strip_prefix("job="))
        .and_then(|id| id.parse().ok());
    (time, level, job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines_give_time_level_and_job() {
        let text = "2026-11-30T22:40:00.123456Z  WARN run{job=57 worker=w1}: \
                    file_orbit::engine::worker: transfer failed err=x";
        let (time, level, job) = parse_text_line(text);
        assert_eq!(
            time.unwrap().to_rfc3339(),
            "2026-11-30T22:40:00.123456+00:00"
        );
        assert_eq!(level.as_deref(), Some("WARN"));
        assert_eq!(job, Some(57));
        assert_eq!(parse_text_line("garbage jobs=5 job=x"), (None, None, None));

        let json = r#"{"timestamp":"2026-11-30T22:40:00.5Z","level":"INFO","fields":{"message":"m"},"span":{"job":8,"name":"run"},"spans":[{"job":8}]}"#;
        let (time, level, job) = parse_json_line(json);
        assert!(time.is_some());
        assert_eq!((level.as_deref(), job), (Some("INFO"), Some(8)));
        assert_eq!(parse_json_line("{not json"), (None, None, None));
    }

    #[test]
    fn reading_filters_newest_first_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let line = |minute: u32, level: &str, job: i64| {
            format!("2026-11-30T10:{minute:02}:00Z  {level} run{{job={job}}}: t: m\n")
        };
        let older: String = (0..10).map(|m| line(m, "INFO", m as i64)).collect();
        let newer: String = (10..20).map(|m| line(m, "WARN", m as i64)).collect();
        std::fs::write(dir.path().join("server.2026-11-29.log"), older).unwrap();
        std::fs::write(dir.path().join("server.2026-11-30.log"), newer).unwrap();
        // The rotated file was last written a day before the current one.
        let day_before = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        File::options()
            .write(true)
            .open(dir.path().join("server.2026-11-29.log"))
            .unwrap()
            .set_modified(day_before)
            .unwrap();
        std::fs::write(
            dir.path().join("worker.2026-11-30.log"),
            line(30, "ERROR", 1),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();

        let query = |f: fn(&mut LogQuery)| {
            let mut query = LogQuery {
                limit: 100,
                ..LogQuery::default()
            };
            f(&mut query);
            read(dir.path(), &query).unwrap()
        };
        let jobs = |lines: Vec<LogLine>| lines.iter().map(|l| l.job.unwrap()).collect::<Vec<_>>();
        assert_eq!(query(|q| q.service = Some("worker".into())).len(), 1);
        let server = query(|q| {
            q.service = Some("server".into());
            q.limit = 3;
        });
        assert_eq!(jobs(server), vec![19, 18, 17]);
        assert_eq!(
            jobs(query(|q| q.level = Some(tracing::Level::ERROR))),
            vec![1]
        );
        assert_eq!(
            query(|q| q.level = Some(tracing::Level::WARN)).len(),
            11,
            "WARN and ERROR lines"
        );
        assert_eq!(jobs(query(|q| q.job = Some(4))), vec![4]);
        let window = query(|q| {
            q.service = Some("server".into());
            q.since = parse_time("2026-11-30T10:08:00Z");
            q.until = parse_time("2026-11-30T10:11:00Z");
        });
        assert_eq!(jobs(window), vec![11, 10, 9, 8]);
        let err = read(
            dir.path(),
            &LogQuery {
                service: Some("../etc".into()),
                limit: 1,
                ..LogQuery::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"), "{err}");
    }
}
