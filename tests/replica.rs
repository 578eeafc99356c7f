//! Issue 17: the list endpoints on a read replica (`POSTMAND_DATABASE_READ_URL`), against a real
//! streaming standby: a private primary, migrated, and a standby made from it with
//! `pg_basebackup -R`, each on a free port of 127.0.0.1 (`common::cluster`), and the real binary
//! in the API role between them.
//!
//! Pausing the standby's replay makes its lag as long as the test wants: a list then misses what
//! the primary has, which proves lists read the standby, while a GET by id must not.

use serde_json::{Value, json};

use crate::common::cluster::Cluster;
use crate::common::fixtures::webhook_body;
use crate::common::http::{self, Response};
use crate::common::ids_in;
use crate::common::process::Postmand;
use crate::common::wait_until;
use std::net::SocketAddr;

/// A primary, its standby and postmand reading lists from the standby. Fields drop in order:
/// the process first, then the standby, then the primary.
struct Replicated {
    service: Postmand,
    api: SocketAddr,
    health: SocketAddr,
    standby: Cluster,
    _primary: Cluster,
}

impl Replicated {
    fn start(test: &str) -> Replicated {
        let primary = Cluster::start(&format!("{test}-primary"));
        let url = primary.migrated_database();
        let standby = primary.standby(&format!("{test}-standby"));
        let mut service = Postmand::start(
            &url,
            "api",
            &[
                ("POSTMAND_DATABASE_READ_URL", &standby.url("postmand")),
                ("POSTMAND_HTTP_PORT", "0"),
                ("POSTMAND_HEALTH_CHECK_HTTP_PORT", "0"),
            ],
        );
        let api = service.addr("http-server");
        let health = service.addr("health-server");
        service.wait_ready(health);
        Replicated {
            service,
            api,
            health,
            standby,
            _primary: primary,
        }
    }

    fn get(&self, path: &str) -> Response {
        http::request(self.api, "GET", path, &[], None)
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let response = http::post_json(self.api, path, body);
        assert_eq!(response.status, 201, "POST {path}: {}", response.text());
        response.json()
    }

    /// A webhook and one delivery of it, created through the API; their ids.
    fn webhook_and_delivery(&self) -> (String, String) {
        let webhook = self.post("/v1/webhooks", &webhook_body());
        let webhook_id = webhook["id"].as_str().expect("webhook id").to_string();
        let delivery = self.post(
            "/v1/deliveries",
            &json!({"webhook_id": webhook_id, "payload": "{\"n\": 1}"}),
        );
        let delivery_id = delivery["id"].as_str().expect("delivery id").to_string();
        (webhook_id, delivery_id)
    }

    fn healthz(&self) -> (u16, String) {
        let response = http::request(self.health, "GET", "/healthz", &[], None);
        (response.status, response.text())
    }

    /// Runs `sql` on the standby (a direct connection of the test's, not through postmand).
    fn on_standby(&self, sql: &str) -> Vec<postgres::Row> {
        self.standby
            .client("postmand")
            .query(sql, &[])
            .unwrap_or_else(|e| panic!("{sql} on the standby: {e}"))
    }
}

#[test]
fn issue_17_lists_lag_with_the_replica_while_get_by_id_reads_the_primary() {
    let app = Replicated::start("replica_lag");
    assert_eq!(
        app.healthz(),
        (200, r#"{"success":true,"read_replica":"up"}"#.to_string())
    );
    app.on_standby("SELECT pg_wal_replay_pause()");
    wait_until("the standby's replay to pause", || {
        let state: String =
            app.on_standby("SELECT pg_get_wal_replay_pause_state()::text")[0].get(0);
        if state == "paused" {
            Ok(())
        } else {
            Err(state)
        }
    });

    let (webhook_id, delivery_id) = app.webhook_and_delivery();

    // By id: the primary's, at once, however far the standby lags.
    let webhook = app.get(&format!("/v1/webhooks/{webhook_id}"));
    assert_eq!(webhook.status, 200, "{}", webhook.text());
    let delivery = app.get(&format!("/v1/deliveries/{delivery_id}"));
    assert_eq!(delivery.status, 200, "{}", delivery.text());
    assert_eq!(delivery.json()["id"], delivery_id.as_str());
    let list = format!("/v1/deliveries?webhook_id={webhook_id}");
    // Lists: the standby's, which has not replayed the creates yet.
    assert_eq!(ids_in(&app.get(&list), "deliveries"), Vec::<String>::new());
    assert!(
        !ids_in(&app.get("/v1/webhooks"), "webhooks").contains(&webhook_id),
        "the paused standby listed a webhook created after the pause"
    );

    app.on_standby("SELECT pg_wal_replay_resume()");
    wait_until("the list to show the delivery after replay resumed", || {
        let ids = ids_in(&app.get(&list), "deliveries");
        if ids == [delivery_id.clone()] {
            Ok(())
        } else {
            Err(ids)
        }
    });
    assert!(ids_in(&app.get("/v1/webhooks"), "webhooks").contains(&webhook_id));
}

#[test]
fn issue_17_replica_down_lists_fall_back_to_the_primary_and_healthz_says_so() {
    let mut app = Replicated::start("replica_down");
    let (webhook_id, delivery_id) = app.webhook_and_delivery();
    let list = format!("/v1/deliveries?webhook_id={webhook_id}");
    let listed = vec![delivery_id];
    wait_until("the standby to replay the delivery", || {
        let ids = ids_in(&app.get(&list), "deliveries");
        if ids == listed { Ok(()) } else { Err(ids) }
    });

    app.standby.down();
    // Every list still answers, from the primary (which has the delivery), and only one WARN
    // says why however many lists fall back.
    for _ in 0..5 {
        assert_eq!(ids_in(&app.get(&list), "deliveries"), listed);
    }
    assert_eq!(
        app.healthz(),
        (200, r#"{"success":true,"read_replica":"down"}"#.to_string())
    );
    let log = app.service.log();
    assert_eq!(
        log.matches("read-replica-unavailable").count(),
        1,
        "one WARN while the replica is down:\n{log}"
    );
    assert!(!log.contains("database-connect-error"), "{log}");

    // Back up: tried again after the skip window, reported up, and lists return to it.
    app.standby.up();
    wait_until("/healthz to report the replica up again", || {
        let answer = app.healthz();
        if answer == (200, r#"{"success":true,"read_replica":"up"}"#.to_string()) {
            Ok(())
        } else {
            Err(answer)
        }
    });
    app.service.wait_for_log("read-replica-available");
    assert_eq!(ids_in(&app.get(&list), "deliveries"), listed);
}
