use super::*;

const INFO: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
slave0:ip=127.0.0.1,port=6380,state=online,offset=1000,lag=0\r\n\
slave1:ip=::1,port=6381,state=wait_bgsave,offset=0,lag=3\r\n\
master_failover_state:no-failover\r\nmaster_repl_offset:1200\r\n";

fn sentinel(addr: &str, names: Option<&str>, quorum: u32) -> SentinelView {
    SentinelView {
        address: addr.into(),
        answered: true,
        error: None,
        names_master: names.map(str::to_string),
        quorum: Some(quorum),
        other_sentinels: Some(2),
        flags: vec![MasterFlag::Master],
        ckquorum: Some(QuorumCheck::parse(
            true,
            "OK 3 usable Sentinels. Quorum and failover authorization can be reached",
        )),
    }
}

fn three(names: [Option<&str>; 3]) -> Vec<SentinelView> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| sentinel(&format!("127.0.0.1:2637{i}"), *n, 2))
        .collect()
}

#[test]
fn replicas_and_their_lag_come_from_info_replication() {
    let r = replicas(INFO, Some(1200));
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].address, "127.0.0.1:6380");
    assert_eq!(r[0].state, ReplicaState::Online);
    assert_eq!((r[0].lag_s, r[0].behind_bytes), (Some(0), Some(200)));
    assert_eq!(r[1].address, "[::1]:6381");
    assert_eq!(r[1].state, ReplicaState::WaitBgsave);
    assert_eq!(
        replicas("slave0:ip=h,port=1,state=brand_new\r\n", None)[0].state,
        ReplicaState::Unknown
    );
}

#[test]
fn three_agreeing_sentinels_and_an_online_replica_make_one_line() {
    let m = Some("127.0.0.1:6380");
    let t = TopologyView::build(
        "mymaster".into(),
        three([m, m, m]),
        m.map(str::to_string),
        Some(INFO),
    );
    assert!(t.master_confirmed());
    let a = t.agreement();
    assert_eq!(
        (a.total, a.answered, a.agreeing, a.quorum),
        (3, 3, 3, Some(2))
    );
    assert!(a.dissenting.is_empty() && a.ckquorum_failed.is_empty() && !a.o_down);
    assert_eq!(
        t.summary(),
        "sentinel mymaster: master 127.0.0.1:6380 (3/3 sentinels agree, quorum 2), \
         1 replica online lag 0s, 1 wait_bgsave"
    );
    assert_eq!(t.sentinels[0].ckquorum.as_ref().unwrap().usable, Some(3));
}

#[test]
fn a_silent_or_dissenting_sentinel_is_counted_out() {
    let mut s = three([Some("a:1"), Some("b:2"), Some("a:1")]);
    s[2] = SentinelView::no_answer("127.0.0.1:26372".into(), "connection refused".into());
    let t = TopologyView::build("m".into(), s, Some("a:1".into()), Some("role:slave\r\n"));
    let a = t.agreement();
    assert_eq!((a.answered, a.agreeing), (2, 1));
    assert_eq!(
        t.master.as_deref(),
        Some("a:1"),
        "a tie goes to the first named"
    );
    assert_eq!(
        a.dissenting,
        vec![("127.0.0.1:26371".into(), Some("b:2".into()))]
    );
    assert!(!t.master_confirmed());
    assert!(
        t.summary().contains("but it reports role replica"),
        "{}",
        t.summary()
    );
    assert!(
        t.summary().ends_with("no replica online"),
        "{}",
        t.summary()
    );
}

#[test]
fn a_failed_ckquorum_and_odown_are_reported() {
    let mut s = three([Some("a:1"); 3]);
    s[0].ckquorum = Some(QuorumCheck::parse(
        false,
        "NOQUORUM 1 usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master",
    ));
    s[1].flags = MasterFlag::parse_list("master,s_down,o_down,brand_new");
    assert_eq!(
        s[1].flags,
        vec![
            MasterFlag::Master,
            MasterFlag::SDown,
            MasterFlag::ODown,
            MasterFlag::Unknown
        ]
    );
    let t = TopologyView::build("m".into(), s, None, None);
    let a = t.agreement();
    assert!(a.o_down);
    assert_eq!(a.ckquorum_failed.len(), 1);
    assert!(a.ckquorum_failed[0].starts_with("127.0.0.1:26370: NOQUORUM 1 usable"));
    assert_eq!(t.sentinels[0].ckquorum.as_ref().unwrap().usable, Some(1));
}

#[test]
fn unknown_values_from_other_versions_still_deserialize() {
    let r: ReplicaView = serde_json::from_str(
        r#"{"address":"h:1","state":"brand_new","offset":null,"lag_s":null,"behind_bytes":null}"#,
    )
    .unwrap();
    assert_eq!(r.state, ReplicaState::Unknown);
    let t: TopologyView = serde_json::from_str(r#"{"master_name":"m"}"#).unwrap();
    assert!(t.sentinels.is_empty() && t.master.is_none());
    let role: RedisRole = serde_json::from_str(r#""sentinel""#).unwrap();
    assert_eq!(role, RedisRole::Unknown);
}
