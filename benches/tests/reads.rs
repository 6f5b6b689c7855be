//! Every read path of the `reads` bench reads the same values, on small data sets (the
//! bench itself is run by `cargo bench`, never by `cargo test`).

use relshm_benches::reads::{
    Lmdb, Pairs, Samples, VALUE_SIZES, VEC_READ, VEC_STD, VecPair, ratio_table, shm_map, std_map,
    sum, sum_copied, sum_read, vec_id,
};

#[test]
fn vector_sums_agree() {
    for n in [0, 1, 7, 1000] {
        let v = VecPair::new(n).unwrap();
        let expect = (0..n as u64).sum::<u64>();
        assert_eq!(sum(&v.std), expect);
        assert_eq!(sum_read(&v.shm).unwrap(), expect, "read() of {n}");
        assert_eq!(sum_copied(&v.shm).unwrap(), expect, "to_vec() of {n}");
    }
}

#[test]
fn every_map_returns_every_value() {
    for len in VALUE_SIZES {
        let pairs = Pairs::new(300, len);
        let std = std_map(&pairs);
        let lmdb = Lmdb::load(&pairs).unwrap();
        let db = lmdb.db().unwrap();
        let txn = lmdb.env.read_txn().unwrap();
        let shm = shm_map(&pairs).unwrap();
        let guard = shm.read().unwrap();
        let mut out = Vec::new();
        for i in 0..1000 {
            let key = pairs.key(i);
            let want = std.get(key).expect("every lookup is of a present key");
            assert_eq!(want.len(), len);
            assert_eq!(db.get(&txn, key).unwrap(), Some(&want[..]));
            assert_eq!(guard.get(key).unwrap(), Some(&want[..]));
            assert!(shm.get_into(key, &mut out).unwrap());
            assert_eq!(&out, want);
        }
        assert_eq!(guard.get(b"not a key").unwrap(), None);
        assert_eq!(db.get(&txn, b"not a key").unwrap(), None);
    }
}

#[test]
fn pairs_have_distinct_keys_of_about_16_bytes() {
    let pairs = Pairs::new(10_000, 16);
    let distinct: std::collections::HashSet<_> = pairs.keys.iter().collect();
    assert_eq!(distinct.len(), 10_000);
    let mean = pairs.keys.iter().map(Vec::len).sum::<usize>() as f64 / 10_000.0;
    assert!((15.5..16.5).contains(&mean), "mean key length {mean}");
}

#[test]
fn ratios_use_the_last_samples_and_skip_what_did_not_run() {
    let s = Samples::new(3);
    assert_eq!(ratio_table(&s), "");
    // Criterion's warm-up calls come first (here slow), then the three samples.
    for ns in [1000.0, 500.0, 40.0, 60.0, 50.0] {
        s.record(&vec_id(VEC_READ, 1000), ns);
    }
    for ns in [10.0, 20.0, 25.0] {
        s.record(&vec_id(VEC_STD, 1000), ns);
    }
    assert_eq!(s.median_ns(&vec_id(VEC_READ, 1000)), Some(50.0));
    assert_eq!(
        s.ratio(&vec_id(VEC_READ, 1000), &vec_id(VEC_STD, 1000)),
        Some(2.5)
    );
    let table = ratio_table(&s);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("read().iter() / std"))
        .unwrap_or_else(|| panic!("no vector row in\n{table}"));
    assert_eq!(
        row.split_whitespace().skip(3).collect::<Vec<_>>(),
        ["2.50", "-", "-"],
        "{table}"
    );
}
