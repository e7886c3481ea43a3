use super::*;

/// The single span `text` holds, as (type, matched text).
fn only(text: &str) -> (PiiType, &str) {
    let spans = detect(text);
    assert_eq!(spans.len(), 1, "{text:?}: {spans:?}");
    (spans[0].kind, &text[spans[0].start..spans[0].end])
}

fn assert_found(kind: PiiType, items: &[&str]) {
    for item in items {
        let sentence = format!("see {item} here");
        assert_eq!(only(&sentence), (kind, *item), "{sentence:?}");
        assert_eq!(only(item), (kind, *item), "{item:?} alone");
    }
}

#[test]
fn finds_emails() {
    assert_found(
        PiiType::Email,
        &[
            "john.doe@example.com",
            "a+tag@sub.domain.co.uk",
            "X_Y-z@mail-server.org",
        ],
    );
    assert_eq!(
        only("Mail me: bob@example.org."),
        (PiiType::Email, "bob@example.org")
    );
}

#[test]
fn finds_phone_numbers() {
    assert_found(
        PiiType::Phone,
        &[
            "+1 (555) 123-4567",
            "+44 20 7946 0958",
            "+14155552671",
            "+49 30 1234567",
            "+33 6 12 34 56 78",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "555 123 4567",
            "1-800-555-0199",
            "020 7946 0958",
            "06 12 34 56 78",
            "(030) 1234567",
            "07700 900123",
            "0044 20 7946 0958",
        ],
    );
    // A trailing group after a space is not swallowed.
    assert_eq!(
        only("call 555-123-4567 2 times"),
        (PiiType::Phone, "555-123-4567")
    );
}

#[test]
fn finds_card_numbers() {
    assert_found(
        PiiType::CreditCard,
        &[
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "5500 0000 0000 0004",
            "2223003122003222",
            "3782 822463 10005",
            "6011111111111117",
            "3530111333300000",
        ],
    );
}

#[test]
fn finds_ibans() {
    assert_found(
        PiiType::Iban,
        &[
            "DE89 3704 0044 0532 0130 00",
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91ABNA0417164300",
        ],
    );
}

#[test]
fn finds_ip_addresses() {
    assert_found(
        PiiType::IpAddress,
        &[
            "192.168.1.1",
            "8.8.8.8",
            "10.0.0.255",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8::1",
            "::1",
            "fe80::1ff:fe23:4567:890a",
            "::ffff:192.0.2.128",
        ],
    );
    assert_eq!(only("Ping 8.8.4.4."), (PiiType::IpAddress, "8.8.4.4"));
    assert_eq!(
        only("host 2001:db8::1."),
        (PiiType::IpAddress, "2001:db8::1")
    );
}

#[test]
fn finds_ssns() {
    assert_found(PiiType::Ssn, &["123-45-6789", "078-05-1120", "665-01-0001"]);
}

#[test]
fn finds_urls_with_credentials() {
    assert_found(
        PiiType::UrlCredentials,
        &[
            "https://user:pass@example.com",
            "postgres://admin:s3cr3t@db.example.com:5432",
            "ftp://anon:p%40ss@10.0.0.5",
            "redis://default:hunter2@[::1]:6379",
        ],
    );
    assert_eq!(
        redact("db: postgres://admin:s3cr3t@db.example.com:5432/app?x=1").text,
        "db: [URL_CREDENTIALS]/app?x=1"
    );
}

