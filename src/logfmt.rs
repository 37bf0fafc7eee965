//! Log formats: UTC timestamps written from `SystemTime` (no date crate),
//! JSON string escaping, and the process log's `text` and `json` formats.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// How the process log (stderr) is written: `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// env_logger's own: `[2026-11-23T13:40:01Z INFO  lbproxy::server] message`.
    #[default]
    Text,
    /// One JSON object per line: `{"time": .., "level": .., "target": .., "msg": ..}`.
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Civil date (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`, valid far beyond any clock we will see).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The UTC calendar fields of `t`: (year, month, day, hour, minute, second, millisecond).
fn utc_fields(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60, since.subsec_millis())
}

/// ISO-8601 UTC with milliseconds: `2026-11-23T13:40:01.123Z`.
pub fn iso8601(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// The time of the combined log format (nginx's `$time_local`, in UTC):
/// `23/Nov/2026:13:40:01 +0000`.
pub fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, mo, d, h, mi, s, _) = utc_fields(t);
    format!("{d:02}/{}/{y:04}:{h:02}:{mi:02}:{s:02} +0000", MONTHS[(mo - 1) as usize])
}

/// `s` as a JSON string, quotes included.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Start the process log on stderr: `RUST_LOG` if set, else `level`.
pub fn init(level: log::LevelFilter, format: LogFormat) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level.to_string()));
    if format == LogFormat::Json {
        b.format(|buf, r| {
            writeln!(
                buf,
                "{{\"time\":\"{}\",\"level\":\"{}\",\"target\":{},\"msg\":{}}}",
                iso8601(SystemTime::now()),
                r.level(),
                json_string(r.target()),
                json_string(&r.args().to_string())
            )
        });
    }
    b.init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        // 2026-11-23T13:40:01.123Z, computed by `date -u -d @1795441201`.
        let t = UNIX_EPOCH + Duration::from_millis(1_795_441_201_123);
        assert_eq!(iso8601(t), "2026-11-23T13:40:01.123Z");
        assert_eq!(clf_time(t), "23/Nov/2026:13:40:01 +0000");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn json_strings_escape_quotes_and_controls() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        let v: serde_json::Value = serde_json::from_str(&json_string("x\"y\u{7}")).unwrap();
        assert_eq!(v, "x\"y\u{7}");
    }
}
