//! One connection from kgate to one upstream broker, secured as kgate itself.
//!
//! Opening: TCP, TLS when configured, then SASL (SaslHandshake v1 + SaslAuthenticate) as kgate's
//! service identity. Afterwards requests are written as they come (pipelined) with kgate's own
//! correlation ids; a reader task matches each response to the oldest request still waiting
//! (Kafka answers a connection's requests in order) and hands back the body without its header.
//! The session restores the client's correlation id when it writes the response.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use libgssapi::context::SecurityContext;

use crate::diag::gss::LayerError;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::debug;

use super::security::{server_name, UpstreamSasl, UpstreamSecurity};
use crate::protocol::{read_frame, RequestFrame};

/// The largest response accepted from upstream (a Fetch answer is bounded by the client's fetch.max.bytes).
const MAX_RESPONSE_BYTES: usize = 1 << 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// kgate's own requests (SASL, discovery) name it in the upstream's request log.
pub const KGATE_CLIENT_ID: &str = "kgate";

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to upstream broker {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS handshake with upstream broker {addr} failed: {reason}. Check backend.tls.ca and that the broker's certificate names the host in backend.bootstrap")]
    Tls { addr: String, reason: String },
    #[error("SASL authentication to upstream broker {addr} failed: {reason}. Check backend.sasl (mechanism, username, password_file)")]
    Sasl { addr: String, reason: String },
    #[error("upstream broker {addr} closed the connection ({reason})")]
    Closed { addr: String, reason: String },
    #[error("upstream broker {addr} broke the protocol: {reason}")]
    Protocol { addr: String, reason: String },
}

/// What the caller gets back for a request that has a response.
pub type ResponseBody = oneshot::Receiver<Result<Bytes, LinkError>>;

struct Expected {
    correlation_id: i32,
    flexible_header: bool,
    reply: oneshot::Sender<Result<Bytes, LinkError>>,
}

#[derive(Default)]
struct Waiting {
    queue: VecDeque<Expected>,
    /// Set once the connection is gone; later requests fail at once with it.
    closed: Option<LinkError>,
    /// True when requests were waiting for answers at the moment the connection was lost.
    lost_requests: bool,
}

pub struct Link {
    addr: String,
    out: BufWriter<WriteHalf<BoxStream>>,
    waiting: Arc<Mutex<Waiting>>,
    next_correlation_id: i32,
    reader: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lock(w: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// How far a link gets before it is usable.
pub struct Handshake<'a> {
    pub security: &'a UpstreamSecurity,
    /// SaslAuthenticate version to use (the upstream's highest of 0..=1).
    pub sasl_authenticate_version: i16,
}

impl Link {
    /// Connects, secures and authenticates.
    pub async fn open(addr: &str, handshake: &Handshake<'_>) -> Result<Link, LinkError> {
        let mut stream = connect(addr, handshake.security).await?;
        let mut correlation_id = 0;
        if let Some(sasl) = &handshake.security.sasl {
            authenticate(
                &mut stream,
                addr,
                sasl,
                handshake.sasl_authenticate_version,
                &mut correlation_id,
            )
            .await?;
        }
        Ok(Link::start(addr, stream, correlation_id))
    }

    /// Connects, secures, asks ApiVersions (before SASL, as Kafka clients do), then authenticates:
    /// the first contact with a cluster. A broker that closes the connection on ApiVersions is a
    /// protocol error: older than Kafka 0.10.0, or a TLS port spoken to in plaintext.
    pub async fn open_discovering(
        addr: &str,
        security: &UpstreamSecurity,
    ) -> Result<(Link, ApiVersionsResponse), LinkError> {
        let mut stream = connect(addr, security).await?;
        let mut correlation_id = 0;
        let versions: ApiVersionsResponse = exchange(
            &mut stream,
            addr,
            ApiKey::ApiVersions,
            0,
            &ApiVersionsRequest::default(),
            &mut correlation_id,
        )
        .await
        .map_err(|e| match e {
            LinkError::Closed { addr, .. } => {
                let tls_hint = if security.tls.is_none() {
                    " (or the port expects TLS: then set [backend.tls])"
                } else {
                    ""
                };
                LinkError::Protocol {
                    addr,
                    reason: format!(
                        "it closed the connection when asked ApiVersions: it is older than Kafka 0.10.0 \
                         (no ApiVersions), which kgate cannot front; upgrade the cluster to 0.10.0 or newer{tls_hint}"
                    ),
                }
            }
            other => other,
        })?;
        if versions.error_code != 0 {
            return Err(LinkError::Protocol {
                addr: addr.into(),
                reason: format!("ApiVersions v0 answered error code {}", versions.error_code),
            });
        }
        if let Some(sasl) = &security.sasl {
            let authenticate_max = versions
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::SaslAuthenticate as i16)
                .map(|k| k.max_version.min(1))
                .unwrap_or(0);
            authenticate(&mut stream, addr, sasl, authenticate_max, &mut correlation_id).await?;
        }
        Ok((Link::start(addr, stream, correlation_id), versions))
    }

