//! What the generator's integration tests share: running one `ferrymq bench` command line
//! in-process and getting its summary.

use clap::Parser;
use ferrymq_bench::{BenchArgs, Summary};

/// Parses `argv` (starting with `bench`) as the command line would and runs it to the end.
pub(crate) async fn run_bench(argv: &[&str]) -> Summary {
    let args = BenchArgs::try_parse_from(argv).expect("valid options");
    ferrymq_bench::run_summary(&args)
        .await
        .expect("the run completes")
}
