//! The admin listener's protection, over real sockets: with `admin.token-file` every endpoint but
//! `/healthz` and `/metrics` needs the token (Bearer, or Basic with the token as password);
//! state-changing requests from another site's page get 403 with or without a token; the token
//! is read again at reload; a non-loopback admin address without a token does not load.

use crate::common::*;
use base64::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const TOKEN: &str = "s3cret-admin-token";

/// Writes `token` (with surrounding whitespace, which is trimmed) into `admin.token`, mode 600.
fn write_token(conf: &TempConf, token: &str) -> std::path::PathBuf {
    let p = conf.write("admin.token", &format!("  {token}\n\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The open product's gateway with `admin: {address, token-file}` when `token_file` is set, or
/// the plain loopback `admin: 127.0.0.1:0`.
fn gateway_yaml(
    conf: &TempConf,
    admin_address: &str,
    token_file: Option<&Path>,
) -> std::path::PathBuf {
    conf.write_open_api("/open");
    let mut y = GatewayYaml::open("ws://127.0.0.1:9/").admin(false);
    y.extra = match token_file {
        Some(f) => format!(
            "admin: {{address: \"{admin_address}\", token-file: \"{}\"}}\n",
            f.display()
        ),
        None => format!("admin: \"{admin_address}\"\n"),
    };
    y.write(conf)
}

fn start_with_token(token: &str) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let file = write_token(&conf, token);
    let path = gateway_yaml(&conf, "127.0.0.1:0", Some(&file));
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

fn get(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(gw.addr("admin"), method, path, headers, b"")
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn with_a_token_every_endpoint_but_health_and_metrics_needs_it() {
    let (_conf, gw) = start_with_token(TOKEN);
    for (method, path) in [
        ("GET", "/stats"),
        ("GET", "/limits"),
        ("POST", "/reload"),
        ("DELETE", "/limits/x"),
        ("GET", "/no-such-page"),
    ] {
        let r = get(&gw, method, path, &[]);
        assert_eq!(r.status, 401, "{method} {path} without a token: {r:?}");
        assert_eq!(
            r.header("www-authenticate")
                .map(|v| v.starts_with("Bearer")),
            Some(true),
            "{r:?}"
        );
        assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
        let body: serde_yaml::Value = serde_yaml::from_str(&r.body_text()).expect("JSON body");
        assert_eq!(body["httpCode"].as_str(), Some("401"), "{r:?}");
        for wrong in [
            bearer("s3cret-admin-tokeN"),
            bearer("s3cret"),
            basic("admin", "nope"),
        ] {
            let r = get(&gw, method, path, &[("Authorization", &wrong)]);
            assert_eq!(r.status, 401, "{method} {path} with {wrong}: {r:?}");
        }
    }
    let r = get(&gw, "GET", "/stats", &[("Authorization", &bearer(TOKEN))]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body_text().contains("\"accepted\""), "{r:?}");
    let r = get(
        &gw,
        "GET",
        "/stats",
        &[("Authorization", &format!("bearer  {TOKEN}"))],
    );
    assert_eq!(r.status, 200, "the scheme is case-insensitive: {r:?}");
    let r = get(
        &gw,
        "GET",
        "/limits",
        &[("Authorization", &basic("anyone", TOKEN))],
    );
    assert_eq!(r.status, 200, "Basic with the token as password: {r:?}");
    let r = get(
        &gw,
        "GET",
        "/no-such-page",
        &[("Authorization", &bearer(TOKEN))],
    );
    assert_eq!(r.status, 404, "{r:?}");
    // Health checks and scrapers need no token.
    assert_eq!(get(&gw, "GET", "/healthz", &[]).status, 200);
    let m = get(&gw, "GET", "/metrics", &[]);
    assert_eq!(m.status, 200, "{m:?}");
    assert!(m.body_text().starts_with("# HELP"), "{m:?}");
}

#[test]
fn state_changes_from_another_site_are_refused() {
    let (_conf, gw) = start_with_token(TOKEN);
    let own = format!("http://{}", gw.addr("admin"));
    let auth = bearer(TOKEN);
    for (method, path) in [("POST", "/reload"), ("DELETE", "/limits/x")] {
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:1",
            "null",
            &format!("http://evil.example:{}", gw.addr("admin").port()),
        ] {
            let r = get(
                &gw,
                method,
                path,
                &[("Authorization", &auth), ("Origin", origin)],
            );
            assert_eq!(r.status, 403, "{method} {path} from {origin}: {r:?}");
            let body: serde_yaml::Value = serde_yaml::from_str(&r.body_text()).expect("JSON body");
            assert_eq!(body["httpCode"].as_str(), Some("403"), "{r:?}");
        }
        // The admin listener's own page, and tools that send no Origin, are served.
        for headers in [
            vec![("Authorization", auth.as_str()), ("Origin", own.as_str())],
            vec![("Authorization", auth.as_str())],
        ] {
            let r = get(&gw, method, path, &headers);
            assert_eq!(r.status, 200, "{method} {path} with {headers:?}: {r:?}");
        }
    }
    // Reading is not a state change: a foreign Origin may read (the token still guards it).
    let r = get(
        &gw,
        "GET",
        "/stats",
        &[("Authorization", &auth), ("Origin", "http://evil.example")],
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_loopback_admin_without_a_token_still_refuses_other_sites() {
    let conf = TempConf::new();
    let path = gateway_yaml(&conf, "127.0.0.1:0", None);
    let gw = Gateway::start(&path, &[]);
    assert_eq!(get(&gw, "GET", "/stats", &[]).status, 200);
    let r = get(&gw, "POST", "/reload", &[("Origin", "http://evil.example")]);
    assert_eq!(r.status, 403, "{r:?}");
    let localhost = format!("http://localhost:{}", gw.addr("admin").port());
    let r = get(&gw, "POST", "/reload", &[("Origin", &localhost)]);
    assert_eq!(
        r.status, 200,
        "localhost at the admin port is the listener's own: {r:?}"
    );
    assert_eq!(get(&gw, "POST", "/reload", &[]).status, 200);
}

#[test]
fn the_token_is_read_again_at_reload() {
    let (conf, gw) = start_with_token(TOKEN);
    write_token(&conf, "the-next-token");
    let r = get(&gw, "POST", "/reload", &[("Authorization", &bearer(TOKEN))]);
    assert_eq!(r.status, 200, "{r:?}");
    let old = get(&gw, "GET", "/stats", &[("Authorization", &bearer(TOKEN))]);
    assert_eq!(old.status, 401, "the old token after the reload: {old:?}");
    let new = get(
        &gw,
        "GET",
        "/stats",
        &[("Authorization", &bearer("the-next-token"))],
    );
    assert_eq!(new.status, 200, "{new:?}");
    // An emptied token file is a load error: the reload is refused and the token stays.
    write_token(&conf, "   ");
    let r = get(
        &gw,
        "POST",
        "/reload",
        &[("Authorization", &bearer("the-next-token"))],
    );
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.body_text().contains("token-file"), "{r:?}");
    let still = get(
        &gw,
        "GET",
        "/stats",
        &[("Authorization", &bearer("the-next-token"))],
    );
    assert_eq!(still.status, 200, "{still:?}");
}

#[test]
fn a_non_loopback_admin_needs_a_token_to_load() {
    let conf = TempConf::new();
    let path = gateway_yaml(&conf, "0.0.0.0:0", None);
    let out = run_wsgate(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("gateway.yaml:") && out.stderr.contains("error: admin:"),
        "{out:?}"
    );
    assert!(out.stderr.contains("token-file"), "{out:?}");

    // The same from the command line, and loopback stays allowed there.
    let other = TempConf::new();
    let loopback = gateway_yaml(&other, "127.0.0.1:0", None);
    let out = run_wsgate(&[
        "check",
        "--config",
        loopback.to_str().unwrap(),
        "--admin",
        "0.0.0.0:0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--admin"), "{out:?}");
    let out = run_wsgate(&[
        "check",
        "--config",
        loopback.to_str().unwrap(),
        "--admin",
        "[::1]:0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // With a token, any address loads (check binds nothing).
    let file = write_token(&conf, TOKEN);
    let path = gateway_yaml(&conf, "0.0.0.0:0", Some(&file));
    let out = run_wsgate(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn an_empty_or_missing_token_file_is_a_load_error() {
    let conf = TempConf::new();
    let file = write_token(&conf, " \n\t ");
    let path = gateway_yaml(&conf, "127.0.0.1:0", Some(&file));
    let out = run_wsgate(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("admin.token-file") && out.stderr.contains("empty"),
        "{out:?}"
    );
    let path = gateway_yaml(&conf, "127.0.0.1:0", Some(&conf.file("absent.token")));
    let out = run_wsgate(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("does not exist"), "{out:?}");
}

#[test]
fn secret_files_that_others_can_read_are_logged_at_start() {
    let conf = TempConf::new();
    let file = write_token(&conf, TOKEN);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let path = gateway_yaml(&conf, "127.0.0.1:0", Some(&file));
    let gw = Gateway::start(&path, &[]);
    let name = file.display().to_string();
    assert!(
        gw.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&name) && l.contains("640")),
        "no warning naming {name}:\n{}",
        gw.log()
    );
    // Mode 600 gets no such line.
    let quiet = TempConf::new();
    let file = write_token(&quiet, TOKEN);
    let gw = Gateway::start(gateway_yaml(&quiet, "127.0.0.1:0", Some(&file)), &[]);
    assert!(!gw.log().contains("chmod 600"), "{}", gw.log());
}

#[test]
fn private_keys_that_others_can_read_are_logged_at_start() {
    use crate::common::tls::TestCa;
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let ca = TestCa::new(&conf, "keys");
    let server = ca.leaf(&conf, "server", &["127.0.0.1"]);
    let client = ca.leaf(&conf, "client", &["client"]);
    std::fs::set_permissions(&server.key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&client.key_path, std::fs::Permissions::from_mode(0o604)).unwrap();
    let path = GatewayYaml::open("ws://127.0.0.1:9/")
        .tls_listener(&[server.conf()])
        .tls_profile(
            "to-backend",
            Some(&ca.pem_path),
            Some((&client.cert_path, &client.key_path)),
        )
        .write(&conf);
    let gw = Gateway::start(&path, &[]);
    let log = gw.log();
    for (key, mode) in [(&server.key_path, "644"), (&client.key_path, "604")] {
        let name = key.display().to_string();
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(&name) && l.contains(mode)),
            "no warning naming {name}:\n{log}"
        );
    }
    assert!(
        !log.contains(&format!("'{}'", ca.pem_path.display())),
        "{log}"
    );

    // A key given on the command line is warned about the same way.
    let out = run_wsgate(&[
        "check",
        "--config",
        path.to_str().unwrap(),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        server.cert_path.to_str().unwrap(),
        "--tls-key",
        server.key_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let name = server.key_path.display().to_string();
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("--tls-key") && l.contains(&name) && l.contains("644")),
        "{out:?}"
    );
}

#[test]
fn a_token_no_authorization_header_can_carry_does_not_load() {
    use wsgate::config::{Overrides, Severity, load};
    for bad in [
        "two words",
        "tab\there",
        "first\nsecond",
        "t\u{7f}k",
        "tök",
        "a=b",
    ] {
        let conf = TempConf::new();
        let file = write_token(&conf, bad);
        let path = gateway_yaml(&conf, "127.0.0.1:0", Some(&file));
        let errors: Vec<_> = match load(&path, &Overrides::default()) {
            Ok(_) => panic!("the token {bad:?} loaded"),
            Err(ds) => ds
                .into_iter()
                .filter(|d| d.severity == Severity::Error)
                .collect(),
        };
        let [e] = &errors[..] else {
            panic!("{bad:?}: expected one error, got {errors:?}");
        };
        let shown = e.to_string();
        assert!(e.field.contains("token-file"), "{bad:?}: {shown}");
        assert!(shown.contains("gateway.yaml:"), "{bad:?}: {shown}");
        assert!(shown.contains("admin token"), "{bad:?}: {shown}");
    }
    // Every token68 character, and padding at the end, loads.
    let conf = TempConf::new();
    let file = write_token(&conf, "Az09-._~+/==");
    let path = gateway_yaml(&conf, "127.0.0.1:0", Some(&file));
    assert!(load(&path, &Overrides::default()).is_ok());
}
