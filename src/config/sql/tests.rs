use super::*;

fn names(query: &str, backend: SqlBackend) -> Vec<String> {
    scan(query, backend)
        .unwrap()
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(n) => Some(n.to_owned()),
            Piece::Sql(_) => None,
        })
        .collect()
}

#[test]
fn placeholders_are_found_and_the_text_around_them_is_kept_as_written() {
    let q = "SELECT * FROM c WHERE phone IN (:phone_e164, :phone_raw) OR mobile = :phone_e164";
    let pieces = scan(q, SqlBackend::Postgres).unwrap();
    assert_eq!(
        pieces,
        [
            Piece::Sql("SELECT * FROM c WHERE phone IN ("),
            Piece::Placeholder("phone_e164"),
            Piece::Sql(", "),
            Piece::Placeholder("phone_raw"),
            Piece::Sql(") OR mobile = "),
            Piece::Placeholder("phone_e164"),
        ]
    );
}

#[test]
fn colons_inside_literals_identifiers_comments_and_casts_are_not_placeholders() {
    let q = "SELECT ':not', \"a:b\", x::text, $$:dollar$$, $t$ :tagged $t$ -- :comment\n\
             /* :block */ FROM c WHERE e = :email::text AND y = 'it''s :quoted'";
    assert_eq!(names(q, SqlBackend::Postgres), ["email"]);
    let q = "SELECT `a:b`, 'it\\'s :quoted', @v := 1 # :comment\nFROM c WHERE e = :email";
    assert_eq!(names(q, SqlBackend::MySql), ["email"]);
    let q = "SELECT [a], ':x' FROM c WHERE e = :email -- :y";
    assert_eq!(names(q, SqlBackend::Sqlite), ["email"]);
}

#[test]
fn a_backslash_ends_a_postgresql_literal_but_escapes_a_quote_in_mysql() {
    // PostgreSQL: '\' is a whole literal, so :email is outside it.
    assert_eq!(
        names("SELECT '\\' , :email", SqlBackend::Postgres),
        ["email"]
    );
    // MySQL: '\' opens a literal that is not closed.
    assert_eq!(
        scan("SELECT '\\' , :email", SqlBackend::MySql),
        Err(ScanError::Unterminated)
    );
}

#[test]
fn positional_parameters_and_unclosed_quotes_are_refused() {
    assert_eq!(
        scan("SELECT * FROM c WHERE e = ?", SqlBackend::MySql),
        Err(ScanError::Positional)
    );
    assert_eq!(
        scan("SELECT * FROM c WHERE e = $1", SqlBackend::Postgres),
        Err(ScanError::Positional)
    );
    assert_eq!(
        scan("SELECT * FROM c WHERE e = @e", SqlBackend::Sqlite),
        Err(ScanError::Positional)
    );
    assert!(
        names(
            "SELECT doc ? 'k' FROM c WHERE e = :email",
            SqlBackend::Postgres
        ) == ["email"]
    );
    for q in [
        "SELECT 'open",
        "SELECT \"open",
        "SELECT /* open",
        "SELECT $a$ open",
    ] {
        assert_eq!(
            scan(q, SqlBackend::Postgres),
            Err(ScanError::Unterminated),
            "{q}"
        );
    }
}

#[test]
fn each_key_kind_has_its_own_placeholders() {
    assert_eq!(placeholders_of(KeyKind::Email), ["email"]);
    assert_eq!(placeholders_of(KeyKind::CustomerId), ["customer_id"]);
    let phone = placeholders_of(KeyKind::Phone);
    assert!(phone.contains(&"phone_e164".to_owned()));
    assert!(phone.contains(&"phone_raw".to_owned()));
    assert_eq!(
        notation_of("phone_national_digits"),
        Some(Notation::NationalDigits)
    );
    assert_eq!(notation_of("phone"), None);
}

#[test]
fn the_backend_is_the_urls_scheme() {
    assert_eq!(
        SqlBackend::of_url("postgres://u@h/db"),
        Some(SqlBackend::Postgres)
    );
    assert_eq!(
        SqlBackend::of_url("postgresql://h/db"),
        Some(SqlBackend::Postgres)
    );
    assert_eq!(
        SqlBackend::of_url("mariadb://root@h/test"),
        Some(SqlBackend::MySql)
    );
    assert_eq!(
        SqlBackend::of_url("sqlite://cache.db?mode=ro"),
        Some(SqlBackend::Sqlite)
    );
    assert_eq!(SqlBackend::of_url("oracle://h"), None);
    assert_eq!(SqlBackend::of_url(""), None);
}

fn load_sql(pairs: &[(&str, &str)]) -> Result<crate::config::Settings, ConfigError> {
    let mut all = vec![
        ("ATTRSYNC_CRM__ADAPTER", "sql"),
        ("ATTRSYNC_CRM__SQL__URL", "sqlite://customers.db"),
    ];
    all.extend_from_slice(pairs);
    super::super::load::tests::load(&all)
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    load_sql(pairs).unwrap_err().to_string()
}

#[test]
fn a_valid_sql_section_loads_and_its_url_is_redacted() {
    let s = load_sql(&[(
        "ATTRSYNC_CRM__SQL__QUERIES__PHONE",
        "SELECT * FROM c WHERE phone IN (:phone_e164, :phone_raw)",
    )])
    .unwrap();
    assert_eq!(s.crm.sql.backend(), Some(SqlBackend::Sqlite));
    assert!(!s.redacted_toml().contains("customers.db"));
}

#[test]
fn sql_errors_name_the_key_at_fault() {
    let phone = "ATTRSYNC_CRM__SQL__QUERIES__PHONE";
    let err = error_of(&[("ATTRSYNC_CRM__SQL__URL", "oracle://db")]);
    assert!(err.contains("crm.sql.url"), "{err}");
    let err = error_of(&[]);
    assert!(err.contains("crm.sql.queries"), "{err}");
    let err = error_of(&[(phone, "SELECT * FROM c WHERE phone = :email")]);
    assert!(
        err.contains("crm.sql.queries.phone") && err.contains(":email"),
        "{err}"
    );
    let err = error_of(&[(phone, "SELECT * FROM c")]);
    assert!(
        err.contains("crm.sql.queries.phone") && err.contains("every row"),
        "{err}"
    );
    let err = error_of(&[(phone, "SELECT * FROM c WHERE phone = ?")]);
    assert!(err.contains("crm.sql.queries.phone"), "{err}");
    let err = error_of(&[
        (phone, "SELECT * FROM c WHERE phone = :phone_e164"),
        ("ATTRSYNC_CRM__SQL__PHONE_COLUMNS", ""),
    ]);
    assert!(err.contains("crm.sql.phone_columns"), "{err}");
    let err = error_of(&[
        (phone, "SELECT * FROM c WHERE phone = :phone_e164"),
        ("ATTRSYNC_CRM__SQL__MAX_CONNECTIONS", "0"),
    ]);
    assert!(err.contains("crm.sql.max_connections"), "{err}");
}
