//! Bodies of plain calls (the invoke policy) stream through the gateway: a 50 MiB answer and a
//! chunked upload pass while the gateway's memory stays within its buffer bound, measured by
//! its peak resident size against its size before the transfer.

use crate::common::{DEADLINE, Gateway, TempConf};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

const BIG: u64 = 50 << 20;

const API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: stream-api
  x-ibm-name: stream-api
basePath: /stream
x-ibm-configuration:
  properties:
    target-url:
      value: http://127.0.0.1:9/
  assembly:
    execute:
      - invoke:
          version: 2.0.0
          title: invoke
          target-url: $(target-url)$(request.path)
          timeout: 1
paths:
  /big:
    get:
      responses:
        '200':
          description: ok
  /slow:
    get:
      responses:
        '200':
          description: ok
  /upload:
    post:
      responses:
        '200':
          description: ok
security: []
schemes:
  - http
"#;

const PRODUCT: &str = r#"info:
  version: 1.0.0
  title: stream-product
  name: stream-product
plans:
  default-plan:
    title: Default Plan
    apis:
      stream-api1.0.0: {}
apis:
  stream-api1.0.0:
    $ref: stream-api_1.0.0.yaml
"#;

/// An independent HTTP/1.1 backend on std sockets: `GET /stream/big` answers `BIG` bytes with a
/// Content-Length; `POST /stream/upload` reads a chunked body and answers how many bytes it got.
fn backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            thread::spawn(move || serve(s));
        }
    });
    addr
}

fn serve(s: TcpStream) {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let (mut chunked, mut expect) = (false, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        expect |= lower.starts_with("expect: 100-continue");
        chunked |= lower.starts_with("transfer-encoding: chunked");
    }
    if expect {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    }
    if line.starts_with("GET /stream/slow") {
        // Ten bytes over about 2.5 s: longer than the API's 1 s timeout, never idle that long.
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            .unwrap();
        for _ in 0..10 {
            thread::sleep(std::time::Duration::from_millis(250));
            w.write_all(b"s").unwrap();
        }
    } else if line.starts_with("GET /stream/big") {
        write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").unwrap();
        let block = vec![b'x'; 64 << 10];
        let mut left = BIG;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            w.write_all(&block[..n]).unwrap();
            left -= n as u64;
        }
    } else if line.starts_with("POST /stream/upload") && chunked {
        let mut total = 0u64;
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = u64::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).unwrap();
                break;
            }
            std::io::copy(&mut (&mut r).take(n), &mut std::io::sink()).unwrap();
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).unwrap();
            total += n;
        }
        let body = total.to_string();
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    } else {
        w.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    }
}

fn gateway(backend: SocketAddr) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    conf.write("stream-api_1.0.0.yaml", API);
    conf.write("stream-product_1.0.0.yaml", PRODUCT);
    let gw = conf.write(
        "gateway.yaml",
        &format!(
            "listeners:\n  - address: 127.0.0.1:0\nadmin: 127.0.0.1:0\n\
             products: [stream-product_1.0.0.yaml]\n\
             catalog:\n  properties:\n    target-url: http://{backend}\n\
             bounds:\n  buffer-bound: 64KiB\n"
        ),
    );
    let g = Gateway::start(&gw, &[]);
    (conf, g)
}

/// Reads one response head; returns its status line and Content-Length.
fn read_head(r: &mut BufReader<TcpStream>) -> (String, u64) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    (status, len)
}

#[test]
fn a_50_mib_answer_streams_within_the_buffer_bound() {
    let (_c, gw) = gateway(backend());
    let s = TcpStream::connect(gw.addr("plain")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let before = gw.rss_kib();
    w.write_all(b"GET /stream/big HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (status, len) = read_head(&mut r);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(len, BIG);
    let got = std::io::copy(&mut (&mut r).take(BIG), &mut std::io::sink()).unwrap();
    assert_eq!(got, BIG);
    let peak = gw.status_kib("VmHWM");
    let grew = peak.saturating_sub(before);
    println!("50 MiB answer: resident before {before} KiB, peak {peak} KiB, grew {grew} KiB");
    // Two 64 KiB flow buffers and some slack; a gateway holding the answer would grow 50 MiB.
    assert!(
        grew < 4096,
        "the gateway grew by {grew} KiB for a 50 MiB answer"
    );
}

#[test]
fn a_chunked_upload_streams_within_the_buffer_bound() {
    let (_c, gw) = gateway(backend());
    let s = TcpStream::connect(gw.addr("plain")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let before = gw.rss_kib();
    w.write_all(b"POST /stream/upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = vec![b'y'; 256 << 10];
    let mut sent = 0u64;
    while sent < BIG {
        write!(w, "{:x}\r\n", chunk.len()).unwrap();
        w.write_all(&chunk).unwrap();
        w.write_all(b"\r\n").unwrap();
        sent += chunk.len() as u64;
    }
    w.write_all(b"0\r\n\r\n").unwrap();
    let (status, len) = read_head(&mut r);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), sent.to_string());
    let peak = gw.status_kib("VmHWM");
    let grew = peak.saturating_sub(before);
    println!(
        "50 MiB chunked upload: resident before {before} KiB, peak {peak} KiB, grew {grew} KiB"
    );
    assert!(
        grew < 4096,
        "the gateway grew by {grew} KiB for a 50 MiB upload"
    );
}

/// `Expect: 100-continue`: the client sends its body only after the backend's interim answer,
/// which the gateway relays; then the final answer follows on the same connection.
#[test]
fn expect_100_continue_is_relayed_before_the_body() {
    let (_c, gw) = gateway(backend());
    let s = TcpStream::connect(gw.addr("plain")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(
        b"POST /stream/upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    let (interim, _) = read_head(&mut r);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    w.write_all(b"5\r\nhello\r\n0\r\n\r\n").unwrap();
    let (status, len) = read_head(&mut r);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).unwrap();
    assert_eq!(body, b"5");
}

/// The invoke's `timeout` bounds each pause, not the whole answer: a body that keeps flowing
/// for longer than the timeout arrives whole.
#[test]
fn an_answer_that_keeps_flowing_outlasts_the_timeout() {
    let (_c, gw) = gateway(backend());
    let s = TcpStream::connect(gw.addr("plain")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /stream/slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (status, len) = read_head(&mut r);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).unwrap();
    assert_eq!(body, b"ssssssssss");
}
