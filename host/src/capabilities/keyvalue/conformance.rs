//! One suite, two stores: every case runs on SQLite and on PostgreSQL, and
//! asserts what a plugin would see (values, pages, refusals word for word).
//! The cases past the suite are PostgreSQL's own: several hosts on one
//! database, at once.

use std::sync::Arc;

use super::*;
use crate::store::postgres::Postgres;
use crate::store::postgres::testing::TestDatabase;

const SERVICE: &str = "kv";

fn quota(keys: u64, kb: u64) -> KeyValueQuota {
    KeyValueQuota {
        keys,
        bytes: kb * 1024,
    }
}

fn refused(sentence: &str) -> Result<(), Failure> {
    Err(Failure::Refused(sentence.to_owned()))
}

fn sqlite() -> KvStore {
    KvStore::Sqlite(SqliteKv::open(None).expect("an in-memory store"))
}

/// A store on a database of its own, kept while the store is.
async fn postgres() -> (KvStore, TestDatabase) {
    let database = TestDatabase::create().await;
    let store = host_on(&database, "a").await;
    (store, database)
}

/// One host's key-value store on `database`.
async fn host_on(database: &TestDatabase, host: &str) -> KvStore {
    let shared = Postgres::open(&database.settings(host))
        .await
        .expect("the shared store opens");
    KvStore::Postgres(PostgresKv::new(shared))
}

macro_rules! on_both_stores {
    ($($case:ident,)*) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::sqlite()).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _database) = super::postgres().await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

on_both_stores! {
    values_round_trip_as_bytes,
    keys_are_listed_in_byte_order_a_page_at_a_time,
    the_key_quota_refuses_new_keys_only,
    the_byte_quota_refuses_growth_only,
    services_never_see_each_others_keys,
    increments_start_from_zero_and_refuse_what_they_cannot_add,
    limits_are_the_same_everywhere,
}

async fn values_round_trip_as_bytes(store: &KvStore) {
    let roomy = KeyValueQuota::default();
    let every_byte: Vec<u8> = (0..=255).collect();
    for (key, value) in [
        ("bytes", every_byte.clone()),
        ("empty", Vec::new()),
        ("clé ✓", b"\x00\x00".to_vec()),
    ] {
        store
            .set(SERVICE, roomy, "b", key, &value)
            .await
            .expect("a set");
        assert_eq!(store.get(SERVICE, "b", key).await, Ok(Some(value)), "{key}");
        assert_eq!(store.exists(SERVICE, "b", key).await, Ok(true), "{key}");
    }
    assert_eq!(store.get(SERVICE, "b", "missing").await, Ok(None));
    assert_eq!(store.exists(SERVICE, "b", "missing").await, Ok(false));
    assert_eq!(store.get(SERVICE, "other", "bytes").await, Ok(None));

    store
        .set(SERVICE, roomy, "b", "bytes", b"shorter")
        .await
        .expect("an overwrite");
    assert_eq!(
        store.get(SERVICE, "b", "bytes").await,
        Ok(Some(b"shorter".to_vec()))
    );
    store.delete(SERVICE, "b", "bytes").await.expect("a delete");
    assert_eq!(store.get(SERVICE, "b", "bytes").await, Ok(None));
    store
        .delete(SERVICE, "b", "bytes")
        .await
        .expect("deleting a missing key is no error");
    assert_eq!(store.get(SERVICE, "b", "empty").await, Ok(Some(Vec::new())));
}

