--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alert_groups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_groups (
    id character varying(32) NOT NULL,
    environment character varying(64),
    group_key text NOT NULL,
    episode integer NOT NULL,
    channel character varying(64),
    severity character varying(32) NOT NULL,
    status character varying(16) NOT NULL,
    alerts json NOT NULL,
    group_labels json NOT NULL,
    common_labels json NOT NULL,
    common_annotations json NOT NULL,
    external_url text,
    first_seen timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    resolved_at timestamp with time zone,
    acked_by character varying(64),
    acked_at timestamp with time zone,
    silences json NOT NULL,
    last_notification_id integer NOT NULL
);


--
-- Name: alert_notifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_notifications (
    id integer NOT NULL,
    dedupe_key character varying(64) NOT NULL,
    group_id character varying(32) NOT NULL,
    environment character varying(64),
    group_key text NOT NULL,
    severity character varying(32) NOT NULL,
    payload json NOT NULL,
    state character varying(16) NOT NULL,
    received_at timestamp with time zone NOT NULL,
    processed_at timestamp with time zone
);


--
-- Name: alert_notifications_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.alert_notifications_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: alert_notifications_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.alert_notifications_id_seq OWNED BY public.alert_notifications.id;


--
-- Name: approval_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.approval_requests (
    id character varying(32) NOT NULL,
    kind character varying(32) NOT NULL,
    environment character varying(64) NOT NULL,
    title text NOT NULL,
    requester character varying(64) NOT NULL,
    payload json NOT NULL,
    payload_hash character varying(64) NOT NULL,
    summary_blocks json NOT NULL,
    approvals_required integer NOT NULL,
    state character varying(16) NOT NULL,
    channel character varying(64),
    message_ref character varying(128),
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    decided_at timestamp with time zone,
    decided_by character varying(64),
    reason text,
    result text
);


--
-- Name: approval_votes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.approval_votes (
    request_id character varying(32) NOT NULL,
    user_id character varying(64) NOT NULL,
    vote character varying(16) NOT NULL,
    payload_hash character varying(64) NOT NULL,
    at timestamp with time zone NOT NULL
);


--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    id integer NOT NULL,
    at timestamp with time zone NOT NULL,
    user_id character varying(64) NOT NULL,
    action character varying(200) NOT NULL,
    kind character varying(16) NOT NULL,
    environment character varying(64),
    arguments json NOT NULL,
    outcome character varying(16) NOT NULL,
    detail text,
    reference character varying(16),
    channel character varying(64),
    duration_ms double precision NOT NULL
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_log_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;


--
-- Name: backups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.backups (
    id character varying(100) NOT NULL,
    environment character varying(64) NOT NULL,
    engine character varying(32) NOT NULL,
    state character varying(16) NOT NULL,
    collections json NOT NULL,
    rows bigint NOT NULL,
    bytes bigint NOT NULL,
    location text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    heartbeat_at timestamp with time zone,
    created_by character varying(64) NOT NULL,
    trigger character varying(16) NOT NULL,
    error text
);


--
-- Name: claims; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.claims (
    key character varying(255) NOT NULL,
    owner character varying(128) NOT NULL,
    claimed_at timestamp with time zone NOT NULL
);


--
-- Name: job_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_runs (
    job_id character varying(200) NOT NULL,
    scheduled_for timestamp with time zone NOT NULL,
    task character varying(64) NOT NULL,
    owner character varying(128) NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    outcome character varying(16) NOT NULL,
    summary text
);


--
-- Name: kv; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.kv (
    namespace character varying(64) NOT NULL,
    key character varying(255) NOT NULL,
    value json NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    version bigint NOT NULL
);


