//! The faults a simulation injects: which kinds, how often (`--faults`), and the numbered
//! draws that decide each one, so a failing run can be shrunk to the faults it needs.

use std::collections::BTreeSet;
use std::fmt;

use super::rng;

/// A kind of fault the simulated world can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A delivery waits 0.2–15 s (others overtake it; a step may time out meanwhile).
    Delay,
    /// A step request or reply is lost by its consumer: only the saga's timeout recovers it.
    Drop,
    /// A message is handled a second time, up to 3 s later.
    Duplicate,
    /// The service that just acted crashes before committing its offsets or acknowledging
    /// its outbox rows, and restarts 0.05–3 s later with nothing in memory.
    Crash,
    /// The database is unavailable for a transaction: the message is retried.
    Error,
    /// The handler fails this attempt: retried by the consumer's policy, then dead-lettered.
    Fail,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] =
        [FaultKind::Delay, FaultKind::Drop, FaultKind::Duplicate, FaultKind::Crash, FaultKind::Error, FaultKind::Fail];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Delay => "delay",
            FaultKind::Drop => "drop",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Crash => "crash",
            FaultKind::Error => "error",
            FaultKind::Fail => "fail",
        }
    }

    fn index(self) -> usize {
        match self {
            FaultKind::Delay => 0,
            FaultKind::Drop => 1,
            FaultKind::Duplicate => 2,
            FaultKind::Crash => 3,
            FaultKind::Error => 4,
            FaultKind::Fail => 5,
        }
    }
}

/// The probability of each fault kind at each point where it can strike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    rates: [f64; 6],
}

impl Faults {
    /// No faults: the system on a good day (still with reordering across keys).
    pub fn none() -> Self {
        Faults { rates: [0.0; 6] }
    }

    /// The mix `runner simulate` uses unless told otherwise.
    pub fn standard() -> Self {
        Faults { rates: [0.03, 0.02, 0.05, 0.01, 0.02, 0.0] }
    }

    pub fn rate(&self, kind: FaultKind) -> f64 {
        self.rates[kind.index()]
    }

    pub fn with(mut self, kind: FaultKind, rate: f64) -> Self {
        self.rates[kind.index()] = rate;
        self
    }

    /// The kinds with a rate above zero.
    pub fn kinds(&self) -> Vec<FaultKind> {
        FaultKind::ALL.into_iter().filter(|k| self.rate(*k) > 0.0).collect()
    }

    /// Reads `none`, `standard`, or `kind=rate,…` (kinds not named are off).
    pub fn parse(text: &str) -> Result<Faults, String> {
        let text = text.trim();
        match text {
            "none" => return Ok(Faults::none()),
            "standard" => return Ok(Faults::standard()),
            _ => {}
        }
        let known = || FaultKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
        let mut faults = Faults::none();
        let mut seen = BTreeSet::new();
        for part in text.split(',') {
            let Some((name, rate)) = part.split_once('=') else {
                return Err(format!(
                    "`{}` is not `kind=rate`: give e.g. `drop=0.02,crash=0.01`, `standard` or `none`",
                    shown(part)
                ));
            };
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| format!("unknown fault kind `{}`: the kinds are {}", shown(name), known()))?;
            if !seen.insert(kind) {
                return Err(format!("fault kind `{}` is given twice", kind.name()));
            }
            let rate: f64 =
                rate.trim().parse().ok().filter(|r: &f64| r.is_finite() && (0.0..=0.5).contains(r)).ok_or_else(
                    || format!("the rate of `{}` must be a number from 0 to 0.5, not `{}`", kind.name(), shown(rate)),
                )?;
            faults = faults.with(kind, rate);
        }
        Ok(faults)
    }
}

/// Text from the command line as a message shows it: at most 40 characters, no control
/// characters.
fn shown(text: &str) -> String {
    let clean: String = text.trim().chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.chars().count() > 40 {
        format!("{}…", clean.chars().take(40).collect::<String>())
    } else {
        clean
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = self.kinds();
        if kinds.is_empty() {
            return write!(f, "none");
        }
        let parts: Vec<String> = kinds.iter().map(|k| format!("{}={}", k.name(), self.rate(*k))).collect();
        write!(f, "{}", parts.join(","))
    }
}

/// The fault decisions of one run. A decision is named by its site — the fault kind, who
/// decides, the record (by topic, order and ordinal, not by when it came) and how often this
/// site was reached before — and its draw is a hash of the seed and that name. So a fault
/// keeps its id and its draw when other faults are taken away, which is what lets shrinking
/// remove faults one by one; `keep` (when set) lets only the listed ids strike.
pub struct FaultDraws {
    seed: u64,
    faults: Faults,
    keep: Option<BTreeSet<u64>>,
    reached: std::collections::HashMap<u64, u32>,
    /// The ids of the faults that struck, in order.
    pub struck: Vec<u64>,
}

/// Fault ids are this many bits: ten hex digits in a trace.
const ID_BITS: u32 = 40;

/// A fault that struck: its id and a number to size it with (a delay, a downtime).
#[derive(Debug, Clone, Copy)]
pub struct Strike {
    pub id: u64,
    pub size: u64,
}

impl Strike {
    /// The size as a number in `low..=high`.
    pub fn between(&self, low: i64, high: i64) -> i64 {
        rng::spread(self.size, low, high)
    }
}