async fn keys_are_listed_in_byte_order_a_page_at_a_time(store: &KvStore) {
    let roomy = KeyValueQuota::default();
    let empty = store
        .list_keys(SERVICE, "b", None)
        .await
        .expect("an empty page");
    assert_eq!(
        empty,
        KeyPage {
            keys: Vec::new(),
            cursor: None
        }
    );

    // Byte order, not a language's: "B" < "a" < "b" < "é".
    for key in ["é", "b", "a", "B"] {
        store
            .set(SERVICE, roomy, "letters", key, b"1")
            .await
            .expect("a set");
    }
    let page = store
        .list_keys(SERVICE, "letters", None)
        .await
        .expect("a page");
    assert_eq!(page.keys, ["B", "a", "b", "é"]);
    assert_eq!(page.cursor, None);

    let mut expected: Vec<String> = (0..=PAGE).map(|n| format!("key-{n:05}")).collect();
    for key in &expected {
        store
            .set(SERVICE, roomy, "many", key, b"")
            .await
            .expect("a set");
    }
    store
        .set(SERVICE, roomy, "other", "key-00000", b"")
        .await
        .expect("a set in another bucket");
    let first = store
        .list_keys(SERVICE, "many", None)
        .await
        .expect("the first page");
    assert_eq!(first.keys.len() as u64, PAGE);
    assert_eq!(first.cursor, Some(PAGE));
    let second = store
        .list_keys(SERVICE, "many", first.cursor)
        .await
        .expect("the second page");
    assert_eq!(second.cursor, None);
    let listed: Vec<String> = first.keys.into_iter().chain(second.keys).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let past = store
        .list_keys(SERVICE, "many", Some(u64::MAX))
        .await
        .expect("a page past the end");
    assert_eq!(past.keys, Vec::<String>::new());
    assert_eq!(past.cursor, None);
}

async fn the_key_quota_refuses_new_keys_only(store: &KvStore) {
    let three = quota(3, 64);
    for key in ["k1", "k2", "k3"] {
        store
            .set(SERVICE, three, "b", key, b"v")
            .await
            .expect("within the quota");
    }
    let full = "service \"kv\" keeps 3 keys, its quota (max_keyvalue_keys = 3), so \"k4\" was not stored; delete keys it no longer needs, or ask the host's operator to raise max_keyvalue_keys";
    assert_eq!(
        store.set(SERVICE, three, "b", "k4", b"v").await,
        refused(full)
    );
    assert_eq!(
        store.increment(SERVICE, three, "b", "k4", 1).await,
        Err(Failure::Refused(full.to_owned()))
    );
    assert_eq!(store.get(SERVICE, "b", "k4").await, Ok(None));
    // A key the service keeps can always be written again.
    store
        .set(SERVICE, three, "b", "k1", b"longer value")
        .await
        .expect("an overwrite at the quota");

    // Past a quota that was lowered, deleting and shrinking still work.
    let one = quota(1, 64);
    store
        .set(SERVICE, one, "b", "k2", b"")
        .await
        .expect("shrinking past the quota");
    store
        .delete(SERVICE, "b", "k3")
        .await
        .expect("deleting past the quota");
    assert_eq!(
        store.set(SERVICE, one, "b", "k3", b"v").await,
        refused(
            "service \"kv\" keeps 2 keys, its quota (max_keyvalue_keys = 1), so \"k3\" was not stored; delete keys it no longer needs, or ask the host's operator to raise max_keyvalue_keys"
        )
    );
    store.delete(SERVICE, "b", "k2").await.expect("a delete");
    store
        .set(SERVICE, three, "b", "k4", b"v")
        .await
        .expect("room again");
}

async fn the_byte_quota_refuses_growth_only(store: &KvStore) {
    let two_kb = quota(100, 2);
    // Bucket "b" and key "big": 4 bytes besides the value.
    store
        .set(SERVICE, two_kb, "b", "big", &[7; 2044])
        .await
        .expect("exactly at the quota");
    assert_eq!(
        store.set(SERVICE, two_kb, "b", "k", b"").await,
        refused(
            "storing \"k\" would take service \"kv\" to 3 KiB of keys and values, past its quota of 2 KiB (max_keyvalue_kb), so it was not stored; delete or shrink what it no longer needs, or ask the host's operator to raise max_keyvalue_kb"
        )
    );
    assert_eq!(
        store.set(SERVICE, two_kb, "b", "big", &[7; 2045]).await,
        refused(
            "storing \"big\" would take service \"kv\" to 3 KiB of keys and values, past its quota of 2 KiB (max_keyvalue_kb), so it was not stored; delete or shrink what it no longer needs, or ask the host's operator to raise max_keyvalue_kb"
        )
    );
    assert_eq!(
        store.get(SERVICE, "b", "big").await,
        Ok(Some(vec![7; 2044]))
    );
    // The same size again, and smaller, always pass.
    store
        .set(SERVICE, two_kb, "b", "big", &[8; 2044])
        .await
        .expect("the same size");
    store
        .set(SERVICE, two_kb, "b", "big", &[9; 1000])
        .await
        .expect("shrinking");
    store
        .set(SERVICE, two_kb, "b", "k", &[1; 1000])
        .await
        .expect("room again");
    // Past a quota that was lowered, shrinking and deleting still work.
    let one_kb = quota(100, 1);
    store
        .set(SERVICE, one_kb, "b", "big", &[9; 10])
        .await
        .expect("shrinking past the quota");
    store
        .delete(SERVICE, "b", "k")
        .await
        .expect("deleting past the quota");
    store
        .set(SERVICE, one_kb, "b", "k", &[1; 100])
        .await
        .expect("within the lowered quota");
}

