//! Which WAL position may be confirmed to PostgreSQL: the end of the last transaction whose
//! rows the broker has all acknowledged, never further. Transactions are confirmed in
//! commit order even when acknowledgements arrive out of order.

use std::collections::VecDeque;

/// A transaction handed to the broker, by its place in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnId(u64);

struct Pending {
    end_lsn: u64,
    unacked: usize,
    commit_micros: i64,
}

#[derive(Default)]
pub struct AckTracker {
    /// Transactions not yet confirmable, oldest first; the first has id `first`.
    pending: VecDeque<Pending>,
    first: u64,
    confirmed: u64,
    /// The last position handed out by [`Self::take_confirmable`].
    reported: u64,
}

impl AckTracker {
    /// Records a committed transaction with `rows` rows being published.
    pub fn register(&mut self, end_lsn: u64, rows: usize, commit_micros: i64) -> TxnId {
        let id = TxnId(self.first + self.pending.len() as u64);
        self.pending.push_back(Pending { end_lsn, unacked: rows, commit_micros });
        self.advance();
        id
    }

    /// One row of the transaction was acknowledged by the broker.
    pub fn ack(&mut self, txn: TxnId) {
        if let Some(index) = txn.0.checked_sub(self.first) {
            if let Some(p) = self.pending.get_mut(index as usize) {
                p.unacked = p.unacked.saturating_sub(1);
            }
        }
        self.advance();
    }

    /// A position received on the stream with nothing of ours before it still unacknowledged
    /// (a heartbeat message): confirmable when nothing is pending.
    pub fn idle_at(&mut self, lsn: u64) {
        if self.pending.is_empty() {
            self.confirmed = self.confirmed.max(lsn);
        }
    }

    fn advance(&mut self) {
        while self.pending.front().is_some_and(|p| p.unacked == 0) {
            let done = self.pending.pop_front().expect("front exists");
            self.first += 1;
            self.confirmed = self.confirmed.max(done.end_lsn);
        }
    }

    /// The new confirmable position, if it moved since the last call.
    pub fn take_confirmable(&mut self) -> Option<u64> {
        (self.confirmed > self.reported).then(|| {
            self.reported = self.confirmed;
            self.confirmed
        })
    }

    #[cfg(test)]
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Commit time of the oldest transaction not yet fully acknowledged.
    pub fn oldest_pending_commit_micros(&self) -> Option<i64> {
        self.pending.front().map(|p| p.commit_micros)
    }

    pub fn pending_rows(&self) -> usize {
        self.pending.iter().map(|p| p.unacked).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_only_fully_acknowledged_prefixes_in_commit_order() {
        let mut t = AckTracker::default();
        let a = t.register(100, 2, 0);
        let b = t.register(200, 1, 0);
        assert_eq!(t.take_confirmable(), None);
        t.ack(b);
        assert_eq!(t.take_confirmable(), None, "b is done but a is not");
        t.ack(a);
        assert_eq!(t.take_confirmable(), None, "a has a second row");
        t.ack(a);
        assert_eq!(t.take_confirmable(), Some(200));
        assert_eq!(t.take_confirmable(), None);
        assert!(t.is_idle());
    }

    #[test]
    fn empty_transactions_and_idle_positions_move_only_when_nothing_is_pending() {
        let mut t = AckTracker::default();
        t.register(50, 0, 0);
        assert_eq!(t.take_confirmable(), Some(50));
        let a = t.register(100, 1, 0);
        t.idle_at(150);
        t.register(160, 0, 0);
        assert_eq!(t.take_confirmable(), None);
        assert_eq!(t.pending_rows(), 1);
        t.ack(a);
        assert_eq!(t.take_confirmable(), Some(160));
        t.idle_at(300);
        assert_eq!(t.take_confirmable(), Some(300));
        t.idle_at(250);
        assert_eq!(t.confirmed(), 300, "never moves backwards");
    }
}
