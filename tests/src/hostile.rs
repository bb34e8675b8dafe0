//! A hostile server for the tests: a loopback HTTP/1.1 listener that
//! answers every request as the test says (headers and body chosen to
//! attack the client: an endless event stream, a challenge that points at a
//! cloud metadata service, ...) and counts the connections it accepted, so a
//! test can show that one was never made.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server sends back.
#[derive(Clone)]
pub enum Answer {
    /// This status, these extra headers, this body (then the connection closes).
    Fixed {
        /// The status line's code and reason, e.g. `401 Unauthorized`.
        status: &'static str,
        /// Extra header lines, e.g. `WWW-Authenticate: Bearer ...`.
        headers: Vec<String>,
        /// The body.
        body: String,
    },
    /// One answer to POSTs, another to GETs.
    PerMethod {
        /// To POSTs.
        post: Box<Answer>,
        /// To GETs.
        get: Box<Answer>,
    },
    /// A `text/event-stream` whose body repeats `chunk` until the client
    /// goes away (or `total` bytes were sent).
    Endless {
        /// What is sent again and again.
        chunk: Vec<u8>,
        /// At most this many bytes in all.
        total: usize,
    },
}

/// A running hostile server.
pub struct Hostile {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its port.
    pub port: u16,
    connections: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    gets: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// Starts answering every request with `answer`.
    pub async fn start(answer: Answer) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let gets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, b, g, h) = (
            connections.clone(),
            sent.clone(),
            gets.clone(),
            heads.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (answer, sent, gets, heads) = (answer.clone(), b.clone(), g.clone(), h.clone());
                tokio::spawn(async move {
                    // Read the request head (a body, if any, is not needed).
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut n = 0;
                    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                        match s.read(&mut buf[n..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => n += k,
                        }
                    }
                    let end = buf[..n]
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .unwrap_or(n);
                    heads
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..end]).into_owned());
                    let answer = match answer {
                        Answer::PerMethod { post, get } => {
                            if buf.starts_with(b"GET ") {
                                gets.lock().unwrap().push(std::time::Instant::now());
                                *get
                            } else {
                                *post
                            }
                        }
                        other => other,
                    };
                    match answer {
                        Answer::PerMethod { .. } => {}
                        Answer::Fixed {
                            status,
                            headers,
                            body,
                        } => {
                            let mut head = format!(
                                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                                body.len()
                            );
                            for h in headers {
                                head.push_str(&h);
                                head.push_str("\r\n");
                            }
                            head.push_str("\r\n");
                            let _ = s.write_all(head.as_bytes()).await;
                            let _ = s.write_all(body.as_bytes()).await;
                        }
                        Answer::Endless { chunk, total } => {
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                            if s.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let mut n = 0;
                            while n < total {
                                if s.write_all(&chunk).await.is_err() {
                                    return;
                                }
                                n += chunk.len();
                                sent.fetch_add(chunk.len(), Ordering::SeqCst);
                            }
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        Hostile {
            url: format!("http://127.0.0.1:{port}"),
            port,
            connections,
            sent,
            gets,
            heads,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The head (request line and headers) of every request so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// When each GET came.
    pub fn gets(&self) -> Vec<std::time::Instant> {
        self.gets.lock().unwrap().clone()
    }

    /// Bytes of endless streams sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}