async fn services_never_see_each_others_keys(store: &KvStore) {
    let one = quota(1, 64);
    store
        .set("left", one, "b", "k", b"left's")
        .await
        .expect("left's set");
    store
        .set("right", one, "b", "k", b"right's")
        .await
        .expect("right's set, though left is at its quota");
    assert_eq!(
        store.get("left", "b", "k").await,
        Ok(Some(b"left's".to_vec()))
    );
    assert_eq!(
        store.get("right", "b", "k").await,
        Ok(Some(b"right's".to_vec()))
    );
    store.delete("left", "b", "k").await.expect("left's delete");
    assert_eq!(store.get("left", "b", "k").await, Ok(None));
    assert_eq!(
        store.get("right", "b", "k").await,
        Ok(Some(b"right's".to_vec()))
    );
    store
        .set("left", one, "b", "only-left", b"")
        .await
        .expect("left's room is its own");
    let right = store
        .list_keys("right", "b", None)
        .await
        .expect("right's keys");
    assert_eq!(right.keys, ["k"]);
    assert_eq!(
        store.increment("right", one, "b", "k", 1).await,
        Err(Failure::Refused(
            "the value of \"k\" is not a whole number; increment only keys that hold one".into()
        ))
    );
}

async fn increments_start_from_zero_and_refuse_what_they_cannot_add(store: &KvStore) {
    let roomy = KeyValueQuota::default();
    assert_eq!(store.increment(SERVICE, roomy, "b", "n", 5).await, Ok(5));
    assert_eq!(store.increment(SERVICE, roomy, "b", "n", 0).await, Ok(5));
    assert_eq!(store.increment(SERVICE, roomy, "b", "n", 37).await, Ok(42));
    assert_eq!(store.get(SERVICE, "b", "n").await, Ok(Some(b"42".to_vec())));

    store
        .set(SERVICE, roomy, "b", "word", b"forty")
        .await
        .expect("a set");
    assert_eq!(
        store.increment(SERVICE, roomy, "b", "word", 1).await,
        Err(Failure::Refused(
            "the value of \"word\" is not a whole number; increment only keys that hold one".into()
        ))
    );
    assert_eq!(
        store.get(SERVICE, "b", "word").await,
        Ok(Some(b"forty".to_vec()))
    );

    store
        .set(SERVICE, roomy, "b", "top", u64::MAX.to_string().as_bytes())
        .await
        .expect("a set");
    assert_eq!(
        store.increment(SERVICE, roomy, "b", "top", 1).await,
        Err(Failure::Refused(
            "incrementing \"top\" by 1 would overflow".into()
        ))
    );
    assert_eq!(
        store.increment(SERVICE, roomy, "b", "top", 0).await,
        Ok(u64::MAX)
    );
    assert_eq!(
        store.increment(SERVICE, roomy, "b", "n", u64::MAX).await,
        Err(Failure::Refused(
            "incrementing \"n\" by 18446744073709551615 would overflow".into()
        ))
    );
    assert_eq!(store.get(SERVICE, "b", "n").await, Ok(Some(b"42".to_vec())));

    // Growing a number's digits counts against the byte quota too: the pad
    // and "d" = 9 fill 1 KiB exactly ("b" and "pad" are 4 bytes, "b", "d"
    // and "9" are 3), and "10" is one byte more.
    let (other, tiny) = ("tiny", quota(10, 1));
    store
        .set(other, tiny, "b", "pad", &[0; 1024 - 4 - 3])
        .await
        .expect("the pad");
    assert_eq!(store.increment(other, tiny, "b", "d", 9).await, Ok(9));
    assert_eq!(
        store.increment(other, tiny, "b", "d", 1).await,
        Err(Failure::Refused(
            "storing \"d\" would take service \"tiny\" to 2 KiB of keys and values, past its quota of 1 KiB (max_keyvalue_kb), so it was not stored; delete or shrink what it no longer needs, or ask the host's operator to raise max_keyvalue_kb".into()
        ))
    );
    assert_eq!(store.get(other, "b", "d").await, Ok(Some(b"9".to_vec())));
}

