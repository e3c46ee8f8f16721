//! Wire format against byte sequences computed by hand from the D-Bus
//! specification, malformed input, and a real dbus-daemon.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::connection::*;
use super::message::*;
use super::value::*;
use super::*;
use crate::sys;

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn bytes(values: &[Value]) -> Vec<u8> {
    marshal(values).unwrap().0
}

fn s(v: &str) -> Value {
    Value::str(v)
}

#[test]
fn basic_types() {
    assert_eq!(bytes(&[Value::Byte(0x12)]), [0x12]);
    assert_eq!(bytes(&[Value::Bool(true)]), [1, 0, 0, 0]);
    assert_eq!(bytes(&[Value::I16(-2)]), [0xfe, 0xff]);
    assert_eq!(bytes(&[Value::U16(0x1234)]), [0x34, 0x12]);
    assert_eq!(bytes(&[Value::I32(-1)]), [0xff; 4]);
    assert_eq!(bytes(&[Value::U32(0x0102_0304)]), [4, 3, 2, 1]);
    assert_eq!(
        bytes(&[Value::I64(-2)]),
        [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
    );
    assert_eq!(bytes(&[Value::U64(0x0102_0304_0506_0708)]), [8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(bytes(&[Value::Double(1.0)]), [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
    assert_eq!(bytes(&[s("foo")]), [3, 0, 0, 0, b'f', b'o', b'o', 0]);
    assert_eq!(bytes(&[Value::path("/a")]), [2, 0, 0, 0, b'/', b'a', 0]);
    assert_eq!(bytes(&[Value::Signature("sv".into())]), [2, b's', b'v', 0]);
}

#[test]
fn alignment_between_values() {
    assert_eq!(bytes(&[Value::Byte(1), Value::I16(2)]), [1, 0, 2, 0]);
    assert_eq!(bytes(&[Value::Byte(1), Value::U32(2)]), [1, 0, 0, 0, 2, 0, 0, 0]);
    let b = bytes(&[Value::Byte(1), Value::U64(2)]);
    assert_eq!(b, [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    // A signature and a byte need no alignment.
    assert_eq!(
        bytes(&[Value::Byte(1), Value::Signature("".into()), Value::Byte(2)]),
        [1, 0, 0, 2]
    );
}

#[test]
fn variant_holding_u64_pads_to_8() {
    let b = bytes(&[Value::variant(Value::U64(7))]);
    assert_eq!(b, [1, b't', 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn array_of_string_variant_structs() {
    let v = Value::array("(sv)", vec![Value::Struct(vec![s("a"), Value::variant(Value::U64(5))])]);
    assert_eq!(v.signature(), "a(sv)");
    let mut e = Vec::new();
    e.extend(le32(24)); // elements from offset 8 to 32
    e.extend([0; 4]); // to the struct's 8-alignment
    e.extend(le32(1));
    e.extend(b"a\0");
    e.extend(b"\x01t\0");
    e.extend([0; 7]); // offset 17 to 24
    e.extend(5u64.to_le_bytes());
    assert_eq!(bytes(&[v]), e);
}

#[test]
fn empty_arrays_keep_their_element_padding() {
    // Length, then padding to the (absent) first element's alignment.
    assert_eq!(bytes(&[Value::array("t", vec![])]), [0; 8]);
    assert_eq!(bytes(&[Value::array("(ss)", vec![])]), [0; 8]);
    assert_eq!(bytes(&[Value::array("u", vec![])]), [0; 4]);
    let b = bytes(&[s(""), Value::array("t", vec![])]);
    assert_eq!(b.len(), 16, "{b:?}");
    assert_eq!(b, [0; 16]);
    assert_eq!(Value::array("(sv)", vec![]).signature(), "a(sv)");
}

#[test]
fn nested_structs_and_dicts() {
    let v = Value::Struct(vec![Value::Byte(1), Value::Struct(vec![Value::U32(2)])]);
    assert_eq!(v.signature(), "(y(u))");
    assert_eq!(bytes(&[v]), [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);

    let d = Value::array(
        "{sy}",
        vec![Value::DictEntry(Box::new(s("k")), Box::new(Value::Byte(9)))],
    );
    assert_eq!(d.signature(), "a{sy}");
    let mut e = Vec::new();
    e.extend(le32(7));
    e.extend([0; 4]);
    e.extend(le32(1));
    e.extend(b"k\0");
    e.push(9);
    assert_eq!(bytes(&[d]), e);
}

#[test]
fn start_transient_unit_body() {
    let body = [
        s("xrun-abc.scope"),
        s("replace"),
        Value::array(
            "(sv)",
            vec![
                Value::Struct(vec![s("Delegate"), Value::variant(Value::Bool(true))]),
                Value::Struct(vec![s("PIDs"), Value::variant(Value::array("u", vec![Value::U32(42)]))]),
            ],
        ),
        Value::array("(sa(sv))", vec![]),
    ];
    let (b, sig) = marshal(&body).unwrap();
    assert_eq!(sig, "ssa(sv)a(sa(sv))");
    let mut e = Vec::new();
    e.extend(le32(14));
    e.extend(b"xrun-abc.scope\0");
    e.push(0); // 19 -> 20
    e.extend(le32(7));
    e.extend(b"replace\0"); // ends at 32
    e.extend(le32(48)); // elements from 40 to 88
    e.extend([0; 4]);
    e.extend(le32(8));
    e.extend(b"Delegate\0");
    e.extend(b"\x01b\0");
    e.extend(le32(1)); // 56..60
    e.extend([0; 4]); // next struct at 64
    e.extend(le32(4));
    e.extend(b"PIDs\0");
    e.extend(b"\x02au\0"); // 73..77
    e.extend([0; 3]);
    e.extend(le32(4));
    e.extend(le32(42)); // ends at 88
    e.extend(le32(0)); // the empty aux array
    e.extend([0; 4]); // padded to its struct elements' 8-alignment
    assert_eq!(b.len(), 96);
    assert_eq!(b, e);
    assert_eq!(unmarshal(&b, &sig, false).unwrap(), body);
}

#[test]
fn round_trips() {
    let values = vec![
        Value::Byte(255),
        Value::Bool(false),
        Value::I16(i16::MIN),
        Value::U16(u16::MAX),
        Value::I32(i32::MIN),
        Value::U32(u32::MAX),
        Value::I64(i64::MIN),
        Value::U64(u64::MAX),
        Value::Double(-0.5),
        s("héllo"),
        Value::path("/org/freedesktop/systemd1/unit/xrun_2dabc_2escope"),
        Value::Signature("a{sv}(tt)".into()),
        Value::array("s", vec![s("a"), s(""), s("ccc")]),
        Value::array(
            "a(tt)",
            vec![
                Value::array("(tt)", vec![]),
                Value::array("(tt)", vec![Value::Struct(vec![Value::U64(1), Value::U64(2)])]),
            ],
        ),
        Value::array(
            "{sv}",
            vec![
                Value::DictEntry(Box::new(s("x")), Box::new(Value::variant(Value::Byte(1)))),
                Value::DictEntry(Box::new(s("y")), Box::new(Value::variant(Value::array("y", vec![])))),
            ],
        ),
        Value::variant(Value::variant(Value::Struct(vec![Value::Byte(3), Value::Double(2.5)]))),
    ];
    let (b, sig) = marshal(&values).unwrap();
    assert_eq!(unmarshal(&b, &sig, false).unwrap(), values);
}

#[test]
fn accessors() {
    assert_eq!(s("x").as_str(), Some("x"));
    assert_eq!(Value::path("/").as_str(), Some("/"));
    assert_eq!(Value::U32(3).as_u64(), Some(3));
    assert_eq!(Value::I32(-3).as_i64(), Some(-3));
    assert_eq!(Value::I32(-3).as_u64(), None);
    assert_eq!(Value::Bool(true).as_bool(), Some(true));
    let v = Value::variant(Value::variant(Value::U64(9)));
    assert_eq!(v.unwrap_variant(), &Value::U64(9));
    assert_eq!(
        Value::array("u", vec![Value::U32(1)]).as_slice(),
        Some(&[Value::U32(1)][..])
    );
}

#[test]
fn big_endian_input() {
    assert_eq!(unmarshal(&[0, 0, 0, 5], "u", true).unwrap(), [Value::U32(5)]);
    assert_eq!(unmarshal(&[0, 0, 0, 1, b'x', 0], "s", true).unwrap(), [s("x")]);
}

#[test]
fn bad_values_are_refused_when_marshalling() {
    let mixed = Value::array("s", vec![s("a"), Value::U32(1)]);
    assert!(marshal(&[mixed])
        .unwrap_err()
        .to_string()
        .contains("holds a value of type \"u\""));
    assert!(marshal(&[s("a\0b")]).is_err());
    assert!(marshal(&[Value::path("no/slash")]).is_err());
    assert!(marshal(&[Value::path("/trailing/")]).is_err());
    assert!(marshal(&[Value::DictEntry(Box::new(s("k")), Box::new(s("v")))]).is_err());
    assert!(marshal(&[Value::Struct(vec![])]).is_err());
    assert!(marshal(&[Value::array("", vec![])]).is_err());
}

#[test]
fn signatures() {
    for good in ["", "y", "a{sv}", "a(sa(sv))", "(i(ii))", "aav", "a{oa{sv}}"] {
        validate_signature(good).unwrap();
    }
    for bad in ["a", "(", "()", "(i", "{sv}", "a{vs}", "a{s}", "a{sss}", "h", "z", "i)"] {
        let err = validate_signature(bad).unwrap_err();
        assert!(format!("{err:#}").contains("bad D-Bus signature"), "{bad}: {err:#}");
    }
    assert!(validate_signature(&format!("{}i", "a".repeat(70))).is_err());
    assert!(validate_signature(&"y".repeat(256)).is_err());
}

#[test]
fn malformed_values_are_errors() {
    let cases: &[(&[u8], &str)] = &[
        (&[1, 0, 0], "u"),                       // truncated
        (&[2, 0, 0, 0], "b"),                    // boolean 2
        (&[3, 0, 0, 0, b'a', b'b'], "s"),        // truncated string
        (&[1, 0, 0, 0, b'a', b'b'], "s"),        // no NUL
        (&[1, 0, 0, 0, 0xff, 0], "s"),           // not UTF-8
        (&[2, 0, 0, 0, b'a', 0, 0], "s"),        // NUL inside
        (&[1, 0, 0, 0, b'a', 0], "o"),           // not an object path
        (&[8, 0, 0, 0, 1, 0, 0, 0], "au"),       // array longer than the data
        (&[6, 0, 0, 0, 1, 0, 0, 0, 2, 0], "au"), // array length cuts an element
        (&[0, 0, 0, 0xff], "au"),                // array length over the limit
        (&[0, 0, 0, 0], "at"),                   // padding after the length missing
        (&[2, b's', b's', 0], "v"),              // variant of two types
        (&[1, b'h', 0, 0], "v"),                 // unix fd
        (&[1, b'{', 0], "v"),                    // incomplete signature
        (&[5, 0, 0, 0, 0], "u"),                 // trailing bytes
    ];
    for (buf, sig) in cases {
        assert!(unmarshal(buf, sig, false).is_err(), "{sig} {buf:?}");
    }
    // Variants nested without end: an error, not a stack overflow.
    let deep: Vec<u8> = b"\x01v\0".repeat(1000);
    assert!(format!("{:#}", unmarshal(&deep, "v", false).unwrap_err()).contains("nested too deeply"));
}

/// The Hello call, serial 1, as computed by hand.
fn hello_bytes() -> Vec<u8> {
    let mut e = vec![b'l', 1, 0, 1];
    e.extend(le32(0)); // body
    e.extend(le32(1)); // serial
    e.extend(le32(109)); // fields: 16..125
    let field = |e: &mut Vec<u8>, code: u8, sig: u8, text: &str| {
        while e.len() % 8 != 0 {
            e.push(0);
        }
        e.extend([code, 1, sig, 0]);
        e.extend(le32(text.len() as u32));
        e.extend(text.as_bytes());
        e.push(0);
    };
    field(&mut e, 1, b'o', "/org/freedesktop/DBus");
    field(&mut e, 2, b's', "org.freedesktop.DBus");
    field(&mut e, 3, b's', "Hello");
    field(&mut e, 6, b's', "org.freedesktop.DBus");
    assert_eq!(e.len(), 125);
    e.extend([0; 3]);
    e
}

fn hello() -> Message {
    let dbus = "org.freedesktop.DBus";
    Message {
        serial: 1,
        ..Message::method_call(dbus, "/org/freedesktop/DBus", dbus, "Hello", vec![])
    }
}

#[test]
fn header_encoding_and_parsing() {
    let b = hello().encode().unwrap();
    assert_eq!(b, hello_bytes());
    assert_eq!(Message::wire_len(&b[..16]).unwrap(), 128);
    let m = Message::decode(&b).unwrap();
    assert_eq!(m, hello());
    assert_eq!(m.kind(), MessageType::MethodCall);
    assert_eq!(m.member(), Some("Hello"));

    let mut sig = Message::signal("/org/x", "org.x.I", "Changed", vec![s("a"), Value::U64(1)]);
    sig.serial = 9;
    sig.sender = Some(":1.7".into());
    assert_eq!(Message::decode(&sig.encode().unwrap()).unwrap(), sig);

    let mut err = Message::error(&hello(), "org.x.Error.Bad", "went wrong");
    err.serial = 2;
    let decoded = Message::decode(&err.encode().unwrap()).unwrap();
    assert_eq!(
        (decoded.kind(), decoded.reply_serial(), decoded.error_name()),
        (MessageType::Error, Some(1), Some("org.x.Error.Bad"))
    );
    assert_eq!(decoded.body(), [s("went wrong")]);
}

#[test]
fn big_endian_message() {
    let mut e = vec![b'B', 2, 0, 1];
    e.extend(4u32.to_be_bytes()); // body
    e.extend(7u32.to_be_bytes()); // serial
    e.extend(15u32.to_be_bytes()); // fields: 16..31
    e.extend([5, 1, b'u', 0]);
    e.extend(3u32.to_be_bytes()); // REPLY_SERIAL 3
    e.extend([8, 1, b'g', 0, 1, b'u', 0]); // SIGNATURE "u"
    e.push(0); // header padded to 32
    e.extend(0x0102_0304u32.to_be_bytes());
    let m = Message::decode(&e).unwrap();
    assert_eq!(
        (m.kind(), m.serial(), m.reply_serial()),
        (MessageType::MethodReturn, 7, Some(3))
    );
    assert_eq!(m.body(), [Value::U32(0x0102_0304)]);
}

#[test]
fn malformed_messages_are_errors() {
    let good = {
        let mut m = Message::signal("/a", "a.b", "C", vec![s("x"), Value::array("(sv)", vec![])]);
        m.serial = 3;
        m.encode().unwrap()
    };
    // Every truncation.
    for len in 0..good.len() {
        assert!(Message::decode(&good[..len]).is_err(), "truncated to {len}");
    }
    // Every byte changed to a few values: errors or other messages, never a panic.
    for at in 0..good.len() {
        for v in [0, 1, 0x7f, 0x80, 0xff] {
            let mut b = good.clone();
            b[at] = v;
            let _ = Message::decode(&b);
        }
    }
    let with = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        Message::decode(&b)
    };
    assert!(with(0, b"x").is_err(), "endianness");
    assert!(with(3, &[2]).is_err(), "version");
    assert!(with(4, &le32(1000)).is_err(), "body length");
    assert!(with(8, &le32(0)).is_err(), "serial 0");
    assert!(with(12, &le32(u32::MAX)).is_err(), "field array length");
    assert!(Message::wire_len(b"l\x01\x00\x01").is_err());

    // A signal without MEMBER, a return without REPLY_SERIAL, a body
    // without signature, a field of the wrong type.
    let mut m = Message::signal("/a", "a.b", "C", vec![]);
    m.serial = 1;
    m.member = None;
    assert!(format!("{:#}", Message::decode(&m.encode().unwrap()).unwrap_err()).contains("MEMBER"));
    let mut r = Message::method_return(&hello(), vec![]);
    r.serial = 1;
    r.reply_serial = None;
    assert!(Message::decode(&r.encode().unwrap()).is_err());
    r.reply_serial = Some(1);
    let mut b = r.encode().unwrap();
    Message::decode(&b).unwrap();
    b[4..8].copy_from_slice(&le32(4));
    b.extend([0; 4]);
    assert!(Message::decode(&b).is_err());
    let mut w = Writer::default();
    w.buf.extend([b'l', 4, 0, 1]);
    w.put(4, &le32(0));
    w.put(4, &le32(1));
    let path_as_string = Value::Struct(vec![Value::Byte(1), Value::variant(s("/a"))]);
    w.value(&Value::array("(yv)", vec![path_as_string])).unwrap();
    w.pad(8);
    assert!(format!("{:#}", Message::decode(&w.buf).unwrap_err()).contains("wrong type"));
}

#[test]
fn addresses() {
    let t = targets("unix:path=/run/x%20y,guid=0123").unwrap();
    assert!(matches!(&t[..], [Target::Path(p)] if p == "/run/x y"));
    let t = targets("tcp:host=h,port=1;unix:abstract=/tmp/dbus-Q;unix:path=/b").unwrap();
    assert!(matches!(&t[..], [Target::Abstract(a), Target::Path(p)] if a == "/tmp/dbus-Q" && p == "/b"));
    assert!(targets("tcp:host=h,port=1").is_err());
    assert!(targets("unix:path=/a%2").is_err());
    assert!(targets("unix:tmpdir=/tmp").is_err());
    assert_eq!(escape("/run/user/0/bus"), "/run/user/0/bus");
    assert_eq!(unescape(&escape("/a b,c;d=%")).unwrap(), "/a b,c;d=%");
}

#[test]
fn connect_errors_name_the_address() {
    let err = Connection::connect("unix:path=/nonexistent/xrun-bus").err().unwrap();
    assert_eq!(
        format!("{err:#}"),
        "connect to D-Bus at /nonexistent/xrun-bus: no such file or directory"
    );
    let err = Connection::connect("unix:abstract=xrun-no-such-bus").err().unwrap();
    assert_eq!(
        format!("{err:#}"),
        "connect to D-Bus at @xrun-no-such-bus: connection refused"
    );
    let err = Connection::connect("tcp:host=localhost,port=1").err().unwrap();
    assert!(format!("{err:#}").contains("no usable unix:path= or unix:abstract= entry"));
}

/// A private dbus-daemon in a temporary directory, killed (by PID) and
/// removed on drop.
pub(crate) struct TestBus {
    child: Child,
    dir: PathBuf,
    /// The unix:path= address (the daemon also listens on an abstract one).
    pub address: String,
    pub abstract_address: String,
}

impl TestBus {
    pub(crate) fn start() -> TestBus {
        static N: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "xrun-dbus-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        let address = format!("unix:path={}/bus", dir.display());
        let abstract_address = format!("unix:abstract={id}");
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{address}</listen>
  <listen>{abstract_address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#
        );
        let conf = dir.join("bus.conf");
        std::fs::write(&conf, config).unwrap();
        let spawned = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                panic!("cannot run dbus-daemon ({e}): install Debian's dbus-daemon package; these tests need it");
            }
        };
        let mut bus = TestBus {
            child,
            dir,
            address,
            abstract_address,
        };
        // The daemon prints its address once it listens.
        let mut line = String::new();
        let stdout = bus.child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        if !line.contains("unix:") {
            let stderr = std::fs::read_to_string(bus.dir.join("stderr")).unwrap_or_default();
            panic!("dbus-daemon did not start: printed {line:?}, stderr {stderr:?}");
        }
        bus
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn bus_calls_and_error_replies() {
    let bus = TestBus::start();
    let mut conn = Connection::connect(&bus.address).unwrap();
    let me = conn.unique_name().unwrap().to_string();
    assert!(me.starts_with(":1."), "{me}");

    let dbus = ["org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus"];
    let call = |conn: &mut Connection, member: &str, args: &[Value]| conn.call(dbus[0], dbus[1], dbus[2], member, args);
    let id = call(&mut conn, "GetId", &[]).unwrap();
    assert!(
        matches!(&id[..], [Value::Str(id)] if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        "{id:?}"
    );

    let names = call(&mut conn, "ListNames", &[]).unwrap();
    let Some(Value::Array(element, names)) = names.first() else {
        panic!("{names:?}")
    };
    assert_eq!(element, "s");
    assert!(
        names.contains(&s("org.freedesktop.DBus")) && names.contains(&s(&me)),
        "{names:?}"
    );

    let err = call(&mut conn, "NoSuchMethod", &[]).unwrap_err();
    assert_eq!(error_name(&err), Some("org.freedesktop.DBus.Error.UnknownMethod"));
    let dbus_err = err.downcast_ref::<DbusError>().unwrap();
    assert!(!dbus_err.message.is_empty());
    assert_eq!(
        err.to_string(),
        format!("org.freedesktop.DBus.Error.UnknownMethod: {}", dbus_err.message)
    );
    // Wrapped with context, the name is still found.
    assert_eq!(
        error_name(&err.context("outer")),
        Some("org.freedesktop.DBus.Error.UnknownMethod")
    );

    // Wrong argument type: an error reply, and the connection carries on.
    let err = call(&mut conn, "GetNameOwner", &[Value::U32(1)]).unwrap_err();
    assert_eq!(
        error_name(&err),
        Some("org.freedesktop.DBus.Error.InvalidArgs"),
        "{err:#}"
    );
    let owner = call(&mut conn, "GetNameOwner", &[s("org.freedesktop.DBus")]).unwrap();
    assert_eq!(owner, [s("org.freedesktop.DBus")]);

    // The abstract socket of the same daemon.
    let mut other = Connection::connect(&bus.abstract_address).unwrap();
    assert_ne!(other.unique_name(), Some(me.as_str()));
    assert_eq!(call(&mut other, "GetId", &[]).unwrap(), id);
}

#[test]
fn bus_signals_are_matched_and_queued() {
    let bus = TestBus::start();
    let mut a = Connection::connect(&bus.address).unwrap();
    a.add_match("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'")
        .unwrap();

    let mut b = Connection::connect(&bus.address).unwrap();
    let b_name = b.unique_name().unwrap().to_string();
    let owner_changed = |name: &str| {
        let name = name.to_string();
        move |m: &Message| m.member() == Some("NameOwnerChanged") && m.body().first() == Some(&Value::Str(name.clone()))
    };
    let m = a.wait_signal(Duration::from_secs(5), owner_changed(&b_name)).unwrap();
    assert_eq!(m.sender(), Some("org.freedesktop.DBus"));
    assert_eq!(m.path(), Some("/org/freedesktop/DBus"));
    assert_eq!(m.interface(), Some("org.freedesktop.DBus"));
    assert_eq!(m.body(), [s(&b_name), s(""), s(&b_name)]);

    // b takes a name; its NameOwnerChanged reaches a before the reply to
    // a's next call, so that call queues it; then wait_signal finds it
    // without reading the socket (zero timeout).
    let dbus = "org.freedesktop.DBus";
    let reply = b.call(
        dbus,
        "/org/freedesktop/DBus",
        dbus,
        "RequestName",
        &[s("org.xrun.Test"), Value::U32(0)],
    );
    assert_eq!(reply.unwrap(), [Value::U32(1)]); // primary owner
    a.call(dbus, "/org/freedesktop/DBus", dbus, "GetId", &[]).unwrap();
    let m = a.wait_signal(Duration::ZERO, owner_changed("org.xrun.Test")).unwrap();
    assert_eq!(m.body(), [s("org.xrun.Test"), s(""), s(&b_name)]);

    // Nothing more comes: a timeout error.
    let err = a
        .wait_signal(Duration::from_millis(200), owner_changed("org.xrun.None"))
        .unwrap_err();
    assert!(err.to_string().contains("timed out waiting for D-Bus at"), "{err:#}");
    // And the connection still works after the timeout.
    a.call(dbus, "/org/freedesktop/DBus", dbus, "GetId", &[]).unwrap();
}

#[test]
fn bus_closed_under_a_call_is_an_error() {
    let mut bus = TestBus::start();
    let mut conn = Connection::connect(&bus.address).unwrap();
    bus.child.kill().unwrap();
    bus.child.wait().unwrap();
    let dbus = "org.freedesktop.DBus";
    let err = conn
        .call(dbus, "/org/freedesktop/DBus", dbus, "GetId", &[])
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.starts_with("call org.freedesktop.DBus.GetId on D-Bus: "), "{text}");
    assert!(
        text.contains("closed the connection") || text.contains("broken pipe"),
        "{text}"
    );
}

/// A peer that rejects our uid, as a bus does when we are in a user
/// namespace, then accepts EXTERNAL without an identity (if `accept`).
/// Returns the lines it received.
fn rejecting_peer(accept: bool) -> (std::path::PathBuf, std::thread::JoinHandle<Vec<String>>) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("xrun-dbus-auth-{}-{n}", std::process::id()));
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut lines = Vec::new();
        for line in BufReader::new(stream).split(b'\n') {
            let line = String::from_utf8(line.unwrap())
                .unwrap()
                .trim_end_matches('\r')
                .to_string();
            let answer = match line.trim_start_matches('\0') {
                l if l.starts_with("AUTH EXTERNAL ") => "REJECTED EXTERNAL\r\n",
                "AUTH EXTERNAL" if accept => "DATA\r\n",
                "AUTH EXTERNAL" => "REJECTED EXTERNAL\r\n",
                "DATA" => "OK 0123456789abcdef0123456789abcdef\r\n",
                _ => "",
            };
            lines.push(line.clone());
            std::io::Write::write_all(&mut out, answer.as_bytes()).unwrap();
            if line == "BEGIN" || (line == "AUTH EXTERNAL" && !accept) {
                break;
            }
        }
        lines
    });
    (path, server)
}

#[test]
fn auth_falls_back_to_the_identity_the_socket_shows() {
    let (path, server) = rejecting_peer(true);
    let conn = Connection::connect_peer(&format!("unix:path={}", path.display()));
    let lines = server.join().unwrap();
    let _ = std::fs::remove_file(&path);
    conn.unwrap();
    let uid_hex: String = sys::geteuid().to_string().bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        lines,
        [
            format!("\0AUTH EXTERNAL {uid_hex}"),
            "AUTH EXTERNAL".into(),
            "DATA".into(),
            "BEGIN".into()
        ]
    );

    let (path, server) = rejecting_peer(false);
    let err = Connection::connect_peer(&format!("unix:path={}", path.display()))
        .err()
        .unwrap();
    server.join().unwrap();
    let _ = std::fs::remove_file(&path);
    let want = format!(
        "authenticate to D-Bus at {}: server answered \"REJECTED EXTERNAL\"",
        path.display()
    );
    assert_eq!(format!("{err:#}"), want);
}
