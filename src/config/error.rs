//! Config file errors, and finding where in the file they are.
//!
//! The `toml` crate reports a byte span; the document parsed with spans
//! (`DeTable`) tells which section and key that span belongs to. Errors found
//! after deserializing (a duplicate name, an unknown pool) go the other way:
//! from a key path to its span. Either way the error names file, line, column,
//! section and key.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What is wrong with a configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as it was named on the command line; empty for an error in
    /// the flags (the message then names the flag).
    pub file: String,
    /// 1-based line and column (in characters) of the offending key or value.
    pub position: Option<(usize, usize)>,
    /// `global`, `frontend "web"`, `pool "app"` (`frontend #2` when unnamed).
    pub section: Option<String>,
    /// The key within its section: `policy`, `servers[1].weight`.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole (cannot read it, no frontend).
    pub(super) fn whole_file(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.display().to_string(),
            position: None,
            section: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error in the command-line flags; the message names the flag.
    pub(super) fn flags(message: impl Into<String>) -> ConfigError {
        ConfigError { file: String::new(), position: None, section: None, key: None, message: message.into() }
    }
}

/// `lbproxy.toml:12:9: frontend "web": key "policy": unknown policy ...`
/// (for the flags, the message alone).
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            return f.write_str(&self.message);
        }
        f.write_str(&self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(section) = &self.section {
            write!(f, ": {section}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key \"{key}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// `["frontend", 1, "policy"]` as a path.
pub(super) fn key_path(section: &str, index: usize, key: &str) -> Vec<Seg> {
    vec![Seg::Key(section.into()), Seg::Index(index), Seg::Key(key.into())]
}

/// The text of a config file and its parsed document, to place errors in.
pub(super) struct Source<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    pub doc: &'a DeTable<'a>,
}

impl Source<'_> {
    /// An error at the key or value that `path` names; when the key is
    /// absent, at the nearest enclosing table that is there.
    pub fn error(&self, path: Vec<Seg>, message: impl Into<String>) -> ConfigError {
        let span = (1..=path.len()).rev().find_map(|n| self.span_of(&path[..n]));
        self.located(span.map(|s| s.start), path, message.into())
    }

    /// The line where the key or value at `path` is (0 if it is not there).
    pub fn line_of(&self, path: &[Seg]) -> usize {
        self.span_of(path).map_or(0, |s| line_column(self.text, s.start).0)
    }

    /// An error from the `toml` crate: a syntax error, an unknown key, a
    /// value of the wrong type, or a value one of our parsers refused.
    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map(|s| s.start);
        let path = offset.map(|o| self.find(o)).unwrap_or_default();
        let message = friendlier(e.message().trim(), &path);
        self.located(offset, path, message)
    }

    fn located(&self, offset: Option<usize>, path: Vec<Seg>, message: String) -> ConfigError {
        let (section, key) = self.describe(&path);
        ConfigError {
            file: self.file.display().to_string(),
            position: offset.map(|o| line_column(self.text, o)),
            section,
            key,
            message,
        }
    }

    /// The span of the value at `path` (of the key, for a table value:
    /// `[[frontend]]` tables have no useful span of their own).
    fn span_of(&self, path: &[Seg]) -> Option<Range<usize>> {
        let (mut table, mut value): (Option<&DeTable>, Option<&Spanned<DeValue>>) = (Some(self.doc), None);
        let mut key_span = None;
        for seg in path {
            let next = match (seg, table, value.map(|v| v.get_ref())) {
                (Seg::Key(k), Some(t), _) => {
                    let (key, v) = t.get_key_value(k.as_str())?;
                    key_span = Some(key.span());
                    v
                }
                (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i)?,
                _ => return None,
            };
            value = Some(next);
            table = match next.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        // A `[[frontend]]` table may have an empty span: then its key's.
        value.map(|v| v.span()).filter(|s| !s.is_empty()).or(key_span)
    }

    /// The path of the smallest key or value whose span holds `offset`.
    fn find(&self, offset: usize) -> Vec<Seg> {
        fn holds(span: &Range<usize>, offset: usize) -> bool {
            span.start <= offset && offset < span.end.max(span.start + 1)
        }
        fn visit_table(t: &DeTable, offset: usize, path: &mut Vec<Seg>, best: &mut (usize, Vec<Seg>)) {
            for (k, v) in t.iter() {
                path.push(Seg::Key(k.get_ref().to_string()));
                if holds(&k.span(), offset) && k.span().len() <= best.0 {
                    *best = (k.span().len(), path.clone());
                }
                visit_value(v, offset, path, best);
                path.pop();
            }
        }
        fn visit_value(v: &Spanned<DeValue>, offset: usize, path: &mut Vec<Seg>, best: &mut (usize, Vec<Seg>)) {
            if holds(&v.span(), offset) && v.span().len() <= best.0 {
                *best = (v.span().len(), path.clone());
            }
            match v.get_ref() {
                DeValue::Table(t) => visit_table(t, offset, path, best),
                DeValue::Array(a) => {
                    for (i, item) in a.iter().enumerate() {
                        path.push(Seg::Index(i));
                        visit_value(item, offset, path, best);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        let mut best = (usize::MAX, Vec::new());
        visit_table(self.doc, offset, &mut Vec::new(), &mut best);
        best.1
    }

    /// Section and key of a path: `frontend "web"` and `policy`.
    fn describe(&self, path: &[Seg]) -> (Option<String>, Option<String>) {
        let (section, rest) = match path {
            [Seg::Key(s), rest @ ..] if s == "global" => (Some("global".to_string()), rest),
            [Seg::Key(s), Seg::Index(i), rest @ ..] if s == "frontend" || s == "pool" => {
                let section = match self.name_of(s, *i) {
                    Some(name) => format!("{s} \"{name}\""),
                    None => format!("{s} #{}", i + 1),
                };
                (Some(section), rest)
            }
            rest => (None, rest),
        };
        let mut key = String::new();
        for seg in rest {
            match seg {
                Seg::Key(k) if key.is_empty() => key.push_str(k),
                Seg::Key(k) => {
                    key.push('.');
                    key.push_str(k);
                }
                Seg::Index(i) => key.push_str(&format!("[{i}]")),
            }
        }
        (section, (!key.is_empty()).then_some(key))
    }

    /// The `name` of the i-th `[[frontend]]` or `[[pool]]`, if it is a string.
    fn name_of(&self, section: &str, i: usize) -> Option<String> {
        let list = self.doc.get(section)?;
        let DeValue::Array(a) = list.get_ref() else { return None };
        let DeValue::Table(t) = a.get(i)?.get_ref() else { return None };
        t.get("name")?.get_ref().as_str().map(str::to_string)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// serde's wording in the words of this file format: keys, not fields.
fn friendlier(message: &str, path: &[Seg]) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let expected = rest.split_once('`').map_or("", |(_, e)| e);
        let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return if names.is_empty() {
            "unknown key".into()
        } else {
            format!("unknown key (expected one of: {})", names.join(", "))
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        return format!("missing key \"{}\"", rest.trim_end_matches('`'));
    }
    let top = match path {
        [Seg::Key(k)] => k.as_str(),
        _ => "",
    };
    if (top == "frontend" || top == "pool") && message.contains("expected a sequence") {
        return format!("write each one as [[{top}]] (an array of tables) with name = \"...\"");
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('"').unwrap()), (2, 6));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn serde_words_become_key_words() {
        let m = friendlier("unknown field `polcy`, expected one of `name`, `bind`", &[]);
        assert_eq!(m, "unknown key (expected one of: name, bind)");
        let m = friendlier("invalid type: map, expected a sequence", &[Seg::Key("pool".into())]);
        assert!(m.contains("[[pool]]"), "{m}");
        assert_eq!(friendlier("missing field `address`", &[]), "missing key \"address\"");
        assert_eq!(friendlier("anything else", &[]), "anything else");
    }

    #[test]
    fn display_names_every_part_it_has() {
        let e = ConfigError {
            file: "lb.toml".into(),
            position: Some((12, 9)),
            section: Some("frontend \"web\"".into()),
            key: Some("policy".into()),
            message: "unknown policy".into(),
        };
        assert_eq!(e.to_string(), "lb.toml:12:9: frontend \"web\": key \"policy\": unknown policy");
        assert_eq!(ConfigError::whole_file(Path::new("x.toml"), "no frontend").to_string(), "x.toml: no frontend");
    }
}
