//! `ringmcp-load`: the load generator for ringmcp's benchmarks. It arrives with the
//! `just bench` issue (an open-loop io_uring client with HdrHistogram percentiles); until
//! then this binary says so instead of pretending to measure anything.

fn main() {
    eprintln!(
        "ringmcp-load: not built yet; the load generator and the seed's scenarios come with the `just bench` work (see docs/benchmarks.md)"
    );
    std::process::exit(2);
}