--
-- Name: locks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.locks (
    name character varying(255) NOT NULL,
    owner character varying(128) NOT NULL,
    description text NOT NULL,
    acquired_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: message_refs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.message_refs (
    ref character varying(128) NOT NULL,
    channel character varying(64) NOT NULL,
    ts character varying(32) NOT NULL
);


--
-- Name: outbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.outbox (
    id integer NOT NULL,
    channel character varying(64) NOT NULL,
    op character varying(16) NOT NULL,
    ref character varying(128) NOT NULL,
    thread_ref character varying(128),
    payload json NOT NULL,
    dedupe_key character varying(255),
    state character varying(16) NOT NULL,
    attempts integer NOT NULL,
    not_before timestamp with time zone NOT NULL,
    last_error text,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: outbox_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.outbox_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: outbox_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.outbox_id_seq OWNED BY public.outbox.id;


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    id character varying(100) NOT NULL,
    applied_at timestamp with time zone NOT NULL
);


--
-- Name: alert_notifications id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_notifications ALTER COLUMN id SET DEFAULT nextval('public.alert_notifications_id_seq'::regclass);


--
-- Name: audit_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log ALTER COLUMN id SET DEFAULT nextval('public.audit_log_id_seq'::regclass);


--
-- Name: outbox id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.outbox ALTER COLUMN id SET DEFAULT nextval('public.outbox_id_seq'::regclass);


--
-- Data for Name: alert_groups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alert_groups VALUES ('g-old-1', 'prod', '{}:{alertname="X"}', 1, 'C0OPS', 'critical', 'firing', '{}', '{}', '{}', '{}', NULL, '2026-11-20 09:30:00+00', '2026-11-20 09:30:00+00', NULL, NULL, NULL, '[]', 1);


--
-- Data for Name: alert_notifications; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alert_notifications VALUES (1, 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn', 'g-old-1', 'prod', '{}:{alertname="X"}', 'critical', '{"status": "firing"}', 'done', '2026-11-20 09:30:00+00', '2026-11-20 09:30:00+00');


--
-- Data for Name: approval_requests; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.approval_requests VALUES ('ap-old-1', 'deploy', 'prod', 'Deploy Milvus 2.4.14 to prod', 'U0ALICE', '{"version": "2.4.14"}', 'abababababababababababababababababababababababababababababababab', '[{"type": "section", "text": {"type": "mrkdwn", "text": "2.4.13 -> 2.4.14"}}]', 1, 'pending', 'C0OPS', 'msg-old-0', '2026-11-20 09:30:00+00', '2036-11-17 09:30:00+00', NULL, NULL, NULL, NULL);


--
-- Data for Name: approval_votes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.approval_votes VALUES ('ap-old-1', 'U0CAROL', 'approve', 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', '2026-11-20 09:30:00+00');


--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.audit_log VALUES (1, '2026-11-20 09:30:00+00', 'U0ALICE', 'deploy prod', 'command', 'prod', '{"version": "2.4.13"}', 'ok', 'deployed 2.4.13', NULL, 'C0OPS', 81234.5);
INSERT INTO public.audit_log VALUES (2, '2026-11-20 09:31:00+00', 'U0BOB', 'backup create', 'command', 'prod', '{}', 'denied', 'needs role operator', NULL, 'C0OPS', 3.2);


--
-- Data for Name: backups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.backups VALUES ('prod-20261120-0930', 'prod', 'logical', 'complete', '["docs"]', 1000, 48128, 's3://backups/prod-20261120-0930', '2026-11-20 09:30:00+00', '2026-11-20 09:30:00+00', '2026-11-20 09:30:00+00', 'U0ALICE', 'manual', NULL);


--
-- Data for Name: claims; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.claims VALUES ('approve:ap-old-1:U0CAROL', 'U0CAROL', '2026-11-20 09:30:00+00');


--
-- Data for Name: job_runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.job_runs VALUES ('backup-nightly:prod', '2026-11-20 09:30:00+00', 'backup', 'replica-a', '2026-11-20 09:30:00+00', '2026-11-20 09:30:00+00', 'ok', '1 collection');


--
-- Data for Name: kv; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.kv VALUES ('alerts', 'muted:prod', '{"until": "2026-11-21"}', '2026-11-20 09:30:00+00', 3);


--
-- Data for Name: locks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.locks VALUES ('deploy:prod', 'U0ALICE', 'deploy of 2.4.13', '2026-11-20 09:30:00+00', '2026-11-20 10:00:00+00');


--
-- Data for Name: message_refs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.message_refs VALUES ('msg-old-0', 'C0OPS', '1763631000.000100');


--
-- Data for Name: outbox; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.outbox VALUES (1, 'C0OPS', 'post', 'msg-old-1', NULL, '{"text": "queued before the upgrade"}', 'old-1', 'pending', 0, '2026-11-20 09:30:00+00', NULL, '2026-11-20 09:30:00+00');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_migrations VALUES ('0001_core', '2026-11-20 09:30:00+00');
INSERT INTO public.schema_migrations VALUES ('0002_outbox', '2026-11-20 09:30:00+00');
INSERT INTO public.schema_migrations VALUES ('0003_job_runs', '2026-11-20 09:30:00+00');
INSERT INTO public.schema_migrations VALUES ('0004_approvals', '2026-11-20 09:30:00+00');
INSERT INTO public.schema_migrations VALUES ('0005_alerts', '2026-11-20 09:30:00+00');
INSERT INTO public.schema_migrations VALUES ('0006_backups', '2026-11-20 09:30:00+00');


--
-- Name: alert_notifications_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.alert_notifications_id_seq', 1, true);


--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.audit_log_id_seq', 2, true);


--
-- Name: outbox_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.outbox_id_seq', 1, true);


--
-- Name: alert_groups alert_groups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_groups
    ADD CONSTRAINT alert_groups_pkey PRIMARY KEY (id);


--
-- Name: alert_notifications alert_notifications_dedupe_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_notifications
    ADD CONSTRAINT alert_notifications_dedupe_key_key UNIQUE (dedupe_key);


--
-- Name: alert_notifications alert_notifications_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_notifications
    ADD CONSTRAINT alert_notifications_pkey PRIMARY KEY (id);


--
-- Name: approval_requests approval_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.approval_requests
    ADD CONSTRAINT approval_requests_pkey PRIMARY KEY (id);


--
-- Name: approval_votes approval_votes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.approval_votes
    ADD CONSTRAINT approval_votes_pkey PRIMARY KEY (request_id, user_id);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: backups backups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.backups
    ADD CONSTRAINT backups_pkey PRIMARY KEY (id);


--
-- Name: claims claims_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.claims
    ADD CONSTRAINT claims_pkey PRIMARY KEY (key);


--
-- Name: job_runs job_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_runs
    ADD CONSTRAINT job_runs_pkey PRIMARY KEY (job_id, scheduled_for);


--
-- Name: kv kv_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kv
    ADD CONSTRAINT kv_pkey PRIMARY KEY (namespace, key);


--
-- Name: locks locks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.locks
    ADD CONSTRAINT locks_pkey PRIMARY KEY (name);


--
-- Name: message_refs message_refs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.message_refs
    ADD CONSTRAINT message_refs_pkey PRIMARY KEY (ref);


--
-- Name: outbox outbox_dedupe_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_dedupe_key_key UNIQUE (dedupe_key);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (id);


--
-- Name: ix_alert_groups_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alert_groups_status ON public.alert_groups USING btree (status, environment);


--
-- Name: ix_alert_notifications_pending; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alert_notifications_pending ON public.alert_notifications USING btree (state, id);


--
-- Name: ix_approval_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_approval_state ON public.approval_requests USING btree (state, expires_at);


--
-- Name: ix_audit_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_audit_at ON public.audit_log USING btree (at);


--
-- Name: ix_backups_env_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_backups_env_created ON public.backups USING btree (environment, created_at);


--
-- Name: ix_outbox_pending; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_outbox_pending ON public.outbox USING btree (state, channel, id);


--
-- PostgreSQL database dump complete
--


