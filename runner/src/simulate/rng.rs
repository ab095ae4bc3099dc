//! The simulation's randomness: SplitMix64 streams from the seed, so one seed is one exact
//! run on every machine (no thread, clock or hash-map order takes part).

/// A deterministic stream of numbers.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The stream `stream` of `seed`: the schedule and the faults draw from separate streams,
    /// so turning a fault off does not move the schedule's draws.
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng { state: mix(seed ^ mix(stream.wrapping_add(0x9e37_79b9_7f4a_7c15))) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        spread(self.next_u64(), low, high)
    }
}

/// SplitMix64's finaliser: every bit of the input moves every bit of the output.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A draw as a number in `[0, 1)`.
pub fn unit(draw: u64) -> f64 {
    (draw >> 11) as f64 / (1u64 << 53) as f64
}

/// A draw as a number in `low..=high` (`low` when the range is empty).
pub fn spread(draw: u64, low: i64, high: i64) -> i64 {
    if high <= low {
        return low;
    }
    let width = (i128::from(high) - i128::from(low) + 1) as u128;
    i64::try_from(i128::from(low) + (u128::from(draw) % width) as i128).unwrap_or(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_is_one_stream_and_streams_differ() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7, 2);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn ranges_hold_at_their_edges() {
        let mut r = Rng::new(1, 1);
        for _ in 0..10_000 {
            let x = r.between(-3, 3);
            assert!((-3..=3).contains(&x));
            let u = unit(r.next_u64());
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(spread(u64::MAX, 5, 5), 5);
        assert_eq!(spread(u64::MAX, 5, 1), 5);
        let _ = spread(u64::MAX, i64::MIN, i64::MAX);
    }
}
