//! `scripts/receiver.py`, the README tour's offline receiver, judged on what postmand really
//! sends: the dispatcher delivers to it, and its output must say "signature ok" for every
//! signature header of that delivery with the right secret (plain and `whsec_`), and "signature
//! MISMATCH" with a wrong one. Its `--status` answer must be what the attempt records.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{Value, json};

use crate::common::{TestApp, fixtures, wait_until};

/// Polling so slow that the delivery goes out on its wake-up.
const NO_POLL: (&str, &str) = ("POSTMAND_POLLING_INTERVAL", "60000");

/// `python3 scripts/receiver.py --port 0 ...` with its output (stdout and stderr) collected.
struct ReceiverScript {
    child: Child,
    output: Arc<Mutex<String>>,
    port: u16,
}

impl ReceiverScript {
    /// Starts the script with `args` on a free port and waits for its "listening on" line.
    fn start(args: &[&str]) -> ReceiverScript {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3 scripts/receiver.py");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        collect(stdout, &output);
        collect(stderr, &output);
        let mut receiver = ReceiverScript {
            child,
            output,
            port: 0,
        };
        receiver.port = wait_until("receiver.py to listen", || {
            let output = receiver.output();
            output
                .lines()
                .find_map(|line| line.strip_prefix("listening on http://127.0.0.1:"))
                .and_then(|rest| rest.split('/').next())
                .and_then(|port| port.parse::<u16>().ok())
                .ok_or(output)
        });
        receiver
    }

    fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The block printed for the request whose `webhook-id` is `id` (blocks are printed whole).
    fn block_for(&self, id: &str) -> String {
        wait_until(&format!("receiver.py to print delivery {id}"), || {
            let output = self.output();
            output
                .split("\n=== ")
                .find(|block| block.contains(&format!("\nwebhook-id: {id}\n")))
                .map(str::to_string)
                .ok_or(output)
        })
    }
}

impl Drop for ReceiverScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("receiver.py printed:\n{}", self.output());
        }
    }
}

/// Appends everything `pipe` yields to `output`, line by line, on a thread of its own.
fn collect(pipe: impl Read + Send + 'static, output: &Arc<Mutex<String>>) {
    let output = Arc::clone(output);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut output = output.lock().unwrap_or_else(|p| p.into_inner());
            output.push_str(&line);
            output.push('\n');
        }
    });
}

/// Has the dispatcher send one delivery of a webhook with `secret_token` to `receiver`, waits
/// until it is finished, and returns the delivery and receiver.py's block for it.
fn deliver(test: &str, secret_token: &str, receiver: &ReceiverScript) -> (Value, String) {
    let app = TestApp::start_all(test, &[NO_POLL]);
    let webhook = fixtures::webhook(
        &app,
        json!({
            "url": receiver.url("/hook"),
            "secret_token": secret_token,
            "max_delivery_attempts": 1,
        }),
    );
    let id = fixtures::delivery_id(
        &app,
        webhook["id"].as_str().unwrap(),
        r#"{"success": true}"#,
    );
    let block = receiver.block_for(&id);
    let delivery = app.finished(&id);
    let attempts = app
        .get(&format!("/v1/delivery-attempts?delivery_id={id}"))
        .json();
    (json!({"delivery": delivery, "attempts": attempts}), block)
}

/// Asserts that `block` gives every signature header postmand sends the verdict `verdict`
/// ("signature ok" or "signature MISMATCH"), and no header the other one.
#[track_caller]
fn assert_every_signature(block: &str, verdict: &str) {
    for header in [
        "webhook-signature",
        "x-hub-signature-256",
        "x-hub-signature",
    ] {
        assert!(
            block.contains(&format!("\n--- {header}: {verdict}\n")),
            "{header} is not \"{verdict}\" in:\n{block}"
        );
    }
    let other = if verdict == "signature ok" {
        "MISMATCH"
    } else {
        "signature ok"
    };
    assert!(!block.contains(other), "{block}");
}

#[test]
fn receiver_script_says_signature_ok_for_what_postmand_signs() {
    let receiver = ReceiverScript::start(&["--secret", "my-secret-token"]);
    let (result, block) = deliver("receiver_script_ok", "my-secret-token", &receiver);
    assert_every_signature(&block, "signature ok");
    assert!(block.contains("\n{\"success\": true}\n"), "{block}");
    assert!(block.contains("\n--- answered 200"), "{block}");
    assert_eq!(result["delivery"]["status"], "succeeded", "{result}");
}

#[test]
fn receiver_script_decodes_a_whsec_secret_for_standard_webhooks_only() {
    // Standard Webhooks signs with the base64-decoded key, the X-Hub headers with the secret's
    // own bytes: both must check out.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = ReceiverScript::start(&["--secret", secret]);
    let (result, block) = deliver("receiver_script_whsec", secret, &receiver);
    assert_every_signature(&block, "signature ok");
    assert_eq!(result["delivery"]["status"], "succeeded", "{result}");
}

#[test]
fn receiver_script_says_mismatch_for_a_wrong_secret_and_answers_its_status() {
    let receiver = ReceiverScript::start(&["--secret", "not-the-secret", "--status", "503"]);
    let (result, block) = deliver("receiver_script_mismatch", "my-secret-token", &receiver);
    assert_every_signature(&block, "signature MISMATCH");
    assert!(block.contains("\n--- answered 503"), "{block}");
    assert_eq!(result["delivery"]["status"], "failed", "{result}");
    assert_eq!(
        result["attempts"]["delivery_attempts"][0]["response_status_code"], 503,
        "{result}"
    );
}
