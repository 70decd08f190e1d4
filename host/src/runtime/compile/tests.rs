//! The compile slots, limits and notifications of [`super::Compiler`].

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;

use super::*;
use crate::runtime::cache::sha256_hex;

/// A module of `n` small functions; `seed` makes its bytes unique.
fn module(n: usize, seed: u32) -> Vec<u8> {
    let mut wat = format!("(module (func (export \"f\") (result i32) (i32.const {seed}))\n");
    for i in 0..n {
        wat += &format!(
            "(func (param i32) (result i32) (i32.mul (i32.add (local.get 0) (i32.const {i})) (i32.const {seed})))\n"
        );
    }
    wat.push(')');
    wat.into_bytes()
}

fn compiler() -> (Compiler, Arc<AtomicUsize>, tempfile::TempDir) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let notify = Arc::new(move || {
        counted.fetch_add(1, SeqCst);
    });
    (
        Compiler::new(&Engine::default(), notify),
        calls,
        tempfile::tempdir().unwrap(),
    )
}

const LONG: Duration = Duration::from_secs(60);

#[test]
fn a_compile_is_collected_and_a_second_load_of_the_same_bytes_reads_the_cache() {
    let (c, calls, dir) = compiler();
    let bytes = module(10, 1);
    let sha = sha256_hex(&bytes);
    c.start(bytes.clone(), &sha, dir.path(), LONG);
    let far = Instant::now() + LONG;
    assert!(matches!(
        c.collect(&sha, far),
        Compiled::Ready(_, Origin::Compiled)
    ));
    c.start(bytes, &sha, dir.path(), LONG);
    assert!(matches!(c.collect(&sha, far), Compiled::Ready(_, Origin::Cached)));
    assert_eq!(
        calls.load(SeqCst),
        0,
        "nobody stopped waiting: no reload asked for"
    );
}

#[test]
fn a_compile_over_its_time_limit_fails_and_is_not_started_again() {
    let (c, _, dir) = compiler();
    let bytes = module(3000, 2);
    let sha = sha256_hex(&bytes);
    let limit = Duration::from_millis(1);
    c.start(bytes.clone(), &sha, dir.path(), limit);
    let Compiled::Failed(msg) = c.collect(&sha, Instant::now() + LONG) else {
        panic!("not failed")
    };
    assert!(
        msg.contains("did not compile within 1ms ([plugins] compile_timeout)"),
        "{msg}"
    );
    c.start(bytes, &sha, dir.path(), LONG);
    assert!(matches!(c.collect(&sha, Instant::now()), Compiled::Failed(_)));
}

/// A module with one function body of `reps` × 14 bytes (issue 16's
/// fairness finding: such bodies are the slowest to compile per byte).
fn one_big_body(reps: usize, seed: u32) -> Vec<u8> {
    let step = "local.get 0 local.get 1 i32.add local.set 1 local.get 1 local.get 0 i32.mul local.set 0\n";
    let wat = format!(
        "(module (func (export \"f\") (result i32) (i32.const {seed}))\n\
         (func (param i32 i32) (result i32)\n{} local.get 0))",
        step.repeat(reps)
    );
    wat::parse_str(wat).unwrap()
}

fn wait_for(calls: &AtomicUsize, n: usize) {
    let t = Instant::now();
    while calls.load(SeqCst) < n {
        assert!(t.elapsed() < LONG, "never notified");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn big_compiles_wait_for_slots_but_small_ones_start_at_once_and_queued_time_is_not_their_own() {
    let (c, calls, dir) = compiler();
    // Over SMALL_FILE, and slow: they hold the MAX_RUNNING slots.
    let bigs: Vec<Vec<u8>> = (0..3).map(|i| one_big_body(80_000, 10 + i)).collect();
    assert!(bigs.iter().all(|b| b.len() as u64 > SMALL_FILE));
    let shas: Vec<String> = bigs.iter().map(|m| sha256_hex(m)).collect();
    for (b, sha) in bigs.iter().zip(&shas) {
        c.start(b.clone(), sha, dir.path(), LONG);
    }
    // The third waits for a slot; a load that stops waiting hears of it.
    let Compiled::Compiling(how) = c.collect(&shas[2], Instant::now()) else {
        panic!("the third big compile did not wait for a slot")
    };
    assert!(how.starts_with("waiting for a compile slot"), "{how}");
    // A small module does not wait behind them.
    let small = module(10, 99);
    let sha = sha256_hex(&small);
    let t = Instant::now();
    c.start(small, &sha, dir.path(), LONG);
    assert!(matches!(c.collect(&sha, t + LONG), Compiled::Ready(..)));
    assert!(
        matches!(c.collect(&shas[2], Instant::now()), Compiled::Compiling(_)),
        "the small compile came back after the big ones"
    );
    // The queued one starts when a slot frees, runs with its own time
    // limit, and the load that gave up on it is asked for again.
    wait_for(&calls, 1);
    for sha in &shas {
        assert!(matches!(
            c.collect(sha, Instant::now() + LONG),
            Compiled::Ready(..)
        ));
    }
}

#[test]
fn a_queued_compile_is_timed_from_its_own_start() {
    let (c, _, dir) = compiler();
    let bigs: Vec<Vec<u8>> = (0..2).map(|i| one_big_body(250_000, 20 + i)).collect();
    for b in &bigs {
        c.start(b.clone(), &sha256_hex(b), dir.path(), LONG);
    }
    // Over SMALL_FILE but quick to compile (its bulk is data), with a
    // limit that its time queued exceeds but its own run does not.
    let queued = format!(
        "(module (memory 20) (data (i32.const 0) \"{}\"))",
        "x".repeat(SMALL_FILE as usize + 1000)
    );
    let queued = wat::parse_str(queued).unwrap();
    let sha = sha256_hex(&queued);
    let limit = Duration::from_secs(1);
    let t = Instant::now();
    c.start(queued, &sha, dir.path(), limit);
    assert!(matches!(c.collect(&sha, Instant::now()), Compiled::Compiling(_)));
    let got = c.collect(&sha, Instant::now() + LONG);
    assert!(
        t.elapsed() > limit,
        "it did not wait for a slot: {:?}",
        t.elapsed()
    );
    match got {
        Compiled::Ready(..) => {}
        Compiled::Failed(msg) => panic!("{msg} (after {:?})", t.elapsed()),
        Compiled::Compiling(how) => panic!("{how}"),
    }
}
