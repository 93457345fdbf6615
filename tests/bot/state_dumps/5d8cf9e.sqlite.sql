BEGIN TRANSACTION;
CREATE TABLE alert_groups (
	id VARCHAR(32) NOT NULL, 
	environment VARCHAR(64), 
	group_key TEXT NOT NULL, 
	episode INTEGER NOT NULL, 
	channel VARCHAR(64), 
	severity VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	alerts JSON NOT NULL, 
	group_labels JSON NOT NULL, 
	common_labels JSON NOT NULL, 
	common_annotations JSON NOT NULL, 
	external_url TEXT, 
	first_seen DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	resolved_at DATETIME, 
	acked_by VARCHAR(64), 
	acked_at DATETIME, 
	silences JSON NOT NULL, 
	last_notification_id INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "alert_groups" VALUES('g-old-1','prod','{}:{alertname="X"}',1,'C0OPS','critical','firing','{}','{}','{}','{}',NULL,'2026-11-20 09:30:00.000000','2026-11-20 09:30:00.000000',NULL,NULL,NULL,'[]',1);
CREATE TABLE alert_notifications (
	id INTEGER NOT NULL, 
	dedupe_key VARCHAR(64) NOT NULL, 
	group_id VARCHAR(32) NOT NULL, 
	environment VARCHAR(64), 
	group_key TEXT NOT NULL, 
	severity VARCHAR(32) NOT NULL, 
	payload JSON NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	received_at DATETIME NOT NULL, 
	processed_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (dedupe_key)
);
INSERT INTO "alert_notifications" VALUES(1,'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn','g-old-1','prod','{}:{alertname="X"}','critical','{"status": "firing"}','done','2026-11-20 09:30:00.000000','2026-11-20 09:30:00.000000');
CREATE TABLE approval_requests (
	id VARCHAR(32) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	environment VARCHAR(64) NOT NULL, 
	title TEXT NOT NULL, 
	requester VARCHAR(64) NOT NULL, 
	payload JSON NOT NULL, 
	payload_hash VARCHAR(64) NOT NULL, 
	summary_blocks JSON NOT NULL, 
	approvals_required INTEGER NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	channel VARCHAR(64), 
	message_ref VARCHAR(128), 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	decided_at DATETIME, 
	decided_by VARCHAR(64), 
	reason TEXT, 
	result TEXT, 
	PRIMARY KEY (id)
);
INSERT INTO "approval_requests" VALUES('ap-old-1','deploy','prod','Deploy Milvus 2.4.14 to prod','U0ALICE','{"version": "2.4.14"}','abababababababababababababababababababababababababababababababab','[{"type": "section", "text": {"type": "mrkdwn", "text": "2.4.13 -> 2.4.14"}}]',1,'pending','C0OPS','msg-old-0','2026-11-20 09:30:00.000000','2036-11-17 09:30:00.000000',NULL,NULL,NULL,NULL);
CREATE TABLE approval_votes (
	request_id VARCHAR(32) NOT NULL, 
	user_id VARCHAR(64) NOT NULL, 
	vote VARCHAR(16) NOT NULL, 
	payload_hash VARCHAR(64) NOT NULL, 
	at DATETIME NOT NULL, 
	PRIMARY KEY (request_id, user_id)
);
INSERT INTO "approval_votes" VALUES('ap-old-1','U0CAROL','approve','cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd','2026-11-20 09:30:00.000000');
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	user_id VARCHAR(64) NOT NULL, 
	action VARCHAR(200) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	environment VARCHAR(64), 
	arguments JSON NOT NULL, 
	outcome VARCHAR(16) NOT NULL, 
	detail TEXT, 
	reference VARCHAR(16), 
	channel VARCHAR(64), 
	duration_ms FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "audit_log" VALUES(1,'2026-11-20 09:30:00.000000','U0ALICE','deploy prod','command','prod','{"version": "2.4.13"}','ok','deployed 2.4.13',NULL,'C0OPS',81234.5);
INSERT INTO "audit_log" VALUES(2,'2026-11-20 09:31:00.000000','U0BOB','backup create','command','prod','{}','denied','needs role operator',NULL,'C0OPS',3.2);
CREATE TABLE backups (
	id VARCHAR(100) NOT NULL, 
	environment VARCHAR(64) NOT NULL, 
	engine VARCHAR(32) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	collections JSON NOT NULL, 
	rows BIGINT NOT NULL, 
	bytes BIGINT NOT NULL, 
	location TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	heartbeat_at DATETIME, 
	created_by VARCHAR(64) NOT NULL, 
	"trigger" VARCHAR(16) NOT NULL, 
	error TEXT, 
	PRIMARY KEY (id)
);
INSERT INTO "backups" VALUES('prod-20261120-0930','prod','logical','complete','["docs"]',1000,48128,'s3://backups/prod-20261120-0930','2026-11-20 09:30:00.000000','2026-11-20 09:30:00.000000','2026-11-20 09:30:00.000000','U0ALICE','manual',NULL);
CREATE TABLE claims (
	"key" VARCHAR(255) NOT NULL, 
	owner VARCHAR(128) NOT NULL, 
	claimed_at DATETIME NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "claims" VALUES('approve:ap-old-1:U0CAROL','U0CAROL','2026-11-20 09:30:00.000000');
CREATE TABLE job_runs (
	job_id VARCHAR(200) NOT NULL, 
	scheduled_for DATETIME NOT NULL, 
	task VARCHAR(64) NOT NULL, 
	owner VARCHAR(128) NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	outcome VARCHAR(16) NOT NULL, 
	summary TEXT, 
	PRIMARY KEY (job_id, scheduled_for)
);
INSERT INTO "job_runs" VALUES('backup-nightly:prod','2026-11-20 09:30:00.000000','backup','replica-a','2026-11-20 09:30:00.000000','2026-11-20 09:30:00.000000','ok','1 collection');
CREATE TABLE kv (
	namespace VARCHAR(64) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value JSON NOT NULL, 
	updated_at DATETIME NOT NULL, 
	version BIGINT NOT NULL, 
	PRIMARY KEY (namespace, "key")
);
INSERT INTO "kv" VALUES('alerts','muted:prod','{"until": "2026-11-21"}','2026-11-20 09:30:00.000000',3);
CREATE TABLE locks (
	name VARCHAR(255) NOT NULL, 
	owner VARCHAR(128) NOT NULL, 
	description TEXT NOT NULL, 
	acquired_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "locks" VALUES('deploy:prod','U0ALICE','deploy of 2.4.13','2026-11-20 09:30:00.000000','2026-11-20 10:00:00.000000');
CREATE TABLE message_refs (
	ref VARCHAR(128) NOT NULL, 
	channel VARCHAR(64) NOT NULL, 
	ts VARCHAR(32) NOT NULL, 
	PRIMARY KEY (ref)
);
INSERT INTO "message_refs" VALUES('msg-old-0','C0OPS','1763631000.000100');
CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	channel VARCHAR(64) NOT NULL, 
	op VARCHAR(16) NOT NULL, 
	ref VARCHAR(128) NOT NULL, 
	thread_ref VARCHAR(128), 
	payload JSON NOT NULL, 
	dedupe_key VARCHAR(255), 
	state VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	not_before DATETIME NOT NULL, 
	last_error TEXT, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (dedupe_key)
);
INSERT INTO "outbox" VALUES(1,'C0OPS','post','msg-old-1',NULL,'{"text": "queued before the upgrade"}','old-1','pending',0,'2026-11-20 09:30:00.000000',NULL,'2026-11-20 09:30:00.000000');
CREATE TABLE schema_migrations (
	id VARCHAR(100) NOT NULL, 
	applied_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "schema_migrations" VALUES('0001_core','2026-11-20 09:30:00.000000');
INSERT INTO "schema_migrations" VALUES('0002_outbox','2026-11-20 09:30:00.000000');
INSERT INTO "schema_migrations" VALUES('0003_job_runs','2026-11-20 09:30:00.000000');
INSERT INTO "schema_migrations" VALUES('0004_approvals','2026-11-20 09:30:00.000000');
INSERT INTO "schema_migrations" VALUES('0005_alerts','2026-11-20 09:30:00.000000');
INSERT INTO "schema_migrations" VALUES('0006_backups','2026-11-20 09:30:00.000000');
CREATE INDEX ix_audit_at ON audit_log (at);
CREATE INDEX ix_outbox_pending ON outbox (state, channel, id);
CREATE INDEX ix_approval_state ON approval_requests (state, expires_at);
CREATE INDEX ix_alert_notifications_pending ON alert_notifications (state, id);
CREATE INDEX ix_alert_groups_status ON alert_groups (status, environment);
CREATE INDEX ix_backups_env_created ON backups (environment, created_at);
COMMIT;
