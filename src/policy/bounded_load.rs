//! Bounded loads for the hashing policies (Mirrokni, Thorup and
//! Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2016; HAProxy's
//! `hash-balance-factor`, Envoy's `hash_balance_factor`): no backend takes
//! more than `factor` times its share of the requests in flight. A key whose
//! backend is at its cap goes on along the ring (or the Maglev table) to the
//! next backend under its cap, in the same fixed order every time, so keys
//! still stick to a backend while loads are even and spill only from hot ones.

use super::Candidates;

/// Whether backend `i` may take one more request: usable, and below
/// `factor` x (requests in flight + this one) x its weight share, rounded up.
/// With `factor` >= 1 some usable backend is always below its cap.
pub fn under_cap<'a>(c: &'a Candidates<'a>, factor: f64) -> impl Fn(usize) -> bool + 'a {
    let cap = caps(c, factor);
    move |i| c.usable(i) && (c.active(i) as f64) < cap(i)
}

/// Every backend's cap: requests in flight it may hold before this one.
pub fn caps<'a>(c: &'a Candidates<'a>, factor: f64) -> impl Fn(usize) -> f64 + 'a {
    caps_counting(c, factor, 1)
}

/// Caps with `more` requests about to be added to those in flight.
fn caps_counting<'a>(c: &'a Candidates<'a>, factor: f64, more: u64) -> impl Fn(usize) -> f64 + 'a {
    let (mut in_flight, mut weights) = (0u64, 0u64);
    for i in c.usable_indices() {
        in_flight += c.active(i);
        weights += u64::from(c.weight(i));
    }
    let per_weight = factor * (in_flight + more) as f64 / weights.max(1) as f64;
    move |i| (per_weight * f64::from(c.weight(i))).ceil()
}

/// Backend `i` was picked and its request is counted now: is it still
/// within its cap, every request in flight counted (this one too)? Workers
/// share the counts, so two that picked `i` at once both see both
/// requests here, and neither keeps a pick that together passed the cap.
pub fn holds_after_count(c: &Candidates, i: usize, factor: f64) -> bool {
    (c.active(i) as f64) <= caps_counting(c, factor, 0)(i)
}

/// Mark in `e` the usable backends at their cap, with their in-flight count
/// and cap as scores (when the pick came from the capped walk).
pub fn explain(e: &mut super::Explanation, c: &Candidates, factor: f64) {
    let cap = caps(c, factor);
    for i in c.usable_indices() {
        e.score(i, "in_flight", serde_json::json!(c.active(i)));
        e.score(i, "cap", serde_json::json!(cap(i)));
        if (c.active(i) as f64) >= cap(i) {
            e.exclude(i, format!("over its bounded load ({} in flight, cap {})", c.active(i), cap(i)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn caps_follow_the_mean_and_the_weights() {
        let b = weighted(&[1, 1, 2]);
        let claims: Vec<_> = [0, 0, 0, 0, 1, 2].iter().map(|&i| b[i].claim()).collect();
        let c = Candidates::new(&b, &[]);
        // 6 in flight + 1, factor 1.25, weight share 1/4, 1/4, 2/4: caps 3, 3, 5.
        let fits = under_cap(&c, 1.25);
        assert_eq!((fits(0), fits(1), fits(2)), (false, true, true));
        drop(claims);
        let fits = under_cap(&c, 1.25);
        assert!(fits(0) && fits(1) && fits(2), "nothing in flight: every backend fits");
    }

    #[test]
    fn a_pick_counted_twice_at_once_does_not_hold() {
        // 3 equal backends at 1.25, two requests in flight on backend 0, one on 1.
        let b = backends(3);
        let held: Vec<_> = [0, 0, 1].iter().map(|&i| b[i].claim()).collect();
        let c = Candidates::new(&b, &[]);
        // Before counting: 3 in flight + 1, cap ceil(1.25 x 4 / 3) = 2; backend 0 holds 2: not under.
        assert!(!under_cap(&c, 1.25)(0) && under_cap(&c, 1.25)(1));
        // Two workers both picked backend 1 and counted their requests at once:
        // 5 in flight, cap ceil(1.25 x 5 / 3) = 3, backend 1 holds 3: holds.
        let (x, y) = (b[1].claim(), b[1].claim());
        assert!(holds_after_count(&c, 1, 1.25));
        // A third at the same moment: 6 in flight, cap ceil(2.5) = 3, backend 1 holds 4: does not.
        let z = b[1].claim();
        assert!(!holds_after_count(&c, 1, 1.25));
        drop((x, y, z, held));
    }

    /// `n` requests of one hot key in flight at once through `p`: the
    /// backends they went to, in order.
    pub fn hot_key(p: &mut dyn crate::policy::Policy, b: &[crate::backend::Backend], n: usize) -> Vec<usize> {
        let mut claims = Vec::new();
        (0..n)
            .map(|_| {
                let i = p.pick(&hkey(42), &Candidates::new(b, &[])).expect("a pick");
                claims.push(b[i].claim());
                i
            })
            .collect()
    }

    #[test]
    fn a_hot_key_spills_past_its_cap_on_the_ring_and_in_maglev() {
        use crate::policy::{ConsistentHash, Maglev};
        let b = backends(3);
        for (name, mut bounded, mut plain) in [
            (
                "ring",
                Box::new(ConsistentHash::new(0, 160, None).with_balance(Some(1.25))) as Box<dyn crate::policy::Policy>,
                Box::new(ConsistentHash::new(0, 160, None)) as Box<dyn crate::policy::Policy>,
            ),
            ("maglev", Box::new(Maglev::new(0, 65_537).with_balance(Some(1.25))), Box::new(Maglev::new(0, 65_537))),
        ] {
            let unbounded = hot_key(plain.as_mut(), &b, 30);
            assert!(unbounded.iter().all(|&i| i == unbounded[0]), "{name}: without a cap one backend takes all");
            let picks = hot_key(bounded.as_mut(), &b, 30);
            let home = picks[0];
            assert_eq!(home, unbounded[0], "{name}: the key starts at its own backend");
            let mut counts = [0usize; 3];
            for &i in &picks {
                counts[i] += 1;
            }
            // 30 in flight at 1.25 x the mean: at most ceil(1.25 x 30 / 3) = 13 each.
            assert!(counts.iter().all(|&c| c <= 13), "{name}: {counts:?}");
            assert_eq!(counts[home], 13, "{name}: the home backend fills to its cap first: {counts:?}");
            // Spills go along one fixed order: the next backend after home
            // takes them until it too is at its cap, so it gets at least as
            // many as the third; and the same run gives the same picks.
            let first = picks.iter().copied().find(|&i| i != home).expect("a spill");
            let third = 3 - home - first;
            assert!(counts[first] >= counts[third], "{name}: {picks:?}");
            let b2 = backends(3);
            let again = if name == "ring" {
                hot_key(&mut ConsistentHash::new(0, 160, None).with_balance(Some(1.25)), &b2, 30)
            } else {
                hot_key(&mut Maglev::new(0, 65_537).with_balance(Some(1.25)), &b2, 30)
            };
            assert_eq!(again, picks, "{name}: deterministic");
        }
    }
}