#[test]
fn finds_secrets() {
    let pem =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1b2c3d4\n-----END RSA PRIVATE KEY-----";
    assert_found(
        PiiType::Secret,
        &[
            "sk-proj-abc123DEF456ghi789JKL012mno345",
            "sk-4f9Q2mZ8xL1vB7nR3tY6wK0pH5jD9sA2cE8gU4iO1qW7zX3v",
            "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
            "gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "AKIAIOSFODNN7EXAMPLE",
            "xoxb-1234567890-abcdefghijkl",
            "AIzaSyD-1234567890abcdefghijklmnopqrstu",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            pem,
        ],
    );
    // After an assignment only the value is secret.
    for (text, value) in [
        (
            "api_key=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        ),
        (
            r#"{"token": "Zx8Qw2Lm9Tr4Yp6Kd1Vb"}"#,
            "Zx8Qw2Lm9Tr4Yp6Kd1Vb",
        ),
        (
            "export OPENAI_API_KEY = 'a1B2c3D4e5F6g7H8i9J0'",
            "a1B2c3D4e5F6g7H8i9J0",
        ),
        (
            "client_secret: 3f786850e387550fdab836ed7e6dc881de23001b.",
            "3f786850e387550fdab836ed7e6dc881de23001b",
        ),
    ] {
        assert_eq!(only(text), (PiiType::Secret, value), "{text:?}");
    }
    // A key block cut off before its END line runs to the end of the text.
    let cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
    assert_eq!(only(cut), (PiiType::Secret, cut));
}

/// Look like PII to a careless pattern, and are not.
const GOLDEN_NEGATIVES: &[&str] = &[
    "2024-01-15",
    "15/01/2024",
    "01.02.2024",
    "2023/12/31",
    "2024-01-15T10:30:00Z",
    "31.12.2023 23:59",
    "05.11.2023 14:00",
    "10:30",
    "23:59:59",
    "v1.2.3",
    "10.0.19041.1",
    "1.2.3-beta.1",
    "3.0.0.1-SNAPSHOT",
    "version 2.14.0",
    "Order #123456789",
    "INV-2024-000123",
    "ISBN 978-3-16-148410-0",
    "ISBN 0-306-40615-2",
    "978-0-596-52068-7",
    "12345",
    "PO 4500012345",
    "ref 0012345678901",
    "tracking 1Z999AA10123456784",
    "call 555-1234",
    "123-456-7890",
    "1-2-3-4",
    "pages 123-456",
    "3.14159",
    "$1,234.56",
    "€ 99.99",
    "1,000,000",
    "1e-10 and 0x7fffffff",
    "4111 1111 1111 1112",
    "1234 5678 9012 3456",
    "4111 1111-1111 1111",
    "DE89 3704 0044 0532 0130 01",
    "GB82WEST12345698765433",
    "XX89370400440532013000",
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "123-00-4567",
    "123-45-0000",
    "256.1.1.1",
    "192.168.1.300",
    "1.2.3.4.5",
    "192.168.01.1",
    "12:30:45:67:89",
    "00:1A:2B:3C:4D:5E",
    "std::vec::Vec",
    "Foo::bar() and add::bad",
    "https://example.com/path?q=1&user=me",
    "http://localhost:8080/a@b",
    "ftp://files.example.org/pub",
    "mailto:someone",
    "https://user@example.com/docs",
    "user@localhost",
    "name@domain",
    "icon@2x.png",
    "@username",
    "550e8400-e29b-41d4-a716-446655440000",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sk-learn is a library",
    "sk-this-is-not-a-real-key-at-all",
    "token: your-token-here",
    "api_key=YOUR_API_KEY_HERE",
    "the secret is out",
    "password: hunter2",
    "AKIA is a prefix",
    "ratio 16:9, room 101, 5 pm",
    "-----BEGIN PUBLIC KEY-----",
];

#[test]
fn golden_negatives_have_no_detections() {
    assert!(GOLDEN_NEGATIVES.len() >= 40);
    for text in GOLDEN_NEGATIVES {
        assert_eq!(detect(text), [], "{text:?}");
    }
}

#[test]
fn redaction_replaces_each_span_with_its_placeholder() {
    let text = "Contact jane.doe@example.com or +1 (555) 123-4567; card 4111 1111 1111 1111, \
                IBAN DE89 3704 0044 0532 0130 00, server 10.0.0.1, SSN 078-05-1120, \
                key sk-proj-abc123DEF456ghi789JKL012mno345.";
    let redaction = redact(text);
    assert_eq!(
        redaction.text,
        "Contact [EMAIL] or [PHONE]; card [CREDIT_CARD], IBAN [IBAN], server [IP_ADDRESS], \
         SSN [SSN], key [SECRET]."
    );
    assert_eq!(redaction.counts.total(), 7);
    for kind in PiiType::ALL {
        let expected = usize::from(kind != PiiType::UrlCredentials);
        assert_eq!(redaction.counts.get(kind), expected, "{kind:?}");
    }
    assert_eq!(redact("nothing here").text, "nothing here");
}

#[test]
fn the_longest_overlapping_span_wins() {
    // The password part looks like an email address, inside the URL.
    let spans = detect("https://bob:pw@mail.example.com");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].kind, PiiType::UrlCredentials);
    // An assigned value that is also a prefixed key counts once.
    assert_eq!(
        only("token=ghp_1234567890abcdefghijklmnopqrstuvwxyz").0,
        PiiType::Secret
    );
}

#[test]
fn odd_input_does_not_panic() {
    let huge = "a@b.co 1.2.3.4 +1 555 ".repeat(20_000);
    let texts = [
        "",
        "@",
        "://",
        "+",
        "(",
        "::",
        ":::",
        "-----BEGIN ",
        "é@é.é ünïcödé 🙂 +١٢٣",
        "api_key=",
        "xoxb-",
        "DE89",
        huge.as_str(),
    ];
    for text in texts {
        let redaction = redact(text);
        assert!(redaction.text.len() <= text.len() + 20 * redaction.counts.total());
    }
}
