//! The example configurations in `config/` load through the real parser and validate (so they
//! cannot rot), describe one coherent cluster, and specific misconfigurations of them are
//! refused with a message naming the key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gregor_server::config::{parse_properties, BrokerConfig, QuorumMode, Roles};

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("config")
}

/// `config/NAME` as settings.
fn settings(name: &str) -> Vec<(String, String)> {
    let path = config_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_properties(&text, &path.display().to_string()).unwrap()
}

fn load(name: &str) -> BrokerConfig {
    BrokerConfig::from_settings(&settings(name)).unwrap_or_else(|e| panic!("config/{name} is refused: {e}"))
}

/// `config/NAME` with `changes` applied after it (as `--override` would).
fn refused(name: &str, changes: &[(&str, &str)], key: &str, why: &str) {
    let mut all = settings(name);
    all.extend(changes.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let e = match BrokerConfig::from_settings(&all) {
        Ok(_) => panic!("config/{name} with {changes:?} was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(&format!("configuration {key}:")), "config/{name} with {changes:?}: {e} (expected the key {key})");
    assert!(e.contains(why), "config/{name} with {changes:?}: {e} (expected {why:?})");
}

#[test]
fn every_example_validates_without_unknown_keys() {
    let mut names: Vec<String> = std::fs::read_dir(config_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".properties"))
        .collect();
    names.sort();
    for expected in ["broker.properties", "controller.properties", "node1.properties", "node2.properties", "node3.properties"] {
        assert!(names.iter().any(|n| n == expected), "config/{expected} is missing: {names:?}");
    }
    for name in &names {
        let c = load(name);
        assert!(c.unknown_keys.is_empty(), "config/{name} has keys Gregor does not know: {:?}", c.unknown_keys);
        assert!(matches!(c.quorum(), QuorumMode::Voters(_)), "config/{name} is a cluster member");
    }
}

#[test]
fn the_examples_describe_one_cluster() {
    let nodes: Vec<BrokerConfig> = (1..=3).map(|n| load(&format!("node{n}.properties"))).collect();
    let broker = load("broker.properties");
    let controller = load("controller.properties");
    let voters = &nodes[0].voters;
    assert_eq!(voters.iter().map(|v| v.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    for c in nodes.iter().chain([&broker, &controller]) {
        assert_eq!(&c.voters, voters, "node {}: every member lists the same voters", c.node_id);
    }
    let mut ports = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    for (i, c) in nodes.iter().enumerate() {
        assert_eq!(c.node_id, i as i32 + 1);
        assert_eq!(c.roles, Roles::COMBINED);
        // Its own voter entry is its controller listener.
        let me = voters.iter().find(|v| v.id == c.node_id).unwrap();
        assert_eq!(c.controller_listen_addr.as_deref(), Some(me.addr().as_str()));
        for l in &c.listeners {
            assert_eq!(ports.insert(l.port, c.node_id), None, "port {} used twice", l.port);
        }
        assert_eq!(dirs.insert(c.log_dir.clone(), c.node_id), None, "{} used twice", c.log_dir.display());
        assert_eq!(c.advertised_port, i32::from(c.listeners[0].port));
    }
    assert_eq!(broker.node_id, 4);
    assert_eq!(broker.roles, Roles { broker: true, controller: false });
    assert_eq!(broker.listen_addr, "127.0.0.1:9392");
    assert_eq!(broker.controller_listen_addr, None);
    assert!(!ports.contains_key(&9392) && !dirs.contains_key(&broker.log_dir));
    // The dedicated controller is voter 3, the alternative to node3.properties.
    assert_eq!(controller.roles, Roles { broker: false, controller: true });
    assert_eq!(controller.node_id, 3);
    assert_eq!(controller.controller_listen_addr.as_deref(), Some(voters[2].addr().as_str()));
    assert!(!dirs.contains_key(&controller.log_dir));
}

#[test]
fn misconfigured_examples_are_refused_naming_the_key() {
    let voters = "controller.quorum.voters";
    let names = "controller.listener.names";
    refused("node1.properties", &[("node.id", "4")], voters, "the node id 4 must be included in the set of voters");
    refused("node1.properties", &[(voters, "1@127.0.0.1:9093,1@127.0.0.1:9193")], voters, "voter ID 1 appears more than once");
    refused("node1.properties", &[(voters, "")], voters, "must list the controllers when listeners has the controller listener");
    refused("node1.properties", &[("listeners", "PLAINTEXT://127.0.0.1:9092")], names, "must contain at least one value appearing in the 'listeners'");
    refused("node1.properties", &[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9092")], "listeners", "different port");
    refused("node1.properties", &[("listeners", "SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")], "listeners", "only PLAINTEXT is supported");
    refused("node1.properties", &[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,OTHER://127.0.0.1:9094")], "listeners", "no security protocol defined for listener OTHER");
    refused("node1.properties", &[("advertised.listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")], "advertised.listeners", "must not contain the controller listener");
    refused("node1.properties", &[("advertised.listeners", "EXTERNAL://127.0.0.1:9092")], "advertised.listeners", "subset of the ones defined in listeners");
    refused("node1.properties", &[("inter.broker.listener.name", "CONTROLLER")], "inter.broker.listener.name", "must be a listener name defined in advertised.listeners");
    refused("node1.properties", &[("controller.quorum.bootstrap.servers", "127.0.0.1:9093")], "controller.quorum.bootstrap.servers", "not supported");
    refused("broker.properties", &[("node.id", "1")], voters, "node id 1 must not be included in the set of voters");
    refused("broker.properties", &[(voters, "")], voters, "must list the controllers when process.roles=broker");
    refused("broker.properties", &[("listeners", "PLAINTEXT://127.0.0.1:9392,CONTROLLER://127.0.0.1:9393")], names, "must not contain a value appearing in the 'listeners'");
    refused("broker.properties", &[(names, "")], names, "must contain at least one value when running KRaft with just the broker role");
    refused("controller.properties", &[("listeners", "PLAINTEXT://127.0.0.1:9292,CONTROLLER://127.0.0.1:9293")], "listeners", "must only contain KRaft controller listeners");
    refused("controller.properties", &[("node.id", "5")], voters, "the node id 5 must be included in the set of voters");
    refused("controller.properties", &[("process.roles", "controller,zookeeper")], "process.roles", "unknown process role");
}
