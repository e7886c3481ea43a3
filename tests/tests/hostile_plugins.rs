//! The hostile-plugin suite: components that misbehave on purpose (tests/plugins/). For each
//! misbehaviour the plugin's own call fails with a typed error naming the plugin and the limit
//! it hit, the host keeps serving, another tenant's well-behaved call made at the same time
//! completes, and repeating the failures does not make the process grow.
//!
//! Needs the hostile components built: `scripts/setup.sh` builds the guest workspace
//! (plugins/), of which tests/plugins/* are members.

use std::sync::OnceLock;
use std::time::Duration;

use textnlp_host::plugins::validator::{Report, Sample};
use textnlp_host::plugins::{
    InstanceSpec, Limits, PluginError, PluginRuntime, TokenizerPlugin, TrapKind, ValidatorPlugin,
};

use textnlp_tests::built_component as component;

/// Tight limits, so the failures are quick: 32 MiB of memory, 1 s per call.
fn limits() -> Limits {
    Limits {
        memory_bytes: 32 << 20,
        call_deadline: Duration::from_secs(1),
        ..Limits::default()
    }
}

fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        PluginRuntime::with_limits(limits())
            .expect("runtime")
            .with_artifact_dir(None)
    })
}

fn hostile(tenant: &str, limits: Limits) -> ValidatorPlugin {
    let spec = InstanceSpec::new(tenant, "hostile", limits);
    ValidatorPlugin::new(runtime(), &component("hostile"), spec, 2).expect("hostile loads")
}

fn samples() -> Vec<Sample> {
    ["first sample", "second one"]
        .into_iter()
        .map(|text| Sample {
            text: text.into(),
            references: vec![],
        })
        .collect()
}

fn run(plugin: &ValidatorPlugin, config: &str) -> Result<Report, PluginError> {
    plugin.score(&samples(), Some(config))
}

