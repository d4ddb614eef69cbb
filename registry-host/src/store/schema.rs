//! Diesel's view of `migrations/`. Kept in step with the SQL by hand (diesel_cli is not
//! part of the build); `store_tests` exercises every column on both backends, so a drift
//! fails there.

diesel::table! {
    sources (name) {
        name -> Text,
        kind -> Text,
        location -> Text,
        first_seen -> BigInt,
        last_scan_at -> Nullable<BigInt>,
        last_status -> Nullable<Text>,
    }
}

diesel::table! {
    tasks (name) {
        name -> Text,
        uuid -> Text,
        first_seen -> BigInt,
    }
}

diesel::table! {
    task_versions (name, version) {
        name -> Text,
        version -> Text,
        digest -> Text,
        uuid -> Text,
        metadata -> Text,
        script -> Text,
        input_schema -> Nullable<Text>,
        output_schema -> Nullable<Text>,
        tests -> Text,
        available -> Bool,
        first_seen -> BigInt,
        last_seen -> BigInt,
        missing_since -> Nullable<BigInt>,
        content_updated_at -> BigInt,
        published_files -> Nullable<Text>,
    }
}

diesel::table! {
    version_signatures (name, version) {
        name -> Text,
        version -> Text,
        signature -> Text,
        signer_key_id -> Nullable<Text>,
        verified_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    origins (source, locator) {
        source -> Text,
        locator -> Text,
        fingerprint -> Text,
        name -> Text,
        version -> Text,
        digest -> Text,
        first_seen -> BigInt,
        last_seen -> BigInt,
        signer_key_id -> Nullable<Text>,
        judged_under -> Text,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> Text,
        started_at -> BigInt,
        finished_at -> BigInt,
        status -> Text,
        added -> Integer,
        updated -> Integer,
        unchanged -> Integer,
        missing -> Integer,
        revived -> Integer,
        invalid -> Integer,
        conflicts -> Integer,
        sources -> Text,
    }
}

diesel::table! {
    problems (source, locator, seq) {
        source -> Text,
        locator -> Text,
        seq -> Integer,
        severity -> Text,
        code -> Text,
        message -> Text,
        file -> Nullable<Text>,
        pointer -> Nullable<Text>,
        first_seen -> BigInt,
        line -> Nullable<Integer>,
        col -> Nullable<Integer>,
        fingerprint -> Nullable<Text>,
    }
}

diesel::table! {
    conflicts (name, version) {
        name -> Text,
        version -> Text,
        strategy -> Text,
        kept_digest -> Nullable<Text>,
        detail -> Text,
        first_seen -> BigInt,
        last_seen -> BigInt,
    }
}

diesel::table! {
    replaced_contents (name, version, digest) {
        name -> Text,
        version -> Text,
        digest -> Text,
        replaced_at -> BigInt,
    }
}

diesel::table! {
    catalogue_state (id) {
        id -> Integer,
        generation -> BigInt,
    }
}

diesel::table! {
    source_status (name) {
        name -> Text,
        kind -> Text,
        location -> Text,
        scanned_at -> BigInt,
        status -> Text,
        complete -> Bool,
        rescanned -> Nullable<Text>,
        duration_ms -> BigInt,
        tasks -> BigInt,
        error -> Nullable<Text>,
        last_ok_at -> Nullable<BigInt>,
        failures -> BigInt,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    watchers (host) {
        host -> Text,
        pid -> BigInt,
        started_at -> BigInt,
        updated_at -> BigInt,
        cache_hits -> BigInt,
        cache_misses -> BigInt,
        cache_entries -> BigInt,
    }
}

diesel::table! {
    processes (process_id, role) {
        process_id -> Text,
        role -> Text,
        host -> Text,
        pid -> BigInt,
        started_at -> BigInt,
        updated_at -> BigInt,
        cache_hits -> BigInt,
        cache_misses -> BigInt,
        cache_entries -> BigInt,
    }
}

diesel::table! {
    source_states (name) {
        name -> Text,
        state -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    catalogue_events (generation) {
        generation -> BigInt,
        process_id -> Nullable<Text>,
        written_at -> BigInt,
        events -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    catalogue_events,
    processes,
    source_states,
    replaced_contents,
    sources,
    tasks,
    task_versions,
    version_signatures,
    origins,
    sync_runs,
    problems,
    conflicts,
    catalogue_state,
    source_status,
    watchers
);
