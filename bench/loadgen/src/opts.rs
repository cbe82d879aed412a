//! Command line options (plain `std::env::args`).

pub const USAGE: &str = "\
wsgate-loadgen: WebSocket load generator and echo backend for benchmarks

Usage:
  wsgate-loadgen hold       --url URL --conns N [--sources IP,IP..] [--hold-secs S] [--stdin]
  wsgate-loadgen flood      --url URL --conns M [--size BYTES] [--window W] [--secs S]
  wsgate-loadgen latency    --url URL --conns M --rate R [--size BYTES] [--secs S]
  wsgate-loadgen handshakes --url URL [--concurrency C] [--secs S]
  wsgate-loadgen echo       --listen ADDR [--tls-cert FILE --tls-key FILE]

Options (all client modes):
  --url ws://HOST:PORT/PATH   target, ws:// or wss:// (the host is resolved once)
  --header 'Name: value'      extra upgrade request header (repeatable)
  --sources IP,IP,...         bind each connection to one of these source addresses in turn
  --timeout S                 connect plus upgrade deadline per connection (default 10)
  --warmup S                  flood/latency: seconds after all connections are open before
                              measuring (default 1)
  --concurrency C             connects in progress at once (hold: 256, handshakes: 16)
  --cpu-pid NAME=PID          report CPU seconds this process used during the measured window
                              (repeatable; our own process is always reported as `loadgen`)
  --tick-us N                 latency: least sleep between send bursts (default 100); smaller
                              spreads messages more evenly but costs the sender more CPU
  --label TEXT                copied into the JSON result
  --stdin                     hold: also stop when stdin reaches end of file

TLS (wss:// URLs):
  --ca FILE                   PEM certificates to trust as roots
  --insecure                  accept any server certificate (handshake signatures are still
                              checked); for benchmarks against a self-signed gateway
  --sni NAME                  server name to send and verify (default: the URL's host; an
                              IP address sends none)
  --resume                    allow TLS session resumption (default: every connection does a
                              full handshake)

Echo:
  --tls-cert FILE --tls-key FILE   serve TLS (wss://) with this PEM chain and key

Results: one JSON line on stdout. Progress and errors: stderr.
SIGTERM/SIGINT end the run early; results are still printed.
";

pub struct Opts {
    pub mode: String,
    pub url: Option<String>,
    pub listen: Option<String>,
    pub conns: usize,
    pub sources: Vec<String>,
    pub headers: Vec<String>,
    pub hold_secs: f64,
    pub size: usize,
    pub window: usize,
    pub secs: f64,
    pub warmup: f64,
    pub rate: f64,
    pub tick_us: u64,
    pub concurrency: Option<usize>,
    pub timeout: f64,
    pub cpu_pids: Vec<(String, String)>,
    pub label: Option<String>,
    pub stdin: bool,
    pub tls: crate::client::TlsOpts,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name}: {v:?} is not a valid number"))
}

pub fn parse(args: &[String]) -> Result<Opts, String> {
    let mut it = args.iter();
    let mode = it.next().cloned().ok_or("no mode given")?;
    if !["hold", "flood", "latency", "handshakes", "echo"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}"));
    }
    let mut o = Opts {
        mode,
        url: None,
        listen: None,
        conns: 1,
        sources: Vec::new(),
        headers: Vec::new(),
        hold_secs: 10.0,
        size: 64,
        window: 16,
        secs: 10.0,
        warmup: 1.0,
        rate: 1000.0,
        tick_us: 100,
        concurrency: None,
        timeout: 10.0,
        cpu_pids: Vec::new(),
        label: None,
        stdin: false,
        tls: Default::default(),
        tls_cert: None,
        tls_key: None,
    };
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--url" => o.url = Some(val()?),
            "--listen" => o.listen = Some(val()?),
            "--conns" => o.conns = num(a, &val()?)?,
            "--sources" => {
                o.sources = val()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--header" => o.headers.push(val()?),
            "--hold-secs" => o.hold_secs = num(a, &val()?)?,
            "--size" => o.size = num(a, &val()?)?,
            "--window" => o.window = num(a, &val()?)?,
            "--secs" => o.secs = num(a, &val()?)?,
            "--warmup" => o.warmup = num(a, &val()?)?,
            "--rate" => o.rate = num(a, &val()?)?,
            "--tick-us" => o.tick_us = num(a, &val()?)?,
            "--concurrency" => o.concurrency = Some(num(a, &val()?)?),
            "--timeout" => o.timeout = num(a, &val()?)?,
            "--cpu-pid" => {
                let v = val()?;
                let (n, p) = v
                    .split_once('=')
                    .ok_or(format!("--cpu-pid expects NAME=PID, got {v:?}"))?;
                o.cpu_pids.push((n.to_string(), p.to_string()));
            }
            "--label" => o.label = Some(val()?),
            "--stdin" => o.stdin = true,
            "--ca" => o.tls.ca = Some(val()?),
            "--insecure" => o.tls.insecure = true,
            "--sni" => o.tls.sni = Some(val()?),
            "--resume" => o.tls.resume = true,
            "--tls-cert" => o.tls_cert = Some(val()?),
            "--tls-key" => o.tls_key = Some(val()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.mode != "echo" && o.url.is_none() {
        return Err(format!("{}: --url is required", o.mode));
    }
    if o.tls_cert.is_some() != o.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if o.conns == 0 || o.window == 0 {
        return Err("--conns and --window must be at least 1".into());
    }
    if o.mode == "latency" && o.size < 8 {
        return Err("latency: --size must be at least 8 (the payload carries a timestamp)".into());
    }
    if o.rate.is_nan() || o.rate <= 0.0 || o.secs < 0.0 || o.warmup < 0.0 || o.hold_secs < 0.0 {
        return Err("--rate must be positive; durations must not be negative".into());
    }
    Ok(o)
}
