//! `GET /explain?frontend=F&key=K`: what frontend F's policy would pick now
//! for key K, and why, with each shadow's answer beside it. Nothing is
//! picked: the next real pick for K is the one explained, unless something
//! changes in between (another pick, a response time, a health change), or
//! slow start refuses the pick (`slow_start` says whether it would), or the
//! pick happens in a worker (`--workers`) whose copy of the policy has its
//! own state: this explains the main reactor's, and `workers` says whether
//! every worker's copy would pick the same.

use std::net::IpAddr;

use serde_json::json;

use super::Server;
use crate::admin::Reply;
use crate::policy::{Candidates, PickKey, Policy};

impl Server {
    pub(super) fn explain(&mut self, frontend: Option<&str>, key: &str) -> Reply {
        let found = match frontend {
            Some(name) => self.frontends.iter().position(|f| f.name == name && f.is_live()),
            None => self.frontends.iter().position(|f| f.is_live()),
        };
        let Some(fi) = found else {
            let names: Vec<&str> = self.frontends.iter().filter(|f| f.is_live()).map(|f| f.name.as_str()).collect();
            let asked = frontend.unwrap_or("");
            return Reply::failure(404, &format!("no frontend \"{asked}\" (frontends: {})", names.join(", ")));
        };
        let f = &mut self.frontends[fi];
        // The same key the mode would build: the --hash-key value's hash, or the client address.
        let pick_key = match (&f.config.hash_key, key.parse::<IpAddr>()) {
            (Some(_), _) => PickKey {
                client_ip: IpAddr::from([0, 0, 0, 0]),
                request_hash: Some(crate::policy::hash::hash_bytes(0, key.as_bytes())),
            },
            (None, Ok(ip)) => PickKey::ip(ip),
            (None, Err(_)) => {
                let why = format!(
                    "key \"{key}\" is not an IP address: frontend \"{}\" hashes the client address (no hash_key)",
                    f.name
                );
                return Reply::failure(400, &why);
            }
        };
        let backends = &self.pools[f.pool].backends;
        let c = Candidates::new(backends, &[]);
        let explained = f.policy.explain(&pick_key, &c);
        let mut answer = explained.to_json(&c);
        // Slow start acts around the policy: a ramping backend the policy
        // picks takes only its share, else the policy is asked again without it.
        let now = self.now;
        let ramping: Vec<_> = (backends.iter().enumerate())
            .filter(|(_, b)| !b.removed && b.ramp.clone().ramping(now))
            .map(|(i, b)| {
                let admits = b.ramp.clone().admit(now);
                json!({"backend": b.addr.to_string(), "factor": b.ramp.factor(now), "admits_next_pick": admits,
                       "picked": explained.pick == Some(i)})
            })
            .collect();
        answer["slow_start"] = json!(ramping);
        let shadows: Vec<_> = f
            .policy
            .shadows_mut()
            .iter_mut()
            .map(|s| {
                let mut e = s.explain(&pick_key, &c).to_json(&c);
                e["policy"] = json!(s.kind.name());
                e
            })
            .collect();
        answer["frontend"] = json!(f.name);
        answer["policy"] = json!(f.config.policy.name());
        answer["key"] = json!(key);
        answer["shadows"] = json!(shadows);
        let reactors = 1 + self.workers.as_ref().map_or(0, |w| w.len());
        let same = reactors == 1 || f.config.policy.same_in_every_worker();
        answer["workers"] = json!({"reactors": reactors, "explained_by": "main reactor", "same_in_every_worker": same});
        Reply::json(200, &answer)
    }
}
