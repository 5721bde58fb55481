//! Bandwidth limits as operators write them, in rclone's `--bwlimit` notation: a rate
//! (`10M`), separate upload and download rates (`10M:2M`), `off`, or a weekly timetable
//! (`08:00,512k 19:00,off`, `Mon-08:00,1M Sat-00:00,off`). This module parses, bounds and
//! evaluates them (the rate in force at a time, the next change); applying them to
//! transfers is the engine's job.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The lowest rate a limit may set: below it a transfer would look stalled.
pub const MIN_RATE: u64 = 1024;
/// The highest rate a limit may set (1 TiB/s).
pub const MAX_RATE: u64 = 1 << 40;
/// At most this many `time,rate` entries in a timetable.
pub const MAX_ENTRIES: usize = 64;
/// At most this many characters in a limit.
pub const MAX_LEN: usize = 2048;

const MINUTES_PER_WEEK: u32 = 7 * 24 * 60;

/// Upload (bytes written to the endpoint) and download (bytes read from it) rates in bytes
/// per second; `None` is no limit.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rates {
    pub upload: Option<u64>,
    pub download: Option<u64>,
}

impl Rates {
    pub const UNLIMITED: Rates = Rates {
        upload: None,
        download: None,
    };
}

/// A bandwidth limit: a fixed pair of rates or a weekly timetable of them.
///
/// ```
/// use file_orbit_core::endpoint::{Bandwidth, Rates};
/// use chrono::{TimeZone, Utc};
///
/// let limit: Bandwidth = "08:00,512k 19:00,10M:off".parse()?;
/// let monday_noon = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
/// assert_eq!(limit.rates_at(&monday_noon), Rates { upload: Some(512 * 1024), download: Some(512 * 1024) });
/// let (at, next) = limit.next_change(&monday_noon).unwrap();
/// assert_eq!(at, Utc.with_ymd_and_hms(2026, 12, 7, 19, 0, 0).unwrap());
/// assert_eq!(next, Rates { upload: Some(10 << 20), download: None });
///
/// // Mistakes are named.
/// let err = "08:00,512k 25:00,off".parse::<Bandwidth>().unwrap_err();
/// assert!(err.contains("25:00"), "{err}");
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    text: String,
    /// Sorted by minute of the week (Sunday 00:00 is 0).
    slots: Vec<(u32, Rates)>,
}

impl Bandwidth {
    /// The limit as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The rates in force at `at` (in `at`'s time zone, as rclone reads timetables).
    pub fn rates_at<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> Rates {
        self.slot_at(minute_of_week(at)).1
    }

    fn slot_at(&self, minute: u32) -> (u32, Rates) {
        // The latest entry at or before `minute`; before the week's first one, the week's
        // last entry still holds.
        self.slots
            .iter()
            .rev()
            .find(|(start, _)| *start <= minute)
            .or(self.slots.last())
            .copied()
            .unwrap_or((0, Rates::UNLIMITED))
    }

    /// When the rates in force next change after `at`, and to what; `None` for a limit
    /// that never changes.
    pub fn next_change<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> Option<(DateTime<Tz>, Rates)> {
        let now = minute_of_week(at);
        let current = self.slot_at(now).1;
        // The nearest entry ahead (1 minute to a week) that sets other rates: each entry
        // is in force from its start.
        let (ahead, rates) = self
            .slots
            .iter()
            .filter(|(_, rates)| *rates != current)
            .map(|(start, rates)| {
                (
                    (start + MINUTES_PER_WEEK - now - 1) % MINUTES_PER_WEEK + 1,
                    *rates,
                )
            })
            .min_by_key(|(ahead, _)| *ahead)?;
        let at = at.clone()
            - Duration::seconds(at.second().into())
            - Duration::nanoseconds(at.nanosecond().into())
            + Duration::minutes(ahead.into());
        Some((at, rates))
    }
}

fn minute_of_week<Tz: TimeZone>(at: &DateTime<Tz>) -> u32 {
    at.weekday().num_days_from_sunday() * 24 * 60 + at.hour() * 60 + at.minute()
}

