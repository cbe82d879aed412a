//! A backend name with several addresses: the gateway tries them in turn. Here `two.test`
//! resolves to ::1 first and 127.0.0.1 second (an /etc/hosts of the test's own, seen only by
//! the gateway), and the backends listen on 127.0.0.1 alone, so the first address refuses the
//! connection, as a dead AAAA record's address does; or it leaves the connect unanswered, and
//! the next address gets its turn once the first has used its share of the timeout.

use crate::common::conf::OPEN_API;
use crate::common::hosts;
use crate::common::*;

const HOSTS: &str = "::1 two.test\n127.0.0.1 two.test\n";
const BASE: &str = "/two";

fn two_addresses(conf: &TempConf) -> Option<(std::path::PathBuf, Vec<String>)> {
    hosts::gateway_with_hosts(conf, HOSTS, "two.test", &["::1", "127.0.0.1"])
}

#[test]
fn an_upgrade_reaches_the_backend_on_the_second_address() {
    let conf = TempConf::new();
    let Some(program) = two_addresses(&conf) else {
        return;
    };
    let backend = EchoBackend::start();
    let target = format!("ws://two.test:{}/", backend.addr().port());
    conf.write_open_apis(&[OpenApi::new("open-api", BASE)]);
    let gw = hosts::start(&program, &GatewayYaml::open(&target).write(&conf));
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade through the second address");
    roundtrip(&mut ws, tungstenite::Message::text("second address"));
    assert_eq!(backend.accepted(), 1);
}

#[test]
fn a_call_reaches_the_backend_on_the_second_address() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let conf = TempConf::new();
    let Some(program) = two_addresses(&conf) else {
        return;
    };
    let api = OpenApi::new("open-api", BASE).schemes(&["http", "https"]);
    conf.write_open_apis(std::slice::from_ref(&api));
    let invoke = api.render().replacen(
        "      - websocket-upgrade:\n          title: websocket-upgrade\n",
        "      - invoke:\n          title: invoke\n",
        1,
    );
    conf.write(OPEN_API, &invoke);
    let target = format!("http://two.test:{}/called", backend.port());
    let gw = hosts::start(&program, &GatewayYaml::open(&target).write(&conf));
    let r = http_request(gw.addr("plain"), "GET", BASE, &[], b"").expect("an answer");
    assert_eq!(r.status, 200, "{r:?}");
    let seen = backend.requests_at_least(1);
    assert_eq!(seen[0].path, "/called");
}

#[test]
fn an_address_that_swallows_the_connect_gives_way_within_the_timeout() {
    use std::os::fd::AsRawFd;
    let conf = TempConf::new();
    let Some(program) = two_addresses(&conf) else {
        return;
    };
    let backend = EchoBackend::start();
    let port = backend.addr().port();
    // [::1]:PORT takes no connection: its accept queue (backlog 0) holds one that is never
    // accepted, so the kernel leaves further handshakes unanswered.
    let Ok(hole) = std::net::TcpListener::bind(("::1", port)) else {
        return skip_note("cannot listen on [::1] with the backend's port");
    };
    // SAFETY: `hole` owns the descriptor; listen() only changes its backlog.
    assert_eq!(unsafe { libc::listen(hole.as_raw_fd(), 0) }, 0);
    let addr = hole.local_addr().expect("addr");
    let probe = std::time::Duration::from_millis(300);
    let _queued = std::net::TcpStream::connect_timeout(&addr, probe).expect("the queued one");
    if std::net::TcpStream::connect_timeout(&addr, probe).is_ok() {
        return skip_note("a full accept queue still completes handshakes here");
    }
    let api = OpenApi::new("open-api", BASE);
    conf.write_open_apis(std::slice::from_ref(&api));
    let short = api.render().replacen("timeout: 60\n", "timeout: 4\n", 1);
    conf.write(OPEN_API, &short);
    let target = format!("ws://two.test:{port}/");
    let gw = hosts::start(&program, &GatewayYaml::open(&target).write(&conf));
    // Half of the 4 s goes to [::1], the rest to 127.0.0.1, which answers at once.
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade through the second address");
    roundtrip(
        &mut ws,
        tungstenite::Message::text("after a silent address"),
    );
    assert_eq!(backend.accepted(), 1);
}
