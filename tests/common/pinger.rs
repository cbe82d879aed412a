//! A one-connection tungstenite backend that upgrades, sends `count` pings in one go, then
//! answers pings and reads until the gateway closes, and reports the close frame it got.
//! Its thread ends with its connection; `close` waits for that with the deadline.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;

use tungstenite::Message;

use super::DEADLINE;

pub struct PingFlood {
    addr: SocketAddr,
    done: mpsc::Receiver<Result<Option<(u16, String)>, String>>,
}

impl PingFlood {
    pub fn start(count: usize) -> PingFlood {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the ping backend");
        let addr = listener.local_addr().expect("its address");
        let (tx, done) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(serve(&listener, count));
        });
        PingFlood { addr, done }
    }

    pub fn target_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The close frame the gateway sent (code and reason; `None` for one without a code).
    pub fn close(&self) -> Option<(u16, String)> {
        match self.done.recv_timeout(DEADLINE) {
            Ok(Ok(close)) => close,
            Ok(Err(e)) => panic!("ping backend: {e}"),
            Err(e) => panic!("ping backend did not finish: {e}"),
        }
    }
}

fn serve(listener: &TcpListener, count: usize) -> Result<Option<(u16, String)>, String> {
    let (stream, _) = listener.accept().map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(DEADLINE))
        .map_err(|e| e.to_string())?;
    let mut ws = tungstenite::accept(stream).map_err(|e| e.to_string())?;
    for i in 0..count {
        ws.write(Message::Ping(format!("ping {i}").into_bytes().into()))
            .map_err(|e| format!("ping {i}: {e}"))?;
    }
    ws.flush().map_err(|e| e.to_string())?;
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => {
                let _ = ws.flush();
                return Ok(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("no close frame: {e}")),
        }
    }
}