impl FromStr for Bandwidth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is empty; write a rate such as \"10M\", \"10M:2M\" or \"off\"".into());
        }
        if text.len() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} characters"));
        }
        if !text.contains([' ', ',', ';']) {
            let rates = parse_rates(text).map_err(|why| match text.split_once(':') {
                Some(_) => format!("{text:?} is no rate or upload:download pair: {why}"),
                None => why,
            })?;
            return Ok(Bandwidth {
                text: text.into(),
                slots: vec![(0, rates)],
            });
        }
        let entries: Vec<&str> = text.split([' ', ';']).filter(|e| !e.is_empty()).collect();
        if entries.len() > MAX_ENTRIES {
            return Err(format!("has more than {MAX_ENTRIES} entries"));
        }
        let mut slots = Vec::new();
        for entry in entries {
            let (when, rate) = entry.split_once(',').ok_or_else(|| {
                format!("entry {entry:?} is not \"hh:mm,rate\" or \"Day-hh:mm,rate\"")
            })?;
            let rates = parse_rates(rate).map_err(|why| format!("entry {entry:?}: {why}"))?;
            let (days, hhmm) = match when.split_once('-') {
                Some((day, hhmm)) => (vec![parse_weekday(day)?], hhmm),
                None => ((0..7).collect(), when),
            };
            let minute = parse_hhmm(hhmm)?;
            for day in days {
                let start = day * 24 * 60 + minute;
                slots.retain(|(at, _)| *at != start);
                slots.push((start, rates));
            }
        }
        slots.sort_by_key(|(start, _)| *start);
        Ok(Bandwidth {
            text: text.into(),
            slots,
        })
    }
}

/// `10M` (both directions), `10M:2M` (upload:download), `off`, `off:1M`.
fn parse_rates(text: &str) -> Result<Rates, String> {
    let (upload, download) = text.split_once(':').unwrap_or((text, text));
    Ok(Rates {
        upload: parse_rate(upload)?,
        download: parse_rate(download)?,
    })
}