async fn limits_are_the_same_everywhere(store: &KvStore) {
    let roomy = KeyValueQuota::default();
    let long_key = "k".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(
        store.set(SERVICE, roomy, "b", &long_key, b"").await,
        refused("a key of 1025 bytes is longer than the 1024 this host keeps; use a shorter one")
    );
    assert_eq!(
        store.increment(SERVICE, roomy, "b", &long_key, 1).await,
        Err(Failure::Refused(
            "a key of 1025 bytes is longer than the 1024 this host keeps; use a shorter one".into()
        ))
    );
    store
        .set(SERVICE, roomy, "b", &"k".repeat(MAX_KEY_BYTES), b"")
        .await
        .expect("the longest key");
    assert_eq!(
        store
            .set(SERVICE, roomy, "b", "k", &vec![0; MAX_VALUE_BYTES + 1])
            .await,
        refused(
            "a value of 1025 KiB is larger than the 1024 KiB this host keeps; store less under one key"
        )
    );
    store
        .set(SERVICE, roomy, "b", "k", &vec![1; MAX_VALUE_BYTES])
        .await
        .expect("the largest value");
    assert_eq!(
        store.set(SERVICE, roomy, "b", "nul\0", b"").await,
        refused(
            "the key \"nul\\0\" holds a NUL character, which the store cannot keep; use another key"
        )
    );
    assert_eq!(store.get(SERVICE, "b", "nul\0").await, Ok(None));
    assert_eq!(store.exists(SERVICE, "b", "nul\0").await, Ok(false));
    assert_eq!(store.delete(SERVICE, "b", "nul\0").await, Ok(()));
    assert_eq!(
        store::check_bucket(&"b".repeat(MAX_BUCKET_BYTES + 1)),
        Err(
            "a bucket name of 257 bytes is longer than the 256 this host keeps; use a shorter one"
                .into()
        )
    );
    assert_eq!(
        store::check_bucket("b\0"),
        Err("a bucket name may not hold a NUL character, which the store cannot keep; use another name".into())
    );
    assert_eq!(store::check_bucket(&"b".repeat(MAX_BUCKET_BYTES)), Ok(()));
}

