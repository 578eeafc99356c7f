//! The receivers: a fast one that notes each arrival, and a dead one that never answers.

use super::*;

// ---------------------------------------------------------------------------------------------
// Receivers.

/// A fast receiver: tiny_http with several threads, answering 200 at once and noting when each
/// payload arrived.
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) count: Arc<AtomicU64>,
    pub(crate) arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    /// Signalled on every arrival, for clients that wait for their own message.
    pub(crate) arrived: Arc<Condvar>,
}

impl Receiver {
    pub(crate) fn start(threads: usize) -> Result<Receiver> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?);
        let addr = server.server_addr().to_ip().ok_or("receiver address")?;
        let count = Arc::new(AtomicU64::new(0));
        let arrivals = Arc::new(Mutex::new(HashMap::new()));
        let arrived = Arc::new(Condvar::new());
        for _ in 0..threads {
            let server = Arc::clone(&server);
            let count = Arc::clone(&count);
            let arrivals = Arc::clone(&arrivals);
            let arrived = Arc::clone(&arrived);
            thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let at = Instant::now();
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    if !body.starts_with('{')
                        && let Ok(mut map) = arrivals.lock()
                    {
                        map.insert(body, at);
                        arrived.notify_all();
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = request.respond(tiny_http::Response::from_string("ok"));
                }
            });
        }
        Ok(Receiver {
            addr,
            count,
            arrivals,
            arrived,
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until `payload` has arrived and returns when it did.
    pub(crate) fn wait_for(&self, payload: &str, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        let mut arrivals = self.arrivals.lock().map_err(|_| "receiver lock poisoned")?;
        loop {
            if let Some(at) = arrivals.remove(payload) {
                return Ok(at);
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("{payload} did not arrive in {timeout:?}"))?;
            arrivals = self
                .arrived
                .wait_timeout(arrivals, left)
                .map_err(|_| "receiver lock poisoned")?
                .0;
        }
    }
}

/// The receiver's own rate with 8 keep-alive clients, to show it is not the bottleneck.
pub(crate) fn receiver_rate(receiver: &Receiver, secs: u64) -> Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let before = receiver.count();
    let mut threads = Vec::new();
    for _ in 0..8 {
        let url = receiver.url();
        let stop = Arc::clone(&stop);
        threads.push(thread::spawn(move || {
            let agent = agent();
            while !stop.load(Ordering::Relaxed) {
                let _ = agent
                    .post(&url)
                    .send(b"{}".as_slice())
                    .map(|mut r| r.body_mut().read_to_vec());
            }
        }));
    }
    let started = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok((receiver.count() - before) as f64 / started.elapsed().as_secs_f64())
}

/// An endpoint that accepts connections and never answers.
pub(crate) struct DeadReceiver {
    pub(crate) addr: SocketAddr,
}

impl DeadReceiver {
    pub(crate) fn start() -> Result<DeadReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Ok(DeadReceiver { addr })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/dead", self.addr)
    }
}
