//! Plugins using the host's model through the WIT `model` interface: every call goes through
//! the same engine as the HTTP API, and gives what a direct request gives.

use std::sync::{Arc, OnceLock};

use textnlp_host::engine::{
    Engine, EngineConfig, Event, Priority, Request, negative_log_likelihood,
};
use textnlp_host::model::gguf::GgufFile;
use textnlp_host::model::vocab::vocabulary_from_gguf;
use textnlp_host::model::{Llama, LogitsFor, Scratch, SequenceStep};
use textnlp_host::paths;
use textnlp_host::plugins::strategy::ExpandRequest;
use textnlp_host::plugins::validator::{Report, Sample};
use textnlp_host::plugins::{
    InstanceSpec, Limits, ModelAccess, PluginRuntime, StrategyPlugin, TokenizerPlugin,
    ValidatorPlugin,
};
use textnlp_host::text::TokenizerPool;
use textnlp_kernels::cpu::sampling::SamplingParams;

use textnlp_tests::built_component as component;

struct Host {
    model: Arc<Llama>,
    runtime: PluginRuntime,
    engine: Engine,
    tokenizers: Arc<TokenizerPool>,
    access: Arc<ModelAccess>,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let path = paths::default_model();
        let file = GgufFile::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", path.display()));
        let vocab = vocabulary_from_gguf(file.metadata()).expect("vocabulary");
        let model = Arc::new(Llama::load(file).expect("model"));
        let runtime = PluginRuntime::new()
            .expect("runtime")
            .with_artifact_dir(None);
        let loader_runtime = runtime.clone();
        let loader = Box::new(move || {
            TokenizerPlugin::load(&loader_runtime, &paths::tokenizer_plugin(), vocab.clone())
        });
        let tokenizers = Arc::new(TokenizerPool::new(loader, 2).expect("tokenizer pool"));
        let engine = Engine::start(Arc::clone(&model), EngineConfig::default());
        let access = Arc::new(ModelAccess::new(
            engine.handle(),
            Arc::clone(&tokenizers),
            "SmolLM2-135M-Instruct".into(),
        ));
        Host {
            model,
            runtime,
            engine,
            tokenizers,
            access,
        }
    })
}

fn granted(plugin: &str) -> InstanceSpec {
    InstanceSpec {
        model: Some(Arc::clone(&host().access)),
        ..InstanceSpec::new("tenant-a", plugin, Limits::default())
    }
}

/// Greedy tokens of a direct engine request.
fn direct_greedy(prompt: Vec<u32>, max_tokens: usize) -> Vec<u32> {
    let mut rx = host()
        .engine
        .handle()
        .submit(Request {
            client: "direct".into(),
            prompt,
            max_tokens,
            sampling: SamplingParams::default(),
            stop_tokens: Vec::new(),
            logit_bias: Vec::new(),
            top_logprobs: None,
            priority: Priority::Interactive,
        })
        .expect("submitted");
    let mut ids = Vec::new();
    while let Some(event) = rx.blocking_recv() {
        match event {
            Event::Token { id, .. } => ids.push(id),
            Event::Finished(_) => break,
            Event::Failed(why) => panic!("{why}"),
        }
    }
    ids
}

fn one_sample(text: &str) -> Vec<Sample> {
    vec![Sample {
        text: text.into(),
        references: vec![],
    }]
}

