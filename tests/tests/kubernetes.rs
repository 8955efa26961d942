//! `deploy/kubernetes/`: every manifest parses, every reference between them resolves
//! (Services to pods and named ports, StatefulSet to its headless Service, volumes to claims
//! and ConfigMaps, secrets to keys, probes to named ports), the start scripts write
//! configuration the roles accept, and the probes' paths answer on real processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;
use shoal_tests::process::ProcessCluster;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn items(value: &Value) -> Vec<Value> {
    value.as_sequence().cloned().unwrap_or_default()
}

/// Every object of every file the kustomization lists, by (kind, name).
fn objects() -> BTreeMap<(String, String), Value> {
    let kustomization: Value = serde_norway::from_str(
        &std::fs::read_to_string(dir().join("kustomization.yaml")).expect("kustomization"),
    )
    .expect("kustomization parses");
    let mut objects = BTreeMap::new();
    for resource in items(&kustomization["resources"]) {
        let path = dir().join(text(&resource));
        let source = std::fs::read_to_string(&path).expect("a listed manifest");
        for document in serde_norway::Deserializer::from_str(&source) {
            let object: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            let kind = text(&object["kind"]).to_string();
            let name = text(&object["metadata"]["name"]).to_string();
            assert!(
                !kind.is_empty() && !name.is_empty() && object["apiVersion"].is_string(),
                "{}: an object without apiVersion, kind or name",
                path.display()
            );
            assert!(
                objects
                    .insert((kind.clone(), name.clone()), object)
                    .is_none(),
                "{kind} {name} is defined twice"
            );
        }
    }
    objects
}

