// SPDX-License-Identifier: GPL-2.0

//! Minimal KTAP output for kselftest programs: a plan, one line per test,
//! and the kselftest exit codes.

use std::process::ExitCode;

/// Exit code of a run with a failure (kselftest KSFT_FAIL).
const KSFT_FAIL: u8 = 1;
/// Exit code of a run where everything was skipped (KSFT_SKIP).
const KSFT_SKIP: u8 = 4;

/// The outcome of one test.
pub enum Outcome {
    /// The test passed.
    Pass,
    /// The test failed; the reason is printed as a diagnostic.
    Fail(String),
    /// The test could not run here; the reason follows `# SKIP`.
    #[allow(dead_code)]
    Skip(String),
}

/// A test: a name and a function.
pub type Test = (&'static str, fn() -> Outcome);

/// Runs `tests` in order, printing KTAP, and returns the kselftest exit code.
pub fn run(tests: &[Test]) -> ExitCode {
    println!("TAP version 13");
    println!("1..{}", tests.len());
    let (mut fail, mut skip) = (0, 0);
    for (i, (name, f)) in tests.iter().enumerate() {
        match f() {
            Outcome::Pass => println!("ok {} {}", i + 1, name),
            Outcome::Fail(why) => {
                fail += 1;
                for l in why.lines() {
                    println!("# {l}");
                }
                println!("not ok {} {}", i + 1, name);
            }
            Outcome::Skip(why) => {
                skip += 1;
                println!("ok {} {} # SKIP {}", i + 1, name, why);
            }
        }
    }
    println!(
        "# Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:0",
        tests.len() - fail - skip,
        fail,
        skip
    );
    if fail > 0 {
        ExitCode::from(KSFT_FAIL)
    } else if skip == tests.len() {
        ExitCode::from(KSFT_SKIP)
    } else {
        ExitCode::SUCCESS
    }
}

/// Fails the enclosing test with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return $crate::ktap::Outcome::Fail(format!($($fmt)*));
        }
    };
}

/// Unwraps a `Result`, failing the enclosing test with the error.
#[macro_export]
macro_rules! try_or_fail {
    ($e:expr, $what:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $crate::ktap::Outcome::Fail(format!("{}: {}", $what, e)),
        }
    };
}

/// Returns the outcome from the calling test if it is a failure, so that
/// a test can check several things in turn.
#[macro_export]
macro_rules! pass {
    ($e:expr) => {
        if let o @ $crate::ktap::Outcome::Fail(_) = $e {
            return o;
        }
    };
}