/// Runs `mode` on tenant A's instance while tenant B makes well-behaved calls, and returns
/// A's result. B's calls must all succeed.
fn misbehave(mode: &str) -> Result<Report, PluginError> {
    misbehave_with(&format!(r#"{{"mode":"{mode}"}}"#), limits())
}

fn misbehave_with(config: &str, limits: Limits) -> Result<Report, PluginError> {
    let a = hostile("tenant-a", limits);
    let b = hostile("tenant-b", self::limits());
    std::thread::scope(|scope| {
        let neighbour = scope.spawn(|| {
            for _ in 0..3 {
                let report = run(&b, r#"{"mode":"ok"}"#).expect("tenant B's call completes");
                assert_eq!(report.samples.len(), 2);
            }
        });
        let result = run(&a, config);
        neighbour.join().expect("tenant B's thread");
        // The host keeps serving: a fresh instance of the same plugin works afterwards.
        run(&a, r#"{"mode":"ok"}"#).expect("the plugin serves again after a failure");
        result
    })
}

fn trap(result: Result<Report, PluginError>, expected: TrapKind, needle: &str) {
    match result {
        Err(PluginError::Trap {
            plugin,
            kind,
            message,
        }) => {
            assert_eq!(plugin, "hostile");
            assert_eq!(kind, expected, "{message}");
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }
        other => panic!("expected a {expected} trap, got {other:?}"),
    }
}

fn invalid_output(result: Result<Report, PluginError>, needle: &str) {
    match result {
        Err(PluginError::InvalidOutput { plugin, message }) => {
            assert_eq!(plugin, "hostile");
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
}

fn reported(result: Result<Report, PluginError>, expected: &str) -> String {
    match result {
        Err(PluginError::Reported {
            plugin,
            code,
            message,
        }) => {
            assert_eq!(plugin, "hostile");
            assert_eq!(code, expected, "{message}");
            message
        }
        other => panic!("expected a reported {expected} error, got {other:?}"),
    }
}

#[test]
fn the_control_mode_is_well_behaved() {
    let report = run(&hostile("tenant-a", limits()), r#"{"mode":"ok"}"#).expect("ok");
    assert_eq!(report.samples.len(), 2);
    assert!(report.samples.iter().all(|s| s.verdict.keep));
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    trap(misbehave("loop"), TrapKind::Timeout, "deadline");
}

#[test]
fn an_endless_loop_with_a_fuel_budget_runs_out_of_fuel() {
    // Fuel metering is a property of the runtime (it slows every plugin down).
    let limits = Limits {
        fuel: Some(50_000_000),
        ..limits()
    };
    let metered = PluginRuntime::with_limits(limits.clone())
        .expect("runtime")
        .with_artifact_dir(None);
    let spec = InstanceSpec::new("tenant-a", "hostile", limits);
    let plugin = ValidatorPlugin::new(&metered, &component("hostile"), spec, 1).expect("loads");
    trap(
        run(&plugin, r#"{"mode":"loop"}"#),
        TrapKind::Fuel,
        "fuel budget of 50000000",
    );
    run(&plugin, r#"{"mode":"ok"}"#).expect("a fresh instance has its budget again");
    // A runtime without metering refuses a budget rather than ignoring it.
    let unmetered = hostile(
        "tenant-a",
        Limits {
            fuel: Some(1),
            ..self::limits()
        },
    );
    match run(&unmetered, r#"{"mode":"ok"}"#) {
        Err(PluginError::Usage(message)) => assert!(message.contains("fuel"), "{message}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    trap(
        misbehave("alloc"),
        TrapKind::OutOfMemory,
        "memory limit of 33554432 bytes",
    );
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    trap(misbehave("recurse"), TrapKind::StackOverflow, "stack");
}

#[test]
fn printing_gigabytes_hits_the_output_limit() {
    trap(
        misbehave("print"),
        TrapKind::Output,
        "output limit of 65536 bytes",
    );
}

#[test]
fn flooding_the_log_is_cut_off_and_the_call_completes() {
    let report = misbehave_with(r#"{"mode":"log","count":20000}"#, limits())
        .expect("log floods are dropped, not fatal");
    assert_eq!(report.samples.len(), 2);
}

#[test]
fn a_panic_is_a_trap_with_its_message() {
    trap(
        misbehave("panic"),
        TrapKind::Other,
        "hostile plugin panicked on purpose",
    );
}

#[test]
fn an_explicit_trap_is_reported() {
    trap(misbehave("trap"), TrapKind::Other, "unreachable");
}

#[test]
fn nan_scores_are_refused() {
    invalid_output(misbehave("nan"), "not a finite number");
}

#[test]
fn a_missing_result_is_refused() {
    invalid_output(misbehave("wrong-count"), "1 results for 2 samples");
}

#[test]
fn an_oversized_metric_name_is_refused() {
    let result = misbehave_with(r#"{"mode":"huge","bytes":1000000}"#, limits());
    invalid_output(
        result,
        "a metric name is 1000000 bytes, more than the 256 allowed",
    );
}

#[test]
fn a_million_resources_hit_the_resource_table_limit() {
    trap(
        misbehave("resources"),
        TrapKind::Resources,
        "resource table limit of 1000",
    );
}

#[test]
fn files_are_not_reachable() {
    let message = reported(misbehave("file"), "invalid-input");
    assert!(message.contains("read /etc/passwd: Err("), "{message}");
    assert!(message.contains("read_dir /: Err("), "{message}");
    assert!(message.contains("write /tmp/hostile: Err("), "{message}");
    assert!(!message.contains("root:"), "{message}");
    assert!(!std::path::Path::new("/tmp/hostile").exists());
}

#[test]
fn the_environment_is_empty() {
    let message = reported(misbehave("env"), "invalid-input");
    assert!(
        message.starts_with("env: 0 variables; args: 0;"),
        "{message}"
    );
}

#[test]
fn the_model_is_unavailable_without_a_grant() {
    let message = reported(misbehave("model"), "model");
    assert!(message.contains("has no model access"), "{message}");
}

#[test]
fn a_plugin_importing_sockets_is_refused_before_it_runs() {
    let spec = InstanceSpec::new("tenant-a", "hostile-socket", limits());
    match ValidatorPlugin::new(runtime(), &component("hostile_socket"), spec, 1) {
        Err(PluginError::Link(message)) => {
            assert!(message.contains("wasi:sockets/"), "{message}");
            assert!(
                message.contains("a validator plugin may not use"),
                "{message}"
            );
        }
        other => panic!("expected a link error, got {:?}", other.err()),
    }
}

#[test]
fn a_validator_importing_outbound_http_is_refused_before_it_runs() {
    let spec = InstanceSpec::new("tenant-a", "hostile-http", limits());
    match ValidatorPlugin::new(runtime(), &component("hostile_http"), spec, 1) {
        Err(PluginError::Link(message)) => assert!(message.contains("wasi:http/"), "{message}"),
        other => panic!("expected a link error, got {:?}", other.err()),
    }
}

mod tokenizer {
    use super::*;
    use textnlp_host::model::vocab::Vocabulary;

    fn vocab() -> Vocabulary {
        Vocabulary {
            model: "gpt2".into(),
            pre: "default".into(),
            tokens: (0..100).map(|i| format!("t{i}")).collect(),
            token_types: vec![1; 100],
            merges: vec![],
            bos_id: None,
            eos_id: Some(1),
            unknown_id: None,
            padding_id: None,
            add_bos: false,
            chat_template: None,
        }
    }

    fn load() -> TokenizerPlugin {
        TokenizerPlugin::from_bytes(
            runtime(),
            "hostile-tokenizer",
            &component("hostile_tokenizer"),
            vocab(),
            &limits(),
        )
        .expect("the hostile tokenizer loads")
    }

    #[test]
    fn out_of_range_token_ids_are_refused() {
        match load().encode("hello", false, false) {
            Err(PluginError::InvalidOutput { plugin, message }) => {
                assert_eq!(plugin, "hostile-tokenizer");
                assert!(
                    message.contains("token id 1100 is outside the vocabulary (100 tokens)"),
                    "{message}"
                );
            }
            other => panic!("expected invalid output, got {other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        match load().decode(&[0, 1], false) {
            Err(PluginError::Trap {
                plugin, message, ..
            }) => {
                assert_eq!(plugin, "hostile-tokenizer");
                assert!(message.contains("utf-8"), "{message}");
            }
            other => panic!("expected a trap, got {other:?}"),
        }
    }

    #[test]
    fn a_ten_megabyte_piece_for_one_token_is_refused() {
        let mut plugin = load();
        let decoder = plugin.incremental_decoder(false).expect("decoder");
        match plugin.decode_next(&decoder, 0) {
            Err(PluginError::InvalidOutput { message, .. }) => {
                assert!(message.contains("bytes of text for 1 token"), "{message}")
            }
            other => panic!("expected invalid output, got {other:?}"),
        }
    }
}

/// Resident set size of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn repeated_failures_do_not_grow_the_process() {
    let plugin = hostile("tenant-a", limits());
    let modes = ["trap", "panic", "alloc", "nan", "recurse", "resources"];
    let cycle = |reps: usize| {
        for i in 0..reps {
            let mode = modes[i % modes.len()];
            let result = run(&plugin, &format!(r#"{{"mode":"{mode}"}}"#));
            assert!(result.is_err(), "{mode} must fail");
        }
    };
    cycle(12);
    let before = rss();
    cycle(100);
    let after = rss();
    let growth = after.saturating_sub(before);
    assert!(
        growth < 24 << 20,
        "RSS grew by {} MiB over 100 failing calls ({} -> {} MiB)",
        growth >> 20,
        before >> 20,
        after >> 20
    );
}
