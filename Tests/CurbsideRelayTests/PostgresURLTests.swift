import Testing

@testable import CurbsideRelay

@Suite("postgres:// URLs")
struct PostgresURLTests {
    /// A primary and its standby, each with its port, options checked, description equal to the input.
    @Test func hostListWithPortsAndOptions() throws {
        let text = "postgres://curbside@db1.example:5432,db2.example:5433/relay?target_session_attrs=read-write"
        let url = try PostgresURL(parsing: text)
        #expect(url.hosts == [.init(host: "db1.example", port: 5432), .init(host: "db2.example", port: 5433)])
        #expect(url.user == "curbside")
        #expect(url.password == nil)
        #expect(url.database == "relay")
        #expect(url.options == ["target_session_attrs": "read-write"])
        #expect(url.description == text)
    }

    @Test(arguments: [
        ("postgresql://u@h/d", PostgresURL.Host(host: "h", port: 5432)),
        ("postgres://u@[::1]:6543/d", PostgresURL.Host(host: "::1", port: 6543)),
        ("postgres://u@[2001:db8::7]/d", PostgresURL.Host(host: "2001:db8::7", port: 5432)),
        ("postgres://u@127.0.0.1:15432/d", PostgresURL.Host(host: "127.0.0.1", port: 15432)),
        ("postgres://u@%2Ftmp%2Fpg:5444/d", PostgresURL.Host(host: "/tmp/pg", port: 5444)),
    ])
    func oneHost(text: String, host: PostgresURL.Host) throws {
        let url = try PostgresURL(parsing: text)
        #expect(url.hosts == [host])
        #expect(try PostgresURL(parsing: url.description) == url, "the description parses back to the same URL")
    }

    /// libpq's form for a Unix socket: the directory percent-encoded where the host goes.
    @Test func unixSocketDirectory() throws {
        let url = try PostgresURL(parsing: "postgres://relay@%2Fvar%2Frun%2Fpostgresql/curbside")
        #expect(url.hosts[0].unixSocketPath == "/var/run/postgresql/.s.PGSQL.5432")
        #expect(try PostgresURL(parsing: "postgres://relay@db/curbside").hosts[0].unixSocketPath == nil)
    }

    /// A password in the URL is decoded for the store and redacted everywhere it could be printed.
    @Test func passwordIsDecodedAndNeverPrinted() throws {
        let url = try PostgresURL(parsing: "postgres://relay:s%40cret%23@db:5432/curbside")
        #expect(url.password == "s@cret#")
        #expect(url.description == "postgres://relay:<redacted>@db:5432/curbside")
        #expect(!String(reflecting: url).contains("cret"))
        #expect(!"\(RelayDatabaseSetting.postgres(url))".contains("cret"))
    }

    @Test(arguments: [
        ("mysql://u@h/d", "must start with postgres:// or postgresql://"),
        ("postgres://h/d", "names no user; write postgres://USER@HOST/DATABASE"),
        ("postgres://u@h", "names no database; add /DATABASE after the hosts"),
        ("postgres://u@h/", "names no database; add /DATABASE after the hosts"),
        ("postgres://u@/d", "names no host"),
        ("postgres://u@h1,,h2/d", "host 2 is empty"),
        ("postgres://u@h:0/d", "host 1 (h) has port \"0\"; expected 1 to 65535"),
        ("postgres://u@h1,h2:99999/d", "host 2 (h2) has port \"99999\"; expected 1 to 65535"),
        ("postgres://u@[::1/d", "host 1 has no closing ]"),
        (
            "postgres://u@h_1 x/d",
            "host 1 \"h_1 x\" is not a host name or address (IPv6 goes in brackets, a socket directory as %2F…)"
        ),
        (
            "postgres://u@h/d?sslmode=maybe",
            "option sslmode is \"maybe\"; expected one of allow, disable, prefer, require, verify-ca, verify-full"
        ),
        (
            "postgres://u@h/d?pool=3",
            "unknown option \"pool\"; known: application_name, connect_timeout, sslmode, sslrootcert, target_session_attrs"
        ),
        ("postgres://u@h/d?sslmode=require&sslmode=disable", "option sslmode is given twice"),
        ("postgres://u@h/d?connect_timeout=soon", "option connect_timeout is \"soon\"; expected whole seconds"),
        ("postgres://u@h/d#x", "has a fragment (#…); write # as %23"),
        ("postgres://u:p%zz@h/d", "the password has a malformed %-escape"),
    ])
    func malformed(text: String, message: String) {
        #expect(throws: PostgresURLError(message)) { try PostgresURL(parsing: text) }
    }

    /// However malformed the rest, an error never repeats the password.
    @Test func errorsNeverQuoteThePassword() {
        for text in ["postgres://u:hunter2@h:0/d", "postgres://u:hunter2@h/d?bad=1", "postgres://u:hunter2@h"] {
            let error = #expect(throws: PostgresURLError.self) { try PostgresURL(parsing: text) }
            #expect(error.map { !$0.message.contains("hunter2") } == true, "\(text)")
        }
    }
}