/// A rate in rclone's size notation: a number with an optional binary suffix (`K`, `M`,
/// `G`, `T`, also `Ki`/`KiB`; `B` for bytes; no suffix means KiB), or `off`.
fn parse_rate(text: &str) -> Result<Option<u64>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let lower = text.to_ascii_lowercase();
    let trimmed = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('i'))
        .unwrap_or(&lower);
    let (number, multiplier) = match trimmed.chars().last() {
        Some('b') if trimmed == lower => (&trimmed[..trimmed.len() - 1], 1.0),
        Some(c @ ('k' | 'm' | 'g' | 't')) => {
            let power = "kmgt".find(c).map_or(1, |i| i as i32 + 1);
            (&trimmed[..trimmed.len() - 1], 1024f64.powi(power))
        }
        Some(c) if c.is_ascii_digit() || c == '.' => (trimmed, 1024.0),
        _ => {
            return Err(format!(
                "rate {text:?} is not a size such as 512k, 10M or 1.5G"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("rate {text:?} is not a size such as 512k, 10M or 1.5G"))?;
    let bytes = value * multiplier;
    if bytes < MIN_RATE as f64 {
        return Err(format!(
            "rate {text:?} is below 1K (1 KiB/s); use off for no limit"
        ));
    }
    if bytes > MAX_RATE as f64 {
        return Err(format!("rate {text:?} is above 1T (1 TiB/s)"));
    }
    Ok(Some(bytes as u64))
}

fn parse_weekday(day: &str) -> Result<u32, String> {
    const DAYS: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let lower = day.to_ascii_lowercase();
    DAYS.iter()
        .position(|name| lower == *name || (lower.len() == 3 && name.starts_with(&lower)))
        .map(|i| i as u32)
        .ok_or_else(|| format!("{day:?} is not a day of the week (Mon, Tuesday, ...)"))
}

fn parse_hhmm(hhmm: &str) -> Result<u32, String> {
    let bad = || format!("{hhmm:?} is not a time of day hh:mm (00:00 to 23:59)");
    let bytes = hhmm.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(bad());
    }
    let hours: u32 = hhmm[..2].parse().map_err(|_| bad())?;
    let minutes: u32 = hhmm[3..].parse().map_err(|_| bad())?;
    if !hhmm[..2]
        .bytes()
        .chain(hhmm[3..].bytes())
        .all(|b| b.is_ascii_digit())
        || hours > 23
        || minutes > 59
    {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Bandwidth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        // 2026-12-06 is a Sunday.
        Utc.with_ymd_and_hms(2026, 12, 6 + day, hour, minute, 0)
            .unwrap()
    }

    #[test]
    fn reads_rates_as_rclone_does() {
        let rate = |text: &str| text.parse::<Bandwidth>().unwrap().rates_at(&at(0, 0, 0));
        assert_eq!(rate("10M").upload, Some(10 << 20));
        assert_eq!(rate("512").upload, Some(512 << 10), "no suffix is KiB");
        assert_eq!(rate("1.5MiB").download, Some(3 << 19));
        assert_eq!(rate("2048B").upload, Some(2048));
        assert_eq!(
            rate("10M:off"),
            Rates {
                upload: Some(10 << 20),
                download: None
            }
        );
        assert_eq!(rate("off"), Rates::UNLIMITED);
    }

    #[test]
    fn refuses_bad_limits_naming_the_part() {
        for (text, says) in [
            ("", "empty"),
            ("10X", "10X"),
            ("-1M", "-1M"),
            ("100B", "below 1K"),
            ("2T", "above 1T"),
            ("08:00,1M 24:00,off", "24:00"),
            ("Someday-08:00,1M", "Someday"),
            ("08:00", "08:00"),
            ("8:00,1M x", "8:00"),
            ("nan", "nan"),
        ] {
            let err = text.parse::<Bandwidth>().unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        let long = vec!["08:00,1M"; MAX_ENTRIES + 1].join(" ");
        assert!(long.parse::<Bandwidth>().unwrap_err().contains("entries"));
        let huge = format!("{}M", "1".repeat(MAX_LEN));
        assert!(
            huge.parse::<Bandwidth>()
                .unwrap_err()
                .contains("longer than")
        );
    }

    #[test]
    fn timetables_wrap_around_the_week() {
        let table: Bandwidth = "Mon-08:00,1M Fri-18:00,off".parse().unwrap();
        let one_m = Some(1 << 20);
        assert_eq!(
            table.rates_at(&at(0, 12, 0)).upload,
            None,
            "Sunday: Friday's off"
        );
        assert_eq!(table.rates_at(&at(1, 7, 59)).upload, None);
        assert_eq!(table.rates_at(&at(1, 8, 0)).upload, one_m);
        assert_eq!(table.rates_at(&at(5, 17, 59)).upload, one_m);
        let (when, rates) = table.next_change(&at(6, 10, 30)).unwrap();
        assert_eq!((when, rates.upload), (at(8, 8, 0), one_m), "next Monday");
    }

    #[test]
    fn daily_entries_change_every_day() {
        let table: Bandwidth = "08:00,512k 19:00,off".parse().unwrap();
        assert_eq!(table.rates_at(&at(3, 3, 0)).upload, None);
        let (when, rates) = table.next_change(&at(3, 19, 0)).unwrap();
        assert_eq!((when, rates.upload), (at(4, 8, 0), Some(512 << 10)));
        let same_rate_between: Bandwidth = "08:00,1M 12:00,1M 19:00,off".parse().unwrap();
        let (when, rates) = same_rate_between.next_change(&at(2, 9, 0)).unwrap();
        assert_eq!(
            (when, rates.upload),
            (at(2, 19, 0), None),
            "12:00 changes nothing"
        );
        assert!(
            "10M"
                .parse::<Bandwidth>()
                .unwrap()
                .next_change(&at(0, 0, 0))
                .is_none()
        );
    }
}
