CREATE TABLE IF NOT EXISTS dossier_state_local ON CLUSTER '__CLUSTER__'
(
    `dossier_id` String,
    `agency_code` LowCardinality(String),
    `procedure_code` String,
    `channel` UInt8,
    `service_level` LowCardinality(String),
    `has_received` UInt8,
    `received_at_ms` Int64,
    `due_at_ms` Int64,
    `due_effective_ms` Int64,
    `has_fee` UInt8,
    `has_end` UInt8,
    `end_at_ms` Int64,
    `paused_ms` Int64,
    `supplement_count` UInt16,
    `late_forced` UInt8,
    `last_status` UInt8,
    `paid` UInt8,
    `paid_online` UInt8,
    `rated` UInt8,
    `satisfied` UInt8,
    `apology_count` UInt16,
    `digitized_on_receipt` UInt8 DEFAULT 0,
    `reused_digitized_data` UInt8 DEFAULT 0,
    `citizen_data_used` UInt8 DEFAULT 0,
    `synced` UInt8 DEFAULT 0,
    `result_issued` UInt8 DEFAULT 0,
    `result_electronic` UInt8 DEFAULT 0,
    `result_shared` UInt8 DEFAULT 0,
    `event_count` UInt32,
    `events_blob` String CODEC(ZSTD(1)),
    `is_deleted` UInt8 DEFAULT 0,
    `place_day` Int32 MATERIALIZED if(has_received = 1, intDiv(received_at_ms + 25200000, 86400000), -1),
    `place_span` Int32 MATERIALIZED if(place_day < 0, place_day, intDiv(place_day, 128)),
    INDEX dossier_id_lookup dossier_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/dossier_state_local', '{replica}', event_count, is_deleted)
ORDER BY (place_span, agency_code, place_day, dossier_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS dossier_state ON CLUSTER '__CLUSTER__' AS dossier_state_local ENGINE = Distributed('__CLUSTER__', currentDatabase(), dossier_state_local, cityHash64(dossier_id));

CREATE TABLE IF NOT EXISTS document_state_local ON CLUSTER '__CLUSTER__'
(
    `document_id` String,
    `agency_code` LowCardinality(String),
    `sent` UInt8,
    `sent_at_ms` Int64,
    `received` UInt8,
    `received_at_ms` Int64,
    `classified` UInt8,
    `electronic` UInt8,
    `business_type` UInt8,
    `has_due` UInt8,
    `due_at_ms` Int64,
    `signed` UInt8,
    `personal_signature` UInt8,
    `agency_signature` UInt8,
    `completed` UInt8,
    `completed_at_ms` Int64,
    `last_status` LowCardinality(String),
    `recalled` UInt8,
    `event_count` UInt32,
    `events_blob` String CODEC(ZSTD(1)),
    `is_deleted` UInt8 DEFAULT 0,
    `place_day` Int32 MATERIALIZED multiIf((sent = 1) AND (received = 1) AND (intDiv(sent_at_ms + 25200000, 86400000) != intDiv(received_at_ms + 25200000, 86400000)), -2, sent = 1, intDiv(sent_at_ms + 25200000, 86400000), received = 1, intDiv(received_at_ms + 25200000, 86400000), -1),
    `place_span` Int32 MATERIALIZED if(place_day < 0, place_day, intDiv(place_day, 128)),
    INDEX document_id_lookup document_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX recalled_skip recalled TYPE minmax GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/document_state_local', '{replica}', event_count, is_deleted)
ORDER BY (place_span, agency_code, place_day, document_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS document_state ON CLUSTER '__CLUSTER__' AS document_state_local ENGINE = Distributed('__CLUSTER__', currentDatabase(), document_state_local, cityHash64(document_id));

CREATE TABLE IF NOT EXISTS petition_state_local ON CLUSTER '__CLUSTER__'
(
    `petition_id` String,
    `agency_code` LowCardinality(String),
    `has_received` UInt8,
    `received_at_ms` Int64,
    `due_at_ms` Int64,
    `answered` UInt8,
    `answered_at_ms` Int64,
    `rated` UInt8,
    `satisfied` UInt8,
    `event_count` UInt32,
    `events_blob` String CODEC(ZSTD(1)),
    `is_deleted` UInt8 DEFAULT 0,
    `place_day` Int32 MATERIALIZED if(has_received = 1, intDiv(received_at_ms + 25200000, 86400000), -1),
    `place_span` Int32 MATERIALIZED if(place_day < 0, place_day, intDiv(place_day, 128)),
    INDEX petition_id_lookup petition_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/petition_state_local', '{replica}', event_count, is_deleted)
ORDER BY (place_span, agency_code, place_day, petition_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS petition_state ON CLUSTER '__CLUSTER__' AS petition_state_local ENGINE = Distributed('__CLUSTER__', currentDatabase(), petition_state_local, cityHash64(petition_id));

CREATE TABLE IF NOT EXISTS publication_state_local ON CLUSTER '__CLUSTER__'
(
    `publication_id` String,
    `agency_code` LowCardinality(String),
    `procedure_code` String,
    `change` LowCardinality(String),
    `has_decided` UInt8,
    `decided_at_ms` Int64,
    `due_at_ms` Int64,
    `published` UInt8,
    `published_at_ms` Int64,
    `event_count` UInt32,
    `events_blob` String CODEC(ZSTD(1)),
    `is_deleted` UInt8 DEFAULT 0,
    `place_day` Int32 MATERIALIZED if(has_decided = 1, intDiv(decided_at_ms + 25200000, 86400000), -1),
    `place_span` Int32 MATERIALIZED if(place_day < 0, place_day, intDiv(place_day, 128)),
    INDEX publication_id_lookup publication_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/publication_state_local', '{replica}', event_count, is_deleted)
ORDER BY (place_span, agency_code, place_day, publication_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS publication_state ON CLUSTER '__CLUSTER__' AS publication_state_local ENGINE = Distributed('__CLUSTER__', currentDatabase(), publication_state_local, cityHash64(publication_id));

CREATE TABLE IF NOT EXISTS procedure_state_local ON CLUSTER '__CLUSTER__'
(
    `procedure_id` String,
    `agency_code` LowCardinality(String),
    `versions_from_ms` Array(Int64),
    `versions_flags` Array(UInt8),
    `event_count` UInt32,
    `events_blob` String CODEC(ZSTD(1)),
    `is_deleted` UInt8 DEFAULT 0,
    `place_day` Int32 MATERIALIZED toInt32(-1),
    `place_span` Int32 MATERIALIZED if(place_day < 0, place_day, intDiv(place_day, 128)),
    INDEX procedure_id_lookup procedure_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/procedure_state_local', '{replica}', event_count, is_deleted)
ORDER BY (place_span, agency_code, place_day, procedure_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS procedure_state ON CLUSTER '__CLUSTER__' AS procedure_state_local ENGINE = Distributed('__CLUSTER__', currentDatabase(), procedure_state_local, cityHash64(procedure_id));

CREATE TABLE IF NOT EXISTS day_measures_local ON CLUSTER '__CLUSTER__'
(
    `agency_code` LowCardinality(String),
    `day` Int32,
    `dirty` UInt8,
    `counts` Map(String, UInt64),
    `sets` Map(String, Array(String)),
    `steps` Map(String, Tuple(
        Array(Int64),
        Array(UInt64))),
    `version` Int64 DEFAULT toUnixTimestamp64Micro(now64(6))
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/day_measures_local', '{replica}', version)
ORDER BY (agency_code, day)
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS day_measures ON CLUSTER '__CLUSTER__' AS day_measures_local ENGINE = Distributed('__CLUSTER__', currentDatabase(), day_measures_local, cityHash64(agency_code));

CREATE TABLE IF NOT EXISTS activity_minute_local ON CLUSTER '__CLUSTER__'
(
    `minute_ms` Int64,
    `agency_code` LowCardinality(String),
    `event_type` LowCardinality(String),
    `events` Int64,
    `last_ingested_ms` SimpleAggregateFunction(max, Int64)
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/activity_minute_local', '{replica}')
ORDER BY (minute_ms, agency_code, event_type)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS activity_minute ON CLUSTER '__CLUSTER__' AS activity_minute_local ENGINE = Distributed('__CLUSTER__', currentDatabase(), activity_minute_local, rand());

CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER '__CLUSTER__'
(
    `version` UInt32,
    `description` String,
    `applied_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{replica}')
ORDER BY version
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS day_measure_definitions ON CLUSTER '__CLUSTER__'
(
    `fingerprint` String,
    `applied_at` DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/day_measure_definitions', '{replica}')
ORDER BY applied_at
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS alert_state ON CLUSTER '__CLUSTER__'
(
    `rule` String,
    `agency_code` String,
    `firing` UInt8,
    `since_ms` Int64,
    `alert` String,
    `owed` Array(Tuple(
        String,
        String)),
    `version` Int64 DEFAULT toUnixTimestamp64Micro(now64(6))
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/alert_state', '{replica}', version)
ORDER BY (rule, agency_code)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS alert_index_samples ON CLUSTER '__CLUSTER__'
(
    `agency_code` String,
    `at_ms` Int64,
    `fraction` Float64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/alert_index_samples', '{replica}')
ORDER BY (at_ms, agency_code)
SETTINGS index_granularity = 8192;

INSERT INTO schema_migrations (version, description) SELECT number + 1, 'cluster schema' FROM numbers(12) WHERE number + 1 NOT IN (SELECT version FROM schema_migrations);
