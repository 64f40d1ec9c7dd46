// SPDX-License-Identifier: GPL-2.0

//! Locality-based least-connection scheduling with replication, independent of the kernel
//! (`no_std`, host-tested).
//!
//! Each service keeps a table from destination addresses to a set of servers, newest first.
//! A connection to a known address goes to the set's weighted least-connection member unless
//! it is overloaded (the lblc rule) or the set has none; then the service's weighted
//! least-connection server is chosen and added to the set. A set of more than one server
//! not changed for the expiration time (a day) loses its most loaded member. Entries expire
//! as lblc's.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_lblcr.c`

#![allow(dead_code, unreachable_pub)]

use crate::{
    lblc::DestKey,
    server::{conn_overhead, Server},
};

/// The member of `set` (keys, newest first) to use (`ip_vs_dest_set_min`): the first that
/// is still in the service with a positive weight and not overloaded, replaced by any later
/// one in the service, not overloaded, with a smaller overhead per weight. Returns its index
/// in `dests`.
pub fn set_min<S: Server>(set: &[DestKey], dests: &[S]) -> Option<usize> {
    let mut members = set.iter().filter_map(|k| k.find(dests));
    let mut least = members.find(|&i| !dests[i].overloaded() && dests[i].weight() > 0)?;
    let mut loh = conn_overhead(&dests[least]);
    for i in members {
        let d = &dests[i];
        if d.overloaded() {
            continue;
        }
        let doh = conn_overhead(d);
        if loh as i64 * d.weight() as i64 > doh as i64 * dests[least].weight() as i64 {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// The member of `set` to drop when the set is shrunk (`ip_vs_dest_set_max`): the first with
/// a positive weight, replaced by any later one with a positive weight and a larger overhead
/// per weight. Returns its index in `set`.
///
/// Upstream still sees the weight and connections of a member removed from the service
/// (it sits in the trash); here such a member is not visible and never chosen.
pub fn set_max<S: Server>(set: &[DestKey], dests: &[S]) -> Option<usize> {
    let mut members = set
        .iter()
        .enumerate()
        .filter_map(|(k, key)| Some((k, key.find(dests)?)));
    let (mut most_k, mut most) = members.find(|&(_, i)| dests[i].weight() > 0)?;
    let mut moh = conn_overhead(&dests[most]);
    for (k, i) in members {
        let d = &dests[i];
        let doh = conn_overhead(d);
        if (moh as i64 * (d.weight() as i64) < doh as i64 * dests[most].weight() as i64)
            && d.weight() > 0
        {
            most_k = k;
            most = i;
            moh = doh;
        }
    }
    Some(most_k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::D;

    fn keys(d: &[D]) -> Vec<DestKey> {
        d.iter().map(DestKey::of).collect()
    }

    #[test]
    fn min_of_set() {
        let mut d = vec![D::new(1, 1), D::new(2, 1), D::new(3, 1)];
        let set = keys(&d[1..]);
        assert_eq!(set_min(&set, &d), Some(1));
        d[1].active = 1;
        assert_eq!(set_min(&set, &d), Some(2));
        d[2].overloaded = true;
        assert_eq!(set_min(&set, &d), Some(1));
        d[1].weight = 0;
        assert_eq!(set_min(&set, &d), None);
        // Members no longer in the service are skipped.
        assert_eq!(set_min(&set, &d[..1]), None);
        assert_eq!(set_min(&[], &d), None);
    }

    #[test]
    fn max_of_set() {
        let mut d = vec![D::new(1, 1), D::new(2, 2), D::new(3, 1)];
        let set = keys(&d);
        assert_eq!(set_max(&set, &d), Some(0));
        d[1].active = 1;
        d[1].total = 1;
        d[2].active = 1;
        d[2].total = 1;
        // 257/1 for the third beats 257/2 for the second.
        assert_eq!(set_max(&set, &d), Some(2));
        d[2].weight = 0;
        assert_eq!(set_max(&set, &d), Some(1));
        // Overloaded members count here.
        d[1].overloaded = true;
        assert_eq!(set_max(&set, &d), Some(1));
        assert_eq!(set_max(&set, &d[..1]), Some(0));
    }
}