    fn start(addr: &str, stream: BoxStream, next_correlation_id: i32) -> Link {
        let (r, w) = tokio::io::split(stream);
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let reader = tokio::spawn(read_responses(addr.to_string(), r, waiting.clone()));
        Link {
            addr: addr.to_string(),
            out: BufWriter::with_capacity(64 * 1024, w),
            waiting,
            next_correlation_id,
            reader,
        }
    }

    /// True once the upstream closed the connection (or broke the protocol).
    pub fn is_closed(&self) -> bool {
        lock(&self.waiting).closed.is_some()
    }

    /// True when the connection was lost with requests still waiting for their answers.
    pub fn lost_requests(&self) -> bool {
        lock(&self.waiting).lost_requests
    }

    /// Why the connection ended (or a generic reason while it is open).
    pub fn closed_reason(&self) -> LinkError {
        lock(&self.waiting)
            .closed
            .clone()
            .unwrap_or_else(|| self.closed("still open"))
    }

    /// Forwards a client's request (its header with kgate's correlation id). `expect_reply = false`
    /// for Produce with acks=0, which Kafka never answers.
    pub async fn forward(
        &mut self,
        request: &RequestFrame,
        expect_reply: bool,
    ) -> Result<Option<ResponseBody>, LinkError> {
        let mut header = request.header.clone();
        let receiver = self.expect(&mut header, request.api_key, request.version, expect_reply)?;
        let header_version = request.api_key.request_header_version(request.version);
        self.write(&header, header_version, &request.body).await?;
        Ok(receiver)
    }

    /// Sends one of kgate's own requests and decodes the answer (discovery).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, LinkError> {
        let mut header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_client_id(Some(StrBytes::from_static_str(KGATE_CLIENT_ID)));
        let receiver = self.expect(&mut header, api_key, version, true)?;
        let mut body = BytesMut::new();
        request
            .encode(&mut body, version)
            .map_err(|e| self.protocol(format!("cannot encode {api_key:?}: {e}")))?;
        self.write(&header, api_key.request_header_version(version), &body)
            .await?;
        let Some(receiver) = receiver else {
            return Err(self.protocol("no response expected".into()));
        };
        let mut body = receiver.await.map_err(|_| self.closed("reader stopped"))??;
        Resp::decode(&mut body, version)
            .map_err(|e| self.protocol(format!("malformed {api_key:?} v{version} response: {e}")))
    }

    /// Registers the response to come before the request leaves, so the reader always finds it.
    fn expect(
        &mut self,
        header: &mut RequestHeader,
        api_key: ApiKey,
        version: i16,
        expect_reply: bool,
    ) -> Result<Option<ResponseBody>, LinkError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        header.correlation_id = correlation_id;
        let mut waiting = lock(&self.waiting);
        if let Some(e) = &waiting.closed {
            return Err(e.clone());
        }
        if !expect_reply {
            return Ok(None);
        }
        let (reply, receiver) = oneshot::channel();
        waiting.queue.push_back(Expected {
            correlation_id,
            flexible_header: api_key.response_header_version(version) >= 1,
            reply,
        });
        Ok(Some(receiver))
    }

    async fn write(&mut self, header: &RequestHeader, header_version: i16, body: &[u8]) -> Result<(), LinkError> {
        let mut head = BytesMut::with_capacity(64);
        head.put_i32(0);
        header
            .encode(&mut head, header_version)
            .map_err(|e| self.protocol(format!("cannot encode a request header: {e}")))?;
        let size = head.len() - 4 + body.len();
        let size = i32::try_from(size).map_err(|_| self.protocol(format!("request of {size} bytes is too large")))?;
        head[..4].copy_from_slice(&size.to_be_bytes());
        let written = async {
            self.out.write_all(&head).await?;
            self.out.write_all(body).await?;
            self.out.flush().await
        }
        .await;
        written.map_err(|e| {
            let error = self.closed(&e.to_string());
            fail_all(&self.waiting, error.clone());
            error
        })
    }

    fn protocol(&self, reason: String) -> LinkError {
        LinkError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn closed(&self, reason: &str) -> LinkError {
        LinkError::Closed {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }
}

/// Fails every waiting request and every later one with `error`.
fn fail_all(waiting: &Mutex<Waiting>, error: LinkError) {
    let mut waiting = lock(waiting);
    waiting.lost_requests |= !waiting.queue.is_empty();
    for expected in waiting.queue.drain(..) {
        let _ = expected.reply.send(Err(error.clone()));
    }
    waiting.closed.get_or_insert(error);
}

async fn read_responses(addr: String, half: ReadHalf<BoxStream>, waiting: Arc<Mutex<Waiting>>) {
    let mut reader = BufReader::with_capacity(64 * 1024, half);
    let error = loop {
        let frame = match read_frame(&mut reader, MAX_RESPONSE_BYTES).await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                break LinkError::Closed {
                    addr,
                    reason: "end of stream".into(),
                }
            }
            Err(e) => {
                break LinkError::Closed {
                    addr,
                    reason: e.to_string(),
                }
            }
        };
        let Some(expected) = lock(&waiting).queue.pop_front() else {
            break LinkError::Protocol {
                addr,
                reason: "a response arrived that no request asked for".into(),
            };
        };
        match strip_header(frame, expected.correlation_id, expected.flexible_header) {
            Ok(body) => {
                // The receiver is gone when the client left meanwhile: nothing to do.
                let _ = expected.reply.send(Ok(body));
            }
            Err(reason) => {
                let error = LinkError::Protocol { addr, reason };
                let _ = expected.reply.send(Err(error.clone()));
                break error;
            }
        }
    };
    debug!("upstream connection ended: {error}");
    fail_all(&waiting, error);
}