fn get<'a>(objects: &'a BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'a Value {
    objects
        .get(&(kind.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

fn workloads(objects: &BTreeMap<(String, String), Value>) -> Vec<&Value> {
    objects
        .iter()
        .filter(|((kind, _), _)| kind == "StatefulSet" || kind == "Deployment")
        .map(|(_, object)| object)
        .collect()
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn port_names(pod: &Value) -> Vec<String> {
    items(&pod["spec"]["containers"])
        .iter()
        .flat_map(|c| items(&c["ports"]))
        .map(|p| text(&p["name"]).to_string())
        .collect()
}

#[test]
fn manifests_parse_and_their_references_resolve() {
    let objects = objects();
    for ((kind, name), service) in objects.iter().filter(|((k, _), _)| k == "Service") {
        let pods: Vec<&Value> = workloads(&objects)
            .into_iter()
            .map(|w| &w["spec"]["template"])
            .filter(|pod| selects(&service["spec"]["selector"], &pod["metadata"]["labels"]))
            .collect();
        assert!(!pods.is_empty(), "{kind} {name} selects no pods");
        for port in items(&service["spec"]["ports"]) {
            let target = text(&port["targetPort"]);
            assert!(
                pods.iter()
                    .all(|pod| port_names(pod).iter().any(|p| p == target)),
                "{kind} {name}: target port {target} is not a named container port"
            );
        }
    }
    let client = get(&objects, "Service", "shoal");
    assert_eq!(text(&client["spec"]["sessionAffinity"]), "ClientIP");

    let coordinators = get(&objects, "StatefulSet", "shoal-coordinator");
    let headless = get(
        &objects,
        "Service",
        text(&coordinators["spec"]["serviceName"]),
    );
    assert_eq!(text(&headless["spec"]["clusterIP"]), "None");
    assert!(!items(&coordinators["spec"]["volumeClaimTemplates"]).is_empty());
    let secret = get(&objects, "Secret", "shoal-secret");

    for workload in workloads(&objects) {
        let name = text(&workload["metadata"]["name"]);
        let pod = &workload["spec"]["template"];
        assert!(
            selects(
                &workload["spec"]["selector"]["matchLabels"],
                &pod["metadata"]["labels"]
            ),
            "{name}: the selector does not match its pods"
        );
        let claims: Vec<String> = items(&workload["spec"]["volumeClaimTemplates"])
            .iter()
            .map(|c| text(&c["metadata"]["name"]).to_string())
            .collect();
        let volumes = items(&pod["spec"]["volumes"]);
        for volume in &volumes {
            if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                let pvc = get(&objects, "PersistentVolumeClaim", claim);
                assert_eq!(
                    items(&pvc["spec"]["accessModes"]),
                    vec![Value::from("ReadWriteMany")],
                    "{claim} is shared by every pod"
                );
            }
            if let Some(map) = volume["configMap"]["name"].as_str() {
                get(&objects, "ConfigMap", map);
            }
        }
        for container in items(&pod["spec"]["containers"]) {
            for mount in items(&container["volumeMounts"]) {
                let volume = text(&mount["name"]);
                assert!(
                    volumes.iter().any(|v| text(&v["name"]) == volume)
                        || claims.iter().any(|c| c == volume),
                    "{name}: mount of unknown volume {volume}"
                );
            }
            for env in items(&container["env"]) {
                let reference = &env["valueFrom"]["secretKeyRef"];
                if reference.is_mapping() {
                    assert_eq!(text(&reference["name"]), "shoal-secret");
                    assert!(secret["stringData"][text(&reference["key"])].is_string());
                }
            }
            let script = items(&container["command"])
                .last()
                .map(|c| text(c).to_string())
                .unwrap_or_default();
            let key = script.rsplit('/').next().unwrap_or_default();
            assert!(
                get(&objects, "ConfigMap", "shoal-scripts")["data"][key].is_string(),
                "{name}: its start script {script} is not in the ConfigMap"
            );
            for probe in ["readinessProbe", "livenessProbe"] {
                let port = text(&container[probe]["httpGet"]["port"]);
                assert!(
                    port_names(pod).iter().any(|p| p == port),
                    "{name}: {probe} on unknown port {port}"
                );
            }
        }
    }
}

/// The body of `cat > "$etc/FILE" <<EOF ... EOF` in `script`, with `${VAR}`s filled in.
fn heredoc(script: &str, file: &str, vars: &[(&str, &str)]) -> String {
    let start = format!("cat > \"$etc/{file}\" <<EOF\n");
    let body = script
        .split_once(&start)
        .and_then(|(_, rest)| rest.split_once("\nEOF"))
        .map(|(body, _)| body.to_string())
        .unwrap_or_else(|| panic!("the script writes no {file}"));
    vars.iter().fold(body, |body, (name, value)| {
        body.replace(&format!("${{{name}}}"), value)
            .replace(&format!("$(({name} + 1))"), "1")
    })
}

#[test]
fn start_scripts_write_configuration_the_roles_accept() {
    let scripts = get(&objects(), "ConfigMap", "shoal-scripts").clone();
    let root = tempfile::tempdir().expect("tempdir");
    let vars = [
        ("SHOAL_ENVIRONMENT", "shoal"),
        ("SHOAL_BOOTSTRAP_EXPECT", "3"),
        ("SHOAL_CLUSTER_SECRET", "a-secret"),
        ("HOSTNAME", "shoal-coordinator-0"),
        ("POD_NAMESPACE", "default"),
        ("POD_IP", "10.0.0.7"),
        ("ordinal", "0"),
    ];
    for (role, files) in [
        (
            "coordinator",
            &[
                "config.properties",
                "state-store.properties",
                "seed-store.properties",
            ][..],
        ),
        (
            "worker",
            &["config.properties", "seed-store.properties"][..],
        ),
    ] {
        let script = text(&scripts["data"][format!("{role}.sh").as_str()]).to_string();
        let etc = root.path().join(role);
        std::fs::create_dir_all(etc.join("filesystem")).expect("etc");
        for file in files {
            std::fs::write(etc.join(file), heredoc(&script, file, &vars)).expect("write");
        }
        std::fs::write(
            etc.join("filesystem/local.properties"),
            "fs.client.type=local\n",
        )
        .expect("write");
        if role == "coordinator" {
            let config = shoal_coordinator::CoordinatorConfig::load(&etc)
                .unwrap_or_else(|e| panic!("coordinator.sh writes a bad configuration: {e}"));
            assert_eq!(config.node_id, 1);
        } else {
            let config = shoal_worker::WorkerConfig::load(&etc)
                .unwrap_or_else(|e| panic!("worker.sh writes a bad configuration: {e}"));
            assert_eq!(config.advertise_host, "10.0.0.7");
        }
    }
}

#[test]
fn the_probe_paths_answer_on_real_processes() {
    let objects = objects();
    let probe_path = |workload: &str, kind: &str, probe: &str| -> String {
        let container =
            &items(&get(&objects, kind, workload)["spec"]["template"]["spec"]["containers"])[0];
        text(&container[probe]["httpGet"]["path"]).to_string()
    };
    let mut cluster = ProcessCluster::new(1);
    cluster.start_joined(1);
    cluster.start_workers_seen(&["w1"], 1);
    let worker_url = cluster.worker_url("w1");
    let checks = [
        (
            cluster.client_url(1),
            probe_path("shoal-coordinator", "StatefulSet", "readinessProbe"),
        ),
        (
            cluster.client_url(1),
            probe_path("shoal-coordinator", "StatefulSet", "livenessProbe"),
        ),
        (
            worker_url.clone(),
            probe_path("shoal-worker", "Deployment", "readinessProbe"),
        ),
        (
            worker_url,
            probe_path("shoal-worker", "Deployment", "livenessProbe"),
        ),
    ];
    for (base, path) in checks {
        let status = ureq::get(format!("{base}{path}"))
            .call()
            .map(|r| r.status());
        assert!(
            matches!(status, Ok(s) if s == 200),
            "{base}{path} answered {status:?}"
        );
    }
}
