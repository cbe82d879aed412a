//! The command line: a thin layer over [`crate::config`] and [`crate::engine`].

use crate::config::{self, Overrides};
use crate::engine::Gateway;
use crate::model::{ActivityOutput, Bounds, Model, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;

const USAGE: &str = "\
wsgate: a WebSocket API gateway for IBM API Connect API and Product YAML

Usage:
  wsgate [OPTIONS]                  run the gateway
  wsgate check [OPTIONS]            load and validate the config, print a summary (exit 0),
                                    or print every error (exit 2)
  wsgate echo --listen ADDR         run only the built-in WebSocket echo backend

Options:
  --config FILE            gateway config (default: conf/gateway.yaml)
  --property NAME=VALUE    override an API property for every API (repeatable); wins over
                           the config's catalog properties
  --listen ADDR            replace the config's plain listeners (repeatable)
  --tls-listen ADDR        add a TLS listener (repeatable); each needs the two options below
  --tls-cert FILE          PEM certificate chain for the --tls-listen before it
  --tls-key FILE           PEM private key for the --tls-listen before it
  --admin ADDR             the admin listener
  --version                print the version
  --help                   print this help

Logging goes to standard error; set RUST_LOG (e.g. RUST_LOG=debug) to change the level.
SIGHUP (or POST /reload on the admin listener) loads the config again without dropping
connections; SIGTERM or SIGINT shuts down gracefully.
";

#[derive(Debug, PartialEq)]
enum Command {
    Run,
    Check,
    Echo,
    Help,
    Version,
}

#[derive(Debug)]
struct Args {
    command: Command,
    config: PathBuf,
    overrides: Overrides,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut command = Command::Run;
    let mut config = PathBuf::from("conf/gateway.yaml");
    let mut overrides = Overrides::default();
    let mut it = args.iter();
    let mut first = true;
    let mut tls: Vec<(SocketAddr, Option<PathBuf>, Option<PathBuf>)> = Vec::new();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "check" if first => command = Command::Check,
            "echo" if first => command = Command::Echo,
            "--help" | "-h" => command = Command::Help,
            "--version" | "-V" => command = Command::Version,
            "--config" | "-c" => config = PathBuf::from(value("--config")?),
            "--property" => {
                let v = value("--property")?;
                let (n, v) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--property expects NAME=VALUE, got {v:?}"))?;
                overrides.properties.push((n.to_string(), v.to_string()));
            }
            "--listen" => {
                let v = value("--listen")?;
                let addr: SocketAddr = v.parse().map_err(|_| {
                    format!("--listen: {v:?} is not an address like 127.0.0.1:8080")
                })?;
                overrides.listen.get_or_insert_with(Vec::new).push(addr);
            }
            "--tls-listen" => {
                let v = value("--tls-listen")?;
                let addr: SocketAddr = v.parse().map_err(|_| {
                    format!("--tls-listen: {v:?} is not an address like 0.0.0.0:8443")
                })?;
                tls.push((addr, None, None));
            }
            "--tls-cert" | "--tls-key" => {
                let name = a.as_str();
                let file = PathBuf::from(value(name)?);
                let last = tls
                    .last_mut()
                    .ok_or_else(|| format!("{name} must follow a --tls-listen ADDR"))?;
                let slot = if name == "--tls-cert" {
                    &mut last.1
                } else {
                    &mut last.2
                };
                if slot.replace(file).is_some() {
                    return Err(format!("{name} given twice for --tls-listen {}", last.0));
                }
            }
            "--admin" => {
                let v = value("--admin")?;
                let addr: SocketAddr = v
                    .parse()
                    .map_err(|_| format!("--admin: {v:?} is not an address like 127.0.0.1:9090"))?;
                overrides.admin = Some(addr);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
        first = false;
    }
    for (addr, cert, key) in tls {
        match (cert, key) {
            (Some(c), Some(k)) => overrides.tls_listen.push((addr, c, k)),
            _ => {
                return Err(format!(
                    "--tls-listen {addr} needs --tls-cert FILE and --tls-key FILE"
                ));
            }
        }
    }
    Ok(Args {
        command,
        config,
        overrides,
    })
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wsgate: {e}");
            return 2;
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match args.command {
        Command::Help => {
            print!("{USAGE}");
            0
        }
        Command::Version => {
            println!("wsgate {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Check => match config::load_to_run(&args.config, &args.overrides) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{w}");
                }
                print!("{}", config::summary(&loaded.model));
                println!("{}: ok", args.config.display());
                0
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!(
                    "{}: {} problem(s) found",
                    args.config.display(),
                    errors.len()
                );
                2
            }
        },
        Command::Run => {
            let loaded = match config::load_to_run(&args.config, &args.overrides) {
                Ok(l) => l,
                Err(errors) => {
                    for e in &errors {
                        log::error!("{e}");
                    }
                    return 2;
                }
            };
            for w in &loaded.warnings {
                log::warn!("{w}");
            }
            let (path, overrides) = (args.config.clone(), args.overrides);
            let loader: crate::engine::Loader =
                Box::new(move || config::load_to_run(&path, &overrides));
            serve(loaded.model, Some(loader))
        }
        Command::Echo => {
            let Some(addr) = args
                .overrides
                .listen
                .as_ref()
                .and_then(|l| l.first().copied())
            else {
                eprintln!("wsgate echo: --listen ADDR is required");
                return 2;
            };
            serve(echo_only(addr), None)
        }
    }
}

fn serve(model: Model, loader: Option<crate::engine::Loader>) -> i32 {
    let mut gw = match Gateway::new(model) {
        Ok(g) => g,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    if let Some(l) = loader {
        gw.set_loader(l);
    }
    match gw.run() {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// A model with nothing but the echo backend.
fn echo_only(addr: SocketAddr) -> Model {
    Model {
        settings: Settings {
            source: PathBuf::new(),
            listeners: Vec::new(),
            admin: None,
            admin_token: None,
            echo: Some(addr),
            bounds: Bounds::default(),
            activity_log: ActivityOutput::Off,
            trusted_proxies: Vec::new(),
        },
        apis: Vec::new(),
        products: Vec::new(),
        plans: Vec::new(),
        limits: Vec::new(),
        applications: Vec::new(),
        tls_profiles: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn parses_commands_and_options() {
        let a = args("check --config x.yaml --property target-url=ws://h:1/ --listen 127.0.0.1:0")
            .unwrap();
        assert_eq!(a.command, Command::Check);
        assert_eq!(a.config, PathBuf::from("x.yaml"));
        assert_eq!(
            a.overrides.properties,
            vec![("target-url".into(), "ws://h:1/".into())]
        );
        assert_eq!(a.overrides.listen.as_ref().map(|l| l.len()), Some(1));
        assert_eq!(args("").unwrap().command, Command::Run);
        assert_eq!(args("--version").unwrap().command, Command::Version);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(args("--property novalue").is_err());
        assert!(args("--listen nowhere").is_err());
        assert!(args("--config").is_err());
        assert!(args("frobnicate").is_err());
        // A command word is only a command in first position.
        assert!(args("--config x check").is_err());
    }
}
