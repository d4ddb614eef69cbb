//! The S3 test server is the real protocol: buckets, objects and listings round-trip,
//! signature checking can be switched on, and a stopped server stops answering.

use taskreg_test_support::S3Server;

#[test]
fn objects_put_into_a_bucket_are_listed_and_read_back() {
    let server = S3Server::start();
    assert_eq!(server.request("PUT", "/tasks", &[], b"").0, 200, "create the bucket");
    let metadata = br#"{"name":"weather-api","version":"1.0.0"}"#;
    let (status, _) = server.request(
        "PUT",
        "/tasks/team/weather-api/metadata.json",
        &[("x-amz-acl", "public-read")],
        metadata,
    );
    assert_eq!(status, 200, "put an object");

    let (status, listing) = server.request("GET", "/tasks?list-type=2&prefix=team/", &[], b"");
    assert_eq!(status, 200);
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        listing.contains("<Key>team/weather-api/metadata.json</Key>"),
        "{listing}"
    );
    let (status, body) = server.request("GET", "/tasks/team/weather-api/metadata.json", &[], b"");
    assert_eq!((status, body.as_slice()), (200, metadata.as_slice()));
}

#[test]
fn the_request_log_shows_every_request_answered_in_order() {
    let server = S3Server::start();
    server.request("PUT", "/tasks", &[], b"");
    server.request("GET", "/tasks?list-type=2", &[], b"");
    server.request("GET", "/tasks/missing.json", &[], b"");
    let logged: Vec<(String, String, u16)> = server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.target, r.status))
        .collect();
    assert_eq!(
        logged,
        [
            ("PUT".to_owned(), "/tasks".to_owned(), 200),
            ("GET".to_owned(), "/tasks?list-type=2".to_owned(), 200),
            ("GET".to_owned(), "/tasks/missing.json".to_owned(), 404),
        ]
    );
    // Asking again adds nothing but what was sent in between.
    server.request("GET", "/tasks?list-type=2", &[], b"");
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn with_signature_checking_an_unknown_key_is_refused() {
    // moto checks signatures once this many requests have passed; an unknown key is then
    // refused as S3 refuses it. (An unsigned request makes moto fail with a 500 instead.)
    let server = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let authorization = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261203/us-east-1/s3/aws4_request, \
                         SignedHeaders=host;x-amz-date, Signature=0000";
    let (status, body) = server.request(
        "PUT",
        "/tasks",
        &[
            ("Authorization", authorization),
            ("x-amz-date", "20261203T064800Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ],
        b"",
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>InvalidAccessKeyId</Code>"), "{body}");
}

#[test]
fn a_stopped_server_no_longer_answers() {
    let mut server = S3Server::start();
    let address = server.address();
    server.stop();
    assert!(std::net::TcpStream::connect(address).is_err());
}
