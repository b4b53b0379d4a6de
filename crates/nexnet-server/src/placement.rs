//! Where an object lives: rendezvous (highest random weight) hashing.
//!
//! Every node scores every member for a cid and the R best scores hold the
//! object. Any node computes the same answer from the same member list, and
//! a member joining or leaving moves only the objects it wins or held.

use nexnet_p2p::NodeId;
use nexnet_store::Cid;
use sha2::{Digest, Sha256};

/// A member's weight for `cid`.
fn score(node: &NodeId, cid: &Cid) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"nexnet/placement/v1\0");
    h.update(node.as_bytes());
    h.update(cid.as_bytes());
    h.finalize().into()
}

/// The `r` nodes among `nodes` that should hold `cid`, best first.
/// Duplicates in `nodes` count once.
pub fn holders(cid: &Cid, nodes: impl IntoIterator<Item = NodeId>, r: usize) -> Vec<NodeId> {
    let mut scored: Vec<([u8; 32], NodeId)> =
        nodes.into_iter().map(|n| (score(&n, cid), n)).collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(r).map(|(_, n)| n).collect()
}

/// The nodes that hold `name`'s catalog entry: the first `r` of `nodes`
/// by rendezvous hashing of the name id, so that any node finds them from
/// the name alone.
pub fn name_holders(
    name: &nexnet_crypto::NameId,
    nodes: impl IntoIterator<Item = NodeId>,
    r: usize,
) -> Vec<NodeId> {
    holders(&Cid::of(name.as_bytes()), nodes, r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nodes(n: u8) -> Vec<NodeId> {
        (0..n).map(|i| NodeId::from_bytes([i; 32])).collect()
    }

    #[test]
    fn same_answer_in_any_order_and_r_distinct_nodes() {
        let cid = Cid::of(b"x");
        let mut ns = nodes(7);
        let a = holders(&cid, ns.clone(), 3);
        ns.reverse();
        ns.extend(nodes(7));
        assert_eq!(holders(&cid, ns, 3), a);
        assert_eq!(a.len(), 3);
        assert!(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
        assert_eq!(holders(&cid, nodes(2), 3).len(), 2);
    }

    #[test]
    fn a_leaving_node_moves_only_its_own_objects() {
        let all = nodes(10);
        let gone = all[3];
        let rest: Vec<_> = all.iter().copied().filter(|n| *n != gone).collect();
        for i in 0..200u32 {
            let cid = Cid::of(&i.to_be_bytes());
            let before = holders(&cid, all.clone(), 2);
            let after = holders(&cid, rest.clone(), 2);
            if !before.contains(&gone) {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn load_spreads_over_members() {
        let all = nodes(5);
        let mut counts = [0usize; 5];
        for i in 0..1000u32 {
            for h in holders(&Cid::of(&i.to_be_bytes()), all.clone(), 2) {
                counts[usize::from(h.as_bytes()[0])] += 1;
            }
        }
        // 2000 placements over 5 nodes: 400 each on average.
        assert!(
            counts.iter().all(|&c| (300..500).contains(&c)),
            "{counts:?}"
        );
    }
}
