//! What a policy would pick now and why: `GET /explain` and the access
//! log's `explain` field. Every policy fills one `Explanation` from the same
//! code its `pick` runs, without changing what the next pick will be, so
//! the answer is the next real pick as long as nothing changes in between.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::Candidates;

/// One backend as the policy saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateView {
    /// Index in the pool's backend list.
    pub backend: usize,
    /// Why it could not be picked (down, draining, tried, over its bounded load...).
    pub excluded: Option<String>,
    /// Its scores as the policy sees them, in the policy's own terms.
    pub scores: Vec<(&'static str, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub pick: Option<usize>,
    /// How the policy decides, in one line.
    pub rule: String,
    /// What the policy looked at that belongs to no one backend (key position, random draws).
    pub inputs: Vec<(&'static str, Value)>,
    /// Every listed backend (not removed), in list order.
    pub candidates: Vec<CandidateView>,
}

impl Explanation {
    /// Every listed backend of `c`, excluded where `c` says why.
    pub fn new(c: &Candidates, rule: impl Into<String>) -> Explanation {
        let candidates = (0..c.len())
            .filter(|&i| c.why_not(i) != Some("removed"))
            .map(|i| CandidateView { backend: i, excluded: c.why_not(i).map(str::to_string), scores: Vec::new() })
            .collect();
        Explanation { pick: None, rule: rule.into(), inputs: Vec::new(), candidates }
    }

    pub fn input(&mut self, name: &'static str, v: Value) -> &mut Self {
        self.inputs.push((name, v));
        self
    }

    /// Record a score of backend `i` (ignored for a backend not listed).
    pub fn score(&mut self, i: usize, name: &'static str, v: Value) {
        if let Some(cv) = self.candidates.iter_mut().find(|cv| cv.backend == i) {
            cv.scores.push((name, v));
        }
    }

    /// Backend `i` was passed over for `why`, unless already excluded.
    pub fn exclude(&mut self, i: usize, why: String) {
        if let Some(cv) = self.candidates.iter_mut().find(|cv| cv.backend == i) {
            cv.excluded.get_or_insert(why);
        }
    }

    pub fn picked(mut self, pick: Option<usize>) -> Explanation {
        self.pick = pick;
        self
    }

    /// JSON for `/explain`, backends named by address.
    pub fn to_json(&self, c: &Candidates) -> Value {
        let addr = |i: usize| c.addr(i).to_string();
        let obj = |v: &[(&'static str, Value)]| {
            Value::Object(v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<serde_json::Map<_, _>>())
        };
        let candidates: Vec<Value> = self
            .candidates
            .iter()
            .map(|cv| {
                json!({"backend": addr(cv.backend), "picked": self.pick == Some(cv.backend),
                       "excluded": cv.excluded, "scores": obj(&cv.scores)})
            })
            .collect();
        json!({"pick": self.pick.map(addr), "rule": self.rule, "inputs": obj(&self.inputs), "candidates": candidates})
    }

    /// One line for the access log: `*` marks the pick, `!why` an exclusion:
    /// `127.0.0.1:8001(in_flight=3) *127.0.0.1:8002(in_flight=2) 127.0.0.1:8003(!down)`.
    pub fn compact(&self, c: &Candidates) -> String {
        let mut out = String::new();
        for (k, cv) in self.candidates.iter().enumerate() {
            let mark = if self.pick == Some(cv.backend) { "*" } else { "" };
            let _ = write!(out, "{}{mark}{}(", if k == 0 { "" } else { " " }, c.addr(cv.backend));
            match &cv.excluded {
                Some(why) => {
                    let _ = write!(out, "!{why}");
                }
                None => {
                    for (j, (name, v)) in cv.scores.iter().enumerate() {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => match n.as_f64() {
                                Some(f) if n.is_f64() => format!("{f:.1}"),
                                _ => n.to_string(),
                            },
                            other => other.to_string(),
                        };
                        let _ = write!(out, "{}{name}={v}", if j == 0 { "" } else { "," });
                    }
                }
            }
            out.push(')');
        }
        out
    }
}

/// A 64-bit ring or key position as the JSON shows it (hex: exact, unlike a JSON number).
pub fn hex(v: u64) -> Value {
    Value::String(format!("{v:016x}"))
}
