//! How a backend's answer to a plain call is framed for the client, sans-I/O.
//!
//! The backend's body is delimited by what the backend was asked and answered (its status and
//! the method sent to it); what the client gets follows the client's own method and HTTP
//! version and the final status, after the policies that run once the invoke has answered. The
//! two can differ (a flow that turns a 200 into a 204, an invoke whose `verb` is not the
//! client's method, an HTTP/1.0 client of a chunked backend), and the framing sent to the client
//! must never promise a body that does not come, nor carry one where none belongs (RFC 9110
//! §6.4.1, RFC 9112 §6.3).

use super::head::BodyFraming;

/// What becomes of the backend's body bytes on their way to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pass {
    /// Relayed as the backend framed them.
    #[default]
    AsIs,
    /// Read to their end and dropped: the client's answer has no body.
    Drop,
    /// Chunked framing taken off; the body ends when the client connection closes.
    Dechunk,
}

/// The client side of an answer: what it gets of the body and which headers frame it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFraming {
    pub pass: Pass,
    /// The answer's body ends at close: the client connection cannot carry another request.
    pub close: bool,
    /// The backend's `Content-Length` goes to the client.
    pub content_length: bool,
    /// The backend's `Transfer-Encoding` and `Trailer` go to the client.
    pub transfer_encoding: bool,
}

/// The client that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Its method was HEAD.
    pub head: bool,
    /// The minor version of its HTTP/1.x.
    pub minor: u8,
}

/// How an answer with final status `status` reaches `client`, when the backend's body is framed
/// as `backend` and its head has a `Transfer-Encoding` (`coded`; then its `Content-Length`, if
/// any, means nothing, RFC 9112 §6.3). `None` when the body cannot reach this client as the
/// backend sent it: the client gets a 502 instead.
pub fn for_client(
    client: Client,
    status: u16,
    backend: BodyFraming,
    coded: bool,
) -> Option<ClientFraming> {
    let bodiless = client.head || status < 200 || status == 204 || status == 304;
    if bodiless {
        return Some(ClientFraming {
            pass: Pass::Drop,
            close: false,
            // For HEAD and 304 it is the length the representation would have (RFC 9110
            // §8.6); a 204 must not have one, even to a HEAD.
            content_length: (client.head || status == 304)
                && status >= 200
                && status != 204
                && !coded,
            transfer_encoding: false,
        });
    }
    Some(match backend {
        // Nothing came to relay (the backend was asked with HEAD, or answered 204 or 304 and
        // the flow made it another status): an empty body, which only a close can delimit
        // without changing what the headers say about the representation.
        BodyFraming::None => ClientFraming {
            pass: Pass::Drop,
            close: true,
            content_length: false,
            transfer_encoding: false,
        },
        BodyFraming::Length(_) => ClientFraming {
            pass: Pass::AsIs,
            close: false,
            content_length: true,
            transfer_encoding: false,
        },
        BodyFraming::Chunked if client.minor >= 1 => ClientFraming {
            pass: Pass::AsIs,
            close: false,
            content_length: false,
            transfer_encoding: true,
        },
        // HTTP/1.0 has no transfer codings (RFC 9112 §6.1).
        BodyFraming::Chunked => ClientFraming {
            pass: Pass::Dechunk,
            close: true,
            content_length: false,
            transfer_encoding: false,
        },
        // A coding other than chunked cannot be taken off here, and HTTP/1.0 must not be told
        // of it (RFC 9112 §6.1): relaying the coded bytes unlabelled would garble the body.
        BodyFraming::UntilClose if coded && client.minor == 0 => return None,
        BodyFraming::UntilClose => ClientFraming {
            pass: Pass::AsIs,
            close: true,
            content_length: false,
            transfer_encoding: coded,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use BodyFraming::*;

    fn framed(client: Client, status: u16, backend: BodyFraming, coded: bool) -> ClientFraming {
        for_client(client, status, backend, coded).expect("the body can pass")
    }

    const GET11: Client = Client {
        head: false,
        minor: 1,
    };
    const HEAD11: Client = Client {
        head: true,
        minor: 1,
    };
    const GET10: Client = Client {
        head: false,
        minor: 0,
    };
    const HEAD10: Client = Client {
        head: true,
        minor: 0,
    };

    #[test]
    fn a_body_where_none_belongs_is_dropped() {
        for (client, status) in [(HEAD11, 200), (GET11, 204), (GET11, 304), (HEAD11, 404)] {
            for backend in [Length(5), Chunked, UntilClose, None] {
                let f = framed(client, status, backend, false);
                assert_eq!(f.pass, Pass::Drop, "{client:?} {status} {backend:?}");
                assert!(!f.close && !f.transfer_encoding, "{client:?} {status}");
            }
        }
        assert!(framed(HEAD11, 200, Length(5), false).content_length);
        assert!(framed(GET11, 304, Length(5), false).content_length);
        assert!(!framed(GET11, 204, Length(5), false).content_length);
        assert!(!framed(HEAD11, 200, Chunked, true).content_length);
    }

    #[test]
    fn a_body_that_never_came_ends_at_close() {
        let f = framed(GET11, 200, None, false);
        assert_eq!(
            (f.pass, f.close, f.content_length, f.transfer_encoding),
            (Pass::Drop, true, false, false)
        );
    }

    #[test]
    fn bodies_pass_as_framed_for_http11_and_dechunked_for_http10() {
        let f = framed(GET11, 200, Length(5), false);
        assert_eq!(
            (f.pass, f.close, f.content_length),
            (Pass::AsIs, false, true)
        );
        let f = framed(GET11, 200, Chunked, true);
        assert_eq!(
            (f.pass, f.close, f.content_length, f.transfer_encoding),
            (Pass::AsIs, false, false, true)
        );
        let f = framed(GET10, 200, Chunked, true);
        assert_eq!(
            (f.pass, f.close, f.content_length, f.transfer_encoding),
            (Pass::Dechunk, true, false, false)
        );
        let f = framed(GET11, 200, UntilClose, true);
        assert_eq!(
            (f.pass, f.close, f.content_length),
            (Pass::AsIs, true, false)
        );
    }

    #[test]
    fn a_head_answered_204_has_no_content_length() {
        for backend in [Length(5), None] {
            assert!(!framed(HEAD11, 204, backend, false).content_length);
        }
        assert!(framed(HEAD11, 304, Length(5), false).content_length);
    }

    #[test]
    fn an_http10_client_gets_no_transfer_coding() {
        // A close-delimited body without a transfer coding passes as it is.
        let f = framed(GET10, 200, UntilClose, false);
        assert_eq!(
            (f.pass, f.close, f.content_length, f.transfer_encoding),
            (Pass::AsIs, true, false, false)
        );
        // A coding other than chunked cannot be taken off, nor be announced to HTTP/1.0.
        assert_eq!(for_client(GET10, 200, UntilClose, true), Option::None);
        // Without a body to carry, the coding does not matter.
        assert_eq!(framed(HEAD10, 200, UntilClose, true).pass, Pass::Drop);
        let f = framed(GET11, 200, UntilClose, true);
        assert!(f.transfer_encoding && f.pass == Pass::AsIs);
    }
}