/// Runs `tasks` tasks at once, half on each of two hosts of one database,
/// each doing `work(host, task)`.
async fn on_two_hosts<T, F, Fut>(tasks: usize, work: F) -> (TestDatabase, Vec<T>)
where
    T: Send + 'static,
    F: Fn(Arc<KvStore>, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let database = TestDatabase::create().await;
    let hosts = [
        Arc::new(host_on(&database, "a").await),
        Arc::new(host_on(&database, "b").await),
    ];
    let running: Vec<_> = (0..tasks)
        .map(|task| tokio::spawn(work(hosts[task % 2].clone(), task)))
        .collect();
    let mut done = Vec::new();
    for task in running {
        done.push(task.await.expect("a task"));
    }
    (database, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_incrementing_one_key_at_once_lose_no_update() {
    let (database, done) = on_two_hosts(8, |store, _| async move {
        for _ in 0..50 {
            store
                .increment(SERVICE, KeyValueQuota::default(), "b", "n", 1)
                .await
                .expect("an increment");
        }
    })
    .await;
    assert_eq!(done.len(), 8);
    let store = host_on(&database, "c").await;
    assert_eq!(
        store.get(SERVICE, "b", "n").await,
        Ok(Some(b"400".to_vec()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_writing_at_once_never_pass_the_key_quota() {
    let ten = quota(10, 64);
    let (database, done) = on_two_hosts(8, move |store, task| async move {
        let mut stored = 0;
        for n in 0..5 {
            match store
                .set(SERVICE, ten, "b", &format!("{task}-{n}"), b"v")
                .await
            {
                Ok(()) => stored += 1,
                Err(Failure::Refused(why)) => {
                    assert!(why.contains("max_keyvalue_keys = 10"), "{why}")
                }
                Err(Failure::Unavailable) => panic!("the store failed"),
            }
        }
        stored
    })
    .await;
    assert_eq!(done.iter().sum::<i32>(), 10);
    let store = host_on(&database, "c").await;
    let page = store.list_keys(SERVICE, "b", None).await.expect("a page");
    assert_eq!(page.keys.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_writing_at_once_never_pass_the_byte_quota() {
    // Each key takes 1 + 3 + 200 bytes: 20 fit in 4 KiB, not 21.
    let four_kb = quota(1000, 4);
    let (database, done) = on_two_hosts(8, move |store, task| async move {
        let mut stored = 0;
        for n in 0..5 {
            match store
                .set(SERVICE, four_kb, "b", &format!("{task}-{n}"), &[0; 200])
                .await
            {
                Ok(()) => stored += 1,
                Err(Failure::Refused(why)) => {
                    assert!(why.contains("max_keyvalue_kb"), "{why}")
                }
                Err(Failure::Unavailable) => panic!("the store failed"),
            }
        }
        stored
    })
    .await;
    assert_eq!(done.iter().sum::<i32>(), 20);
    let store = host_on(&database, "c").await;
    let page = store.list_keys(SERVICE, "b", None).await.expect("a page");
    assert_eq!(page.keys.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_setting_deleting_and_incrementing_at_once_never_deadlock() {
    let (_database, done) = on_two_hosts(8, |store, task| async move {
        let roomy = KeyValueQuota::default();
        // Mostly writes, so a delete mostly finds its key: it then locks the
        // key's row, and its service's row, while writes lock both too.
        for n in 0..100 {
            let key = format!("k{}", n % 2);
            let result = match (task * 7 + n) % 4 {
                0 | 1 => store.set(SERVICE, roomy, "b", &key, b"1").await,
                2 => store
                    .increment(SERVICE, roomy, "b", &key, 1)
                    .await
                    .map(drop),
                _ => store.delete(SERVICE, "b", &key).await,
            };
            assert_eq!(result, Ok(()), "task {task}, step {n}");
        }
    })
    .await;
    assert_eq!(done.len(), 8);
}

#[tokio::test]
async fn buckets_and_keys_compare_byte_by_byte_whatever_the_server_s_locale() {
    // The suite's byte-order case cannot tell on a server whose locale is
    // C already; the columns' own collation says it for every server.
    let database = TestDatabase::create().await;
    let shared = Postgres::open(&database.settings("a"))
        .await
        .expect("the shared store opens");
    let client = shared.client().await.expect("a connection");
    let rows = client
        .query(
            "SELECT column_name::text, collation_name::text FROM information_schema.columns
             WHERE table_schema = 'orizuru' AND table_name = 'kv' AND column_name IN ('bucket', 'key')
             ORDER BY column_name",
            &[],
        )
        .await
        .expect("the columns");
    let collations: Vec<(String, Option<String>)> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(
        collations,
        [
            ("bucket".to_owned(), Some("C".to_owned())),
            ("key".to_owned(), Some("C".to_owned()))
        ]
    );
}

#[tokio::test]
async fn an_unreachable_store_fails_as_the_host_s_store() {
    let settings = crate::store::StoreSettings {
        url: crate::setting::Secret::new("postgres://nobody@127.0.0.1:1/none".to_owned()),
        url_from: "url_env = \"X\"".into(),
        pool_size: 1,
        host_id: "test".into(),
    };
    let store = KvStore::Postgres(PostgresKv::new(
        Postgres::pool(&settings).expect("a pool, connecting lazily"),
    ));
    assert_eq!(
        store.get(SERVICE, "b", "k").await,
        Err(Failure::Unavailable)
    );
    assert_eq!(
        store
            .set(SERVICE, KeyValueQuota::default(), "b", "k", b"v")
            .await,
        Err(Failure::Unavailable)
    );
    let Error::Other(said) = Error::from(Failure::Unavailable) else {
        panic!("an unavailable store is the host's failure");
    };
    assert_eq!(said, "the host's key-value store failed; try again");
}
