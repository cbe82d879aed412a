//! A backend name with several addresses: the gateway tries them in turn. Here `two.test`
//! resolves to ::1 first and 127.0.0.1 second (an /etc/hosts of the test's own, seen only by
//! the gateway), and the backends listen on 127.0.0.1 alone, so the first address refuses the
//! connection, as a dead AAAA record's address does.

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
