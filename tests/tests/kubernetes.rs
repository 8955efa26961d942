//! `deploy/kubernetes/`: both variants (shared volumes, S3) render with `kubectl kustomize`
//! and every object validates against the Kubernetes schemas (kubernetes-validate); every
//! reference between objects resolves (Services to pods and named ports, StatefulSet to its
//! headless Service, volumes to claims and ConfigMaps, secrets to keys, probes to named
//! ports), the start scripts write configuration the roles accept, and the probes' paths
//! answer on real processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;
use shoal_tests::process::ProcessCluster;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The variants: shared volumes (also what `kubectl apply -k deploy/kubernetes` applies) and
/// S3 without shared volumes.
const VARIANTS: [&str; 2] = ["shared-volumes", "s3"];

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn items(value: &Value) -> Vec<Value> {
    value.as_sequence().cloned().unwrap_or_default()
}

/// What `kubectl kustomize` renders for `variant` (a directory of deploy/kubernetes, or "."
/// for the top one), as YAML text. kubectl is needed: the test command installs it.
fn render(variant: &str) -> String {
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir().join(variant))
        .output()
        .unwrap_or_else(|e| panic!("this test needs kubectl (to render the kustomizations): {e}"));
    assert!(
        output.status.success(),
        "kubectl kustomize {variant} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 manifests")
}

/// Every object `variant` renders, by (kind, name).
fn objects(variant: &str) -> BTreeMap<(String, String), Value> {
    let source = render(variant);
    let mut objects = BTreeMap::new();
    for document in serde_norway::Deserializer::from_str(&source) {
        let object: Value = serde::Deserialize::deserialize(document)
            .unwrap_or_else(|e| panic!("{variant}: a rendered object does not parse: {e}"));
        let kind = text(&object["kind"]).to_string();
        let name = text(&object["metadata"]["name"]).to_string();
        assert!(
            !kind.is_empty() && !name.is_empty() && object["apiVersion"].is_string(),
            "{variant}: an object without apiVersion, kind or name"
        );
        assert!(
            objects
                .insert((kind.clone(), name.clone()), object)
                .is_none(),
            "{variant}: {kind} {name} is defined twice"
        );
    }
    objects
}

#[test]
fn both_variants_render_and_every_object_validates_against_the_kubernetes_schemas() {
    let scratch = tempfile::tempdir().expect("tempdir");
    for variant in [".", "shared-volumes", "s3"] {
        let file = scratch
            .path()
            .join(format!("{}.yaml", variant.replace('.', "top")));
        std::fs::write(&file, render(variant)).expect("write");
        // kubernetes-validate ships the schemas of the Kubernetes releases, so it needs no
        // cluster and no network; --strict refuses fields the schema does not know.
        let output = std::process::Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("this test needs kubernetes-validate (pip install kubernetes-validate; the test command installs it): {e}")
            });
        assert!(
            output.status.success(),
            "{variant}: objects do not validate:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        objects("."),
        objects("shared-volumes"),
        "kubectl apply -k deploy/kubernetes applies the shared-volumes variant"
    );
    // The S3 variant asks for no shared volume at all.
    let s3 = objects("s3");
    assert!(
        !s3.keys().any(|(kind, _)| kind == "PersistentVolumeClaim"),
        "{:?}",
        s3.keys().collect::<Vec<_>>()
    );
    let scripts = &get(&s3, "ConfigMap", "shoal-scripts")["data"];
    for script in ["coordinator.sh", "worker.sh"] {
        let script = text(&scripts[script]);
        assert!(
            script.contains("seed-store.filesystem.profile=lake"),
            "{script}"
        );
        assert!(
            !script.contains("aws-secret-key"),
            "no secret is written to disk"
        );
    }
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
    for variant in VARIANTS {
        references_resolve(variant, &objects(variant));
    }
}

