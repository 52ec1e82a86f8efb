//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and every fixed crash
//! (`fuzz/regressions/<target>/`) through the checks, then a few thousand inputs from a fixed
//! pseudo-random generator, so that the fuzz properties hold in every test run, without
//! libFuzzer.

use std::path::PathBuf;

fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(kind).join(target);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    out.sort();
    out
}

fn replay(kind: &str, target: &str) -> usize {
    let list = files(kind, target);
    for path in &list {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| slotgate_fuzz::run(target, &data)).is_err() {
            panic!("{target}: {} fails its check; run `cargo fuzz run {target} --features libfuzzer {}` to see it", path.display(), path.display());
        }
    }
    list.len()
}

#[test]
fn corpus_and_regressions_pass_every_check() {
    for target in slotgate_fuzz::TARGETS {
        let seeds = replay("corpus", target);
        assert!(seeds > 0, "{target}: no seed corpus in fuzz/corpus/{target}");
        replay("regressions", target);
    }
}

/// xorshift64*: the same inputs in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Mutates the seeds a little (byte flips, truncation, splices), as a fuzzer's first minutes do.
#[test]
fn mutated_seeds_pass_every_check() {
    let mut rng = Rng(0x5107_6a7e);
    for target in slotgate_fuzz::TARGETS {
        let seeds: Vec<Vec<u8>> = files("corpus", target).iter().filter_map(|p| std::fs::read(p).ok()).collect();
        for round in 0..1500 {
            let mut data = seeds[rng.next() as usize % seeds.len()].clone();
            for _ in 0..1 + rng.next() % 4 {
                let r = rng.next();
                match r % 4 {
                    0 if !data.is_empty() => {
                        let at = (r >> 8) as usize % data.len();
                        data[at] = (r >> 32) as u8;
                    }
                    1 => data.truncate((r >> 8) as usize % (data.len() + 1)),
                    2 => {
                        let other = &seeds[(r >> 8) as usize % seeds.len()];
                        let at = (r >> 24) as usize % (data.len() + 1);
                        data.splice(at..at, other.iter().copied().take(64));
                    }
                    _ => data.push((r >> 16) as u8),
                }
            }
            if std::panic::catch_unwind(|| slotgate_fuzz::run(target, &data)).is_err() {
                panic!("{target}: mutated input {round} fails: {data:?}");
            }
        }
    }
}