/// A fault id as traces and `--keep-faults` write it.
pub fn id_text(id: u64) -> String {
    format!("{id:010x}")
}

/// Reads a fault id written by [`id_text`].
pub fn parse_id(text: &str) -> Option<u64> {
    let text = text.trim();
    (text.len() == 10).then(|| u64::from_str_radix(text, 16).ok()).flatten()
}

fn fnv(bytes: impl IntoIterator<Item = u8>, mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl FaultDraws {
    pub fn new(seed: u64, faults: Faults, keep: Option<BTreeSet<u64>>) -> Self {
        FaultDraws { seed, faults, keep, reached: std::collections::HashMap::new(), struck: Vec::new() }
    }

    /// Whether a fault of `kind` strikes at `site`, at its `--faults` rate.
    pub fn draw(&mut self, kind: FaultKind, site: &str) -> Option<Strike> {
        self.draw_at(kind, site, self.faults.rate(kind))
    }

    /// Whether a fault of `kind` strikes at `site`, at `rate` (a pipeline's own chaos rule).
    pub fn draw_at(&mut self, kind: FaultKind, site: &str, rate: f64) -> Option<Strike> {
        let name = fnv(kind.name().bytes().chain([0]).chain(site.bytes()), 0xcbf2_9ce4_8422_2325);
        let reached = self.reached.entry(name).or_insert(0);
        *reached += 1;
        let id = rng::mix(fnv(reached.to_le_bytes(), name)) & ((1 << ID_BITS) - 1);
        let draw = rng::mix(id ^ rng::mix(self.seed));
        let allowed = self.keep.as_ref().is_none_or(|keep| keep.contains(&id));
        if allowed && rng::unit(draw) < rate {
            self.struck.push(id);
            Some(Strike { id, size: rng::mix(draw) })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_are_read_and_bad_ones_say_what_to_write() {
        assert_eq!(Faults::parse("none").unwrap(), Faults::none());
        assert_eq!(Faults::parse("standard").unwrap(), Faults::standard());
        let faults = Faults::parse("drop=0.1, crash=0.02").unwrap();
        assert_eq!(faults.rate(FaultKind::Drop), 0.1);
        assert_eq!(faults.rate(FaultKind::Delay), 0.0);
        assert_eq!(faults.to_string(), "drop=0.1,crash=0.02");
        assert_eq!(Faults::parse(&Faults::standard().to_string()).unwrap(), Faults::standard());
        for (bad, says) in [
            ("drop", "is not `kind=rate`"),
            ("fire=0.1", "unknown fault kind `fire`: the kinds are delay, drop"),
            ("drop=2", "from 0 to 0.5"),
            ("drop=NaN", "from 0 to 0.5"),
            ("drop=-0.1", "from 0 to 0.5"),
            ("drop=0.1,drop=0.2", "given twice"),
            ("drop=\u{0}", "not `?`"),
            ("", "is not `kind=rate`"),
        ] {
            let message = Faults::parse(bad).unwrap_err();
            assert!(message.contains(says), "{bad:?}: {message}");
        }
        let long = format!("{}=0.1", "x".repeat(10_000));
        assert!(Faults::parse(&long).unwrap_err().len() < 200);
    }

    #[test]
    fn a_fault_is_named_by_its_site_not_by_when_it_was_drawn() {
        let all = Faults::none().with(FaultKind::Drop, 0.5);
        let sites: Vec<String> = (0..100).map(|i| format!("site {i}")).collect();
        let mut free = FaultDraws::new(3, all, None);
        let struck: Vec<u64> = sites.iter().filter_map(|s| free.draw(FaultKind::Drop, s)).map(|s| s.id).collect();
        assert!(struck.len() > 20, "{}", struck.len());
        // The same sites in another order strike the same faults.
        let mut reversed = FaultDraws::new(3, all, None);
        let mut again: Vec<u64> =
            sites.iter().rev().filter_map(|s| reversed.draw(FaultKind::Drop, s)).map(|s| s.id).collect();
        again.reverse();
        assert_eq!(again, struck);
        // Kept faults are the only ones that strike; a site reached twice is two faults.
        let keep: BTreeSet<u64> = struck.iter().take(2).copied().collect();
        let mut kept = FaultDraws::new(3, all, Some(keep.clone()));
        let only: BTreeSet<u64> = sites.iter().filter_map(|s| kept.draw(FaultKind::Drop, s)).map(|s| s.id).collect();
        assert_eq!(only, keep);
        let mut twice = FaultDraws::new(3, all, None);
        let first = (0..64).filter_map(|_| twice.draw(FaultKind::Drop, "same")).count();
        assert!(first > 10 && first < 54, "{first}");
        // Another seed, other faults; ids read back as written.
        let mut other = FaultDraws::new(4, all, None);
        let theirs: Vec<u64> = sites.iter().filter_map(|s| other.draw(FaultKind::Drop, s)).map(|s| s.id).collect();
        assert_ne!(theirs, struck);
        assert_eq!(parse_id(&id_text(struck[0])), Some(struck[0]));
        assert_eq!(parse_id("xyz"), None);
        assert_eq!(parse_id("00000000000000000001"), None);
    }
}
