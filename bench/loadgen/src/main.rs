//! wsgate-loadgen: a WebSocket load generator and echo backend for wsgate's benchmarks.
//! One thread per process; run several processes for more connections than one may hold.

mod client;
mod drive;
mod echo;
mod frame;
mod hist;
mod modes;
mod opts;
mod report;
mod sys;
mod tls;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", opts::USAGE);
        return;
    }
    let o = match opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("wsgate-loadgen: {e} (see --help)");
            std::process::exit(2);
        }
    };
    sys::catch_stop_signals();
    let r = match o.mode.as_str() {
        "echo" => {
            let addr = o.listen.as_deref().unwrap_or("127.0.0.1:9001");
            let tls = match (&o.tls_cert, &o.tls_key) {
                (Some(c), Some(k)) => tls::server_config(c, k).map(Some),
                _ => Ok(None),
            };
            match (addr.parse(), tls) {
                (Ok(a), Ok(tls)) => echo::run(a, tls).map_err(|e| format!("echo: {e}")),
                (Err(_), _) => Err(format!("--listen: {addr:?} is not an address")),
                (_, Err(e)) => Err(e),
            }
        }
        "hold" => modes::hold(&o),
        "flood" => modes::flood(&o),
        "latency" => modes::latency(&o),
        _ => modes::handshakes(&o),
    };
    if let Err(e) = r {
        eprintln!("wsgate-loadgen {}: {e}", o.mode);
        std::process::exit(1);
    }
}
