-- Migration 2: the indexes the reports and `show message` need.
CREATE INDEX sessions_started_at  ON sessions(started_at);
CREATE INDEX sessions_src_ip      ON sessions(src_ip);
CREATE INDEX requests_ts          ON requests(ts);
CREATE INDEX requests_src_ip      ON requests(src_ip);
CREATE INDEX requests_module_kind ON requests(module, kind);
CREATE INDEX requests_session     ON requests(session);
CREATE INDEX credentials_ts       ON credentials(ts);
CREATE INDEX credentials_src_ip   ON credentials(src_ip);
CREATE INDEX artifacts_kind       ON artifacts(kind);
CREATE INDEX sightings_sha256     ON artifact_sightings(sha256);
CREATE INDEX sightings_ts         ON artifact_sightings(ts);
CREATE INDEX sightings_src_ip     ON artifact_sightings(src_ip);
CREATE INDEX messages_ts          ON messages(ts);
CREATE INDEX messages_src_ip      ON messages(src_ip);
CREATE INDEX messages_sha256      ON messages(sha256);
CREATE INDEX messages_session     ON messages(session);
CREATE INDEX recipients_address   ON recipients(address);