/// Checks the correlation id and returns the body that follows the response header.
fn strip_header(mut frame: Bytes, correlation_id: i32, flexible: bool) -> Result<Bytes, String> {
    if frame.len() < 4 {
        return Err(format!("response of {} bytes has no header", frame.len()));
    }
    let header = ResponseHeader::decode(&mut frame, if flexible { 1 } else { 0 })
        .map_err(|e| format!("malformed response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response correlation id {} where {correlation_id} was expected",
            header.correlation_id
        ));
    }
    Ok(frame)
}

async fn connect(addr: &str, security: &UpstreamSecurity) -> Result<BoxStream, LinkError> {
    let connect_error = |reason: String| LinkError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(connect_error(e.to_string())),
        Err(_) => return Err(connect_error(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &security.tls else {
        return Ok(Box::new(tcp));
    };
    let tls_error = |reason: String| LinkError::Tls {
        addr: addr.to_string(),
        reason,
    };
    let host = crate::config::split_host_port(addr)
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| tls_error("not a HOST:PORT address".into()))?;
    let name = server_name(host).map_err(tls_error)?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => Err(tls_error(e.to_string())),
        Err(_) => Err(tls_error(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// One request and its response on a connection nobody else uses yet (the handshake phase).
async fn exchange<Req: Encodable, Resp: Decodable>(
    stream: &mut BoxStream,
    addr: &str,
    api_key: ApiKey,
    version: i16,
    request: &Req,
    correlation_id: &mut i32,
) -> Result<Resp, LinkError> {
    let protocol = |reason: String| LinkError::Protocol {
        addr: addr.to_string(),
        reason,
    };
    let id = *correlation_id;
    *correlation_id += 1;
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(id)
        .with_client_id(Some(StrBytes::from_static_str(KGATE_CLIENT_ID)));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, api_key.request_header_version(version))
        .and_then(|_| request.encode(&mut frame, version))
        .map_err(|e| protocol(format!("cannot encode {api_key:?}: {e}")))?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    let closed = |reason: String| LinkError::Closed {
        addr: addr.to_string(),
        reason,
    };
    stream.write_all(&frame).await.map_err(|e| closed(e.to_string()))?;
    stream.flush().await.map_err(|e| closed(e.to_string()))?;
    let answer = tokio::time::timeout(CONNECT_TIMEOUT, read_frame(stream, MAX_RESPONSE_BYTES))
        .await
        .map_err(|_| closed(format!("no {api_key:?} answer within {CONNECT_TIMEOUT:?}")))?;
    let frame = match answer {
        Ok(Some(frame)) => frame,
        Ok(None) => return Err(closed(format!("end of stream instead of the {api_key:?} answer"))),
        Err(e) => return Err(closed(e.to_string())),
    };
    // ApiVersions answers always use header v0 so that any client can read the error.
    let flexible = api_key != ApiKey::ApiVersions && api_key.response_header_version(version) >= 1;
    let mut body = strip_header(frame, id, flexible).map_err(protocol)?;
    let response =
        Resp::decode(&mut body, version).map_err(|e| protocol(format!("malformed {api_key:?} answer: {e}")))?;
    if body.has_remaining() && api_key != ApiKey::ApiVersions {
        debug!(%addr, "{} trailing bytes after the {api_key:?} answer", body.remaining());
    }
    Ok(response)
}

/// SaslHandshake v1, then SaslAuthenticate round trips until the mechanism is done.
async fn authenticate(
    stream: &mut BoxStream,
    addr: &str,
    sasl: &UpstreamSasl,
    authenticate_version: i16,
    correlation_id: &mut i32,
) -> Result<(), LinkError> {
    let mechanism = sasl.mechanism();
    let handshake: SaslHandshakeResponse = exchange(
        stream,
        addr,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        correlation_id,
    )
    .await?;
    if handshake.error_code != 0 {
        let enabled: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(sasl_failed(
            addr,
            format!(
                "the broker does not enable {mechanism} (error code {}; it enables {enabled:?})",
                handshake.error_code
            ),
        ));
    }
    match sasl {
        UpstreamSasl::Password(config) => {
            let (mut client, mut token) = config.start().map_err(|e| sasl_failed(addr, e.to_string()))?;
            loop {
                let reply = sasl_round(stream, addr, authenticate_version, token, correlation_id).await?;
                if client.is_complete() {
                    return Ok(());
                }
                match client.step(&reply).map_err(|e| sasl_failed(addr, e.to_string()))? {
                    Some(next) => token = next,
                    None => return Ok(()),
                }
            }
        }
        UpstreamSasl::Gssapi(initiator) => {
            // RFC 4752: context tokens until established, then the broker's wrapped security-layer
            // offer, answered with "no security layer" (what Kafka clients do).
            let host = crate::config::split_host_port(addr)
                .map(|(h, _)| h.to_string())
                .ok_or_else(|| sasl_failed(addr, "not a HOST:PORT address".into()))?;
            let initiator = initiator.clone();
            let started = tokio::task::spawn_blocking(move || initiator.start(&host))
                .await
                .map_err(|e| sasl_failed(addr, format!("GSSAPI task failed: {e}")))?;
            let (mut ctx, mut token) = started.map_err(|e| sasl_failed(addr, e))?;
            let mut layer_answered = false;
            for _ in 0..8 {
                let reply = sasl_round(stream, addr, authenticate_version, token, correlation_id).await?;
                if layer_answered {
                    return Ok(());
                }
                if !ctx.is_complete() {
                    let stepped = tokio::task::spawn_blocking(move || {
                        let next = ctx
                            .step(Some(&reply), None)
                            .map(|t| t.map(|b| b.to_vec()).unwrap_or_default());
                        (ctx, next)
                    })
                    .await
                    .map_err(|e| sasl_failed(addr, format!("GSSAPI task failed: {e}")))?;
                    ctx = stepped.0;
                    token = stepped
                        .1
                        .map_err(|e| sasl_failed(addr, format!("the broker's GSSAPI reply does not verify: {e}")))?;
                    continue;
                }
                token = crate::diag::gss::answer_security_layer(&mut ctx, &reply).map_err(|e| {
                    let reason = match e {
                        LayerError::Unwrap(f) => format!("cannot unwrap the security-layer offer: {f}"),
                        LayerError::NoPlainLayer(offer) => {
                            format!(
                                "the broker's security-layer offer {offer:02x?} does not allow \"no security layer\""
                            )
                        }
                        LayerError::Wrap(f) => format!("cannot wrap the security-layer answer: {f}"),
                    };
                    sasl_failed(addr, reason)
                })?;
                layer_answered = true;
            }
            Err(sasl_failed(
                addr,
                "the GSSAPI exchange did not finish in 8 rounds".into(),
            ))
        }
    }
}

/// One SaslAuthenticate round trip; the broker's token, or its error as a SASL failure.
async fn sasl_round(
    stream: &mut BoxStream,
    addr: &str,
    version: i16,
    token: Vec<u8>,
    correlation_id: &mut i32,
) -> Result<Bytes, LinkError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let answer: SaslAuthenticateResponse = exchange(
        stream,
        addr,
        ApiKey::SaslAuthenticate,
        version,
        &request,
        correlation_id,
    )
    .await?;
    if answer.error_code != 0 {
        let message = answer.error_message.as_ref().map(|m| m.as_str()).unwrap_or("");
        return Err(sasl_failed(
            addr,
            format!("error code {} ({message})", answer.error_code),
        ));
    }
    Ok(answer.auth_bytes)
}

fn sasl_failed(addr: &str, reason: String) -> LinkError {
    LinkError::Sasl {
        addr: addr.to_string(),
        reason,
    }
}