fn corpus(report: &Report, name: &str) -> Option<f64> {
    report
        .corpus
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

#[test]
fn greedy_decoding_through_a_session_matches_a_direct_request() {
    let plugin = ValidatorPlugin::new(
        &host().runtime,
        &component("hostile"),
        granted("hostile"),
        1,
    )
    .expect("loads");
    let text = "The capital of France is";
    let report = plugin
        .score(&one_sample(text), Some(r#"{"mode":"greedy","count":8}"#))
        .expect("the session path works");
    let via_session: Vec<u32> = (0..8)
        .map(|i| corpus(&report, &format!("t{i}")).expect("token metric") as u32)
        .collect();
    let prompt = host()
        .tokenizers
        .tenant("tests")
        .expect("the tokenizer")
        .with_any(|t| t.encode(text, true, true))
        .expect("encode");
    assert_eq!(via_session, direct_greedy(prompt, 8));
}

#[test]
fn generate_matches_a_direct_request() {
    let plugin = ValidatorPlugin::new(
        &host().runtime,
        &component("hostile"),
        granted("hostile"),
        1,
    )
    .expect("loads");
    let report = plugin
        .score(&one_sample("x"), Some(r#"{"mode":"model"}"#))
        .expect("generate works");
    let prompt = host()
        .tokenizers
        .tenant("tests")
        .expect("the tokenizer")
        .with_any(|t| t.encode("Say hello.", true, true))
        .expect("encode");
    let expected = host()
        .tokenizers
        .tenant("tests")
        .expect("the tokenizer")
        .with_any(|t| t.decode(&direct_greedy(prompt, 4), true))
        .expect("decode");
    let text = report
        .corpus
        .last()
        .expect("the completion metric")
        .name
        .clone();
    assert_eq!(text, expected);
}

#[test]
fn the_length_validator_counts_model_tokens_like_the_host() {
    let plugin = ValidatorPlugin::new(
        &host().runtime,
        &component("validator_length"),
        granted("length"),
        1,
    )
    .expect("loads");
    let texts = ["Hello, world!", "Tokenizers split words into pieces.", ""];
    let samples: Vec<Sample> = texts.iter().flat_map(|t| one_sample(t)).collect();
    let report = plugin
        .score(&samples, Some(r#"{"unit":"tokens","min":4,"max":8}"#))
        .expect("scored");
    for (text, result) in texts.iter().zip(&report.samples) {
        let ids = host()
            .tokenizers
            .tenant("tests")
            .expect("the tokenizer")
            .with_any(|t| t.encode(text, false, false))
            .expect("encode");
        let length = result
            .scores
            .iter()
            .find(|m| m.name == "length")
            .expect("length");
        assert_eq!(length.value as usize, ids.len(), "{text:?}");
        assert_eq!(
            result.verdict.keep,
            (4..=8).contains(&ids.len()),
            "{text:?}"
        );
    }
}

#[test]
fn the_template_strategy_expands_deterministically_and_generates_through_the_model() {
    let plugin = StrategyPlugin::new(
        &host().runtime,
        &component("strategy_template"),
        granted("template"),
        1,
    )
    .expect("loads");
    let config = r#"{"template":"Write one {{tone}} word about {{topic}}.",
        "variables":{"tone":["happy","sad"],"topic":["cats","rain","tea"]},"mode":"product"}"#;
    let request = ExpandRequest {
        seed: 7,
        start: 1,
        count: 3,
    };
    let records = plugin.expand(request, Some(config)).expect("expand");
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].index, 1);
    assert_eq!(
        records[0].messages.last().unwrap().content,
        "Write one happy word about rain."
    );
    assert_eq!(
        records[2].messages.last().unwrap().content,
        "Write one sad word about cats."
    );
    let again = plugin.expand(request, Some(config)).expect("expand again");
    assert_eq!(
        records.iter().map(|r| &r.metadata).collect::<Vec<_>>(),
        again.iter().map(|r| &r.metadata).collect::<Vec<_>>()
    );
    let small = ExpandRequest {
        count: 2,
        ..request
    };
    let generated = plugin.generate(small, Some(config)).expect("generate");
    assert_eq!(generated.len(), 2);
    assert!(generated.iter().all(|r| !r.completion.trim().is_empty()));
    let repeated = plugin
        .generate(small, Some(config))
        .expect("generate again");
    assert_eq!(
        generated.iter().map(|r| &r.completion).collect::<Vec<_>>(),
        repeated.iter().map(|r| &r.completion).collect::<Vec<_>>(),
        "seeded generation is reproducible"
    );
}

/// Perplexity of `tokens` from one direct forward pass: the first token is context, every
/// later one is scored.
fn direct_perplexity(tokens: &[u32]) -> f64 {
    let model = &host().model;
    let mut cache = model.new_cache();
    let mut scratch = Scratch::default();
    let mut steps = [SequenceStep {
        cache: &mut cache,
        tokens,
        logits: LogitsFor::All,
    }];
    let logits = model.forward(&mut steps, &mut scratch).expect("forward");
    let n_vocab = model.config().n_vocab;
    let nll: f64 = logits
        .chunks_exact(n_vocab)
        .zip(&tokens[1..])
        .map(|(row, &next)| negative_log_likelihood(row, next))
        .sum();
    (nll / (tokens.len() - 1) as f64).exp()
}

#[test]
fn the_perplexity_plugin_scores_like_a_direct_forward_pass() {
    let plugin = ValidatorPlugin::new(
        &host().runtime,
        &component("validator_perplexity"),
        granted("perplexity"),
        1,
    )
    .expect("loads");
    let texts = [
        "The quick brown fox jumps over the lazy dog.",
        "dog lazy the over jumps fox brown quick The.",
        "Paris is the capital of France, and Berlin is the capital of Germany.",
        "x",
    ];
    let samples: Vec<Sample> = texts.iter().flat_map(|t| one_sample(t)).collect();
    let report = plugin
        .score(&samples, Some(r#"{"max": 1000}"#))
        .expect("scores");
    let metric = |i: usize, name: &str| {
        report.samples[i]
            .scores
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    for (i, text) in texts.iter().enumerate().take(3) {
        let tokens = host()
            .tokenizers
            .tenant("tests")
            .expect("the tokenizer")
            .with_any(|t| t.encode(text, true, false))
            .expect("encode");
        let direct = direct_perplexity(&tokens);
        let via_plugin = metric(i, "perplexity").expect("scored");
        // Two engine steps (context token, then the rest against the cache) against one
        // pass: the same kernels, summed in another order.
        assert!(
            (via_plugin / direct - 1.0).abs() < 1e-3,
            "{text:?}: plugin {via_plugin}, direct {direct}"
        );
        assert_eq!(metric(i, "tokens"), Some(tokens.len() as f64));
    }
    assert!(
        metric(1, "perplexity") > metric(0, "perplexity"),
        "shuffled words must surprise the model more"
    );
    // One token: nothing to predict, kept unscored.
    assert_eq!(metric(3, "perplexity"), None);
    assert!(report.samples[3].verdict.keep);
    assert!(corpus(&report, "perplexity").is_some_and(|p| p > 1.0));
    let strict = plugin
        .score(&samples[..2], Some(r#"{"max": 1.5}"#))
        .expect("scores");
    let reason = strict.samples[1].verdict.reason.as_deref().unwrap_or("");
    assert!(reason.contains("above max 1.5"), "{reason}");
}

/// Tenants never share a tokenizer instance (a tokenizer's cache would otherwise let one
/// tenant's text show in another's timing); one tenant's requests reuse its instances.
#[test]
fn each_tenant_has_tokenizer_instances_of_its_own() {
    let pool = &host().tokenizers;
    let a = pool.tenant("tokenizer-a").expect("tenant a's instances");
    let again = pool.tenant("tokenizer-a").expect("tenant a's instances");
    let b = pool.tenant("tokenizer-b").expect("tenant b's instances");
    assert!(Arc::ptr_eq(&a, &again));
    assert!(!Arc::ptr_eq(&a, &b));
    let encode = |t: &textnlp_host::text::Tokenizers| {
        t.with_any(|t| t.encode("Hello tenants", false, false))
            .expect("encodes")
    };
    assert_eq!(encode(&a), encode(&b));
}