fn references_resolve(variant: &str, objects: &BTreeMap<(String, String), Value>) {
    for ((kind, name), service) in objects.iter().filter(|((k, _), _)| k == "Service") {
        let pods: Vec<&Value> = workloads(objects)
            .into_iter()
            .map(|w| &w["spec"]["template"])
            .filter(|pod| selects(&service["spec"]["selector"], &pod["metadata"]["labels"]))
            .collect();
        assert!(!pods.is_empty(), "{variant}: {kind} {name} selects no pods");
        for port in items(&service["spec"]["ports"]) {
            let target = text(&port["targetPort"]);
            assert!(
                pods.iter()
                    .all(|pod| port_names(pod).iter().any(|p| p == target)),
                "{variant}: {kind} {name}: target port {target} is not a named container port"
            );
        }
    }
    let client = get(objects, "Service", "shoal");
    assert_eq!(text(&client["spec"]["sessionAffinity"]), "ClientIP");

    let coordinators = get(objects, "StatefulSet", "shoal-coordinator");
    let headless = get(
        objects,
        "Service",
        text(&coordinators["spec"]["serviceName"]),
    );
    assert_eq!(text(&headless["spec"]["clusterIP"]), "None");
    assert!(!items(&coordinators["spec"]["volumeClaimTemplates"]).is_empty());
    get(objects, "Secret", "shoal-secret");

    for workload in workloads(objects) {
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
                let pvc = get(objects, "PersistentVolumeClaim", claim);
                assert_eq!(
                    items(&pvc["spec"]["accessModes"]),
                    vec![Value::from("ReadWriteMany")],
                    "{claim} is shared by every pod"
                );
            }
            if let Some(map) = volume["configMap"]["name"].as_str() {
                get(objects, "ConfigMap", map);
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
                    let named = get(objects, "Secret", text(&reference["name"]));
                    assert!(
                        named["stringData"][text(&reference["key"])].is_string(),
                        "{variant}: {name}: no key {:?} in its secret",
                        reference["key"]
                    );
                }
            }
            for source in items(&container["envFrom"]) {
                if let Some(map) = source["configMapRef"]["name"].as_str() {
                    get(objects, "ConfigMap", map);
                }
            }
            let script = items(&container["command"])
                .last()
                .map(|c| text(c).to_string())
                .unwrap_or_default();
            let key = script.rsplit('/').next().unwrap_or_default();
            assert!(
                get(objects, "ConfigMap", "shoal-scripts")["data"][key].is_string(),
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
    for variant in VARIANTS {
        let objects = objects(variant);
        let scripts = get(&objects, "ConfigMap", "shoal-scripts").clone();
        let root = tempfile::tempdir().expect("tempdir");
        let mut vars = vec![
            ("SHOAL_ENVIRONMENT", "shoal"),
            ("SHOAL_BOOTSTRAP_EXPECT", "3"),
            ("SHOAL_CLUSTER_SECRET", "a-secret"),
            ("HOSTNAME", "shoal-coordinator-0"),
            ("POD_NAMESPACE", "default"),
            ("POD_IP", "10.0.0.7"),
            ("ordinal", "0"),
        ];
        // The S3 variant's scripts read the bucket's place from ConfigMap shoal-s3.
        let s3_settings = objects
            .get(&("ConfigMap".to_string(), "shoal-s3".to_string()))
            .map(|map| map["data"].clone());
        if let Some(data) = &s3_settings {
            for key in [
                "S3_ENDPOINT",
                "S3_REGION",
                "S3_BUCKET",
                "S3_PATH_STYLE_ACCESS",
            ] {
                vars.push((key, text(&data[key])));
            }
        }
        let profile = if s3_settings.is_some() {
            "lake"
        } else {
            "local"
        };
        for role in ["coordinator", "worker"] {
            let script = text(&scripts["data"][format!("{role}.sh").as_str()]).to_string();
            let etc = root.path().join(role);
            std::fs::create_dir_all(etc.join("filesystem")).expect("etc");
            let mut files = vec!["config.properties", "seed-store.properties"];
            if role == "coordinator" {
                files.push("state-store.properties");
            }
            if profile != "local" {
                files.push("filesystem/lake.properties");
            }
            for file in files {
                std::fs::write(etc.join(file), heredoc(&script, file, &vars)).expect("write");
            }
            std::fs::write(
                etc.join("filesystem/local.properties"),
                "fs.client.type=local\n",
            )
            .expect("write");
            if role == "coordinator" {
                let config = shoal_coordinator::CoordinatorConfig::load(&etc).unwrap_or_else(|e| {
                    panic!("{variant}: coordinator.sh writes a bad configuration: {e}")
                });
                assert_eq!(config.node_id, 1);
                assert_eq!(config.seed_store.profile, profile);
                if profile == "lake" {
                    assert_eq!(config.warehouse, "s3://shoal-lake/warehouse");
                }
            } else {
                let config = shoal_worker::WorkerConfig::load(&etc).unwrap_or_else(|e| {
                    panic!("{variant}: worker.sh writes a bad configuration: {e}")
                });
                assert_eq!(config.advertise_host, "10.0.0.7");
                assert_eq!(config.seed_store.profile, profile);
            }
        }
    }
}

#[test]
fn the_probe_paths_answer_on_real_processes() {
    let objects = objects("s3");
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
