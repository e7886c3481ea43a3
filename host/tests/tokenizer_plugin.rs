//! The first-party tokenizer plugin (`tokenizer-bpe.wasm`) against llama.cpp's tokenization of
//! the default model, plus the sandbox's failure modes.
//!
//! Needs the plugin and the model installed: run `scripts/setup.sh` once (it builds
//! `plugins/` for wasm32-wasip2 and installs `tokenizer-bpe.wasm` and the model under
//! `$TEXTNLP_HOME`, default `~/.local/share/textnlp`).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use textnlp_host::model::gguf::GgufFile;
use textnlp_host::model::vocab::{Vocabulary, vocabulary_from_gguf};
use textnlp_host::paths;
use textnlp_host::plugins::{
    ChatMessage, Limits, PluginError, PluginRuntime, TokenizerError, TokenizerPlugin, TrapKind,
};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/golden/model/tokenize.jsonl"
);

fn installed(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{what} is not installed at {}: run scripts/setup.sh first",
        path.display()
    );
    path
}

fn plugin_path() -> PathBuf {
    installed(paths::tokenizer_plugin(), "the tokenizer plugin")
}

fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| PluginRuntime::new().expect("plugin runtime"))
}

fn vocab() -> Vocabulary {
    static VOCAB: OnceLock<Vocabulary> = OnceLock::new();
    VOCAB
        .get_or_init(|| {
            let model = installed(paths::default_model(), "the default model");
            let gguf = GgufFile::open(&model).expect("open the model");
            vocabulary_from_gguf(gguf.metadata()).expect("vocabulary")
        })
        .clone()
}

/// One tokenizer instance shared by the tests that do not break it.
fn shared() -> MutexGuard<'static, TokenizerPlugin> {
    static PLUGIN: OnceLock<Mutex<TokenizerPlugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            Mutex::new(TokenizerPlugin::load(runtime(), &plugin_path(), vocab()).expect("load"))
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

struct Case {
    name: String,
    text: String,
    ids: Vec<u32>,
    ids_no_parse_special: Option<Vec<u32>>,
}

fn golden() -> Vec<Case> {
    let text = std::fs::read_to_string(GOLDEN).expect("golden tokenize.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let ids = |key: &str| -> Option<Vec<u32>> {
                v.get(key).map(|a| {
                    a.as_array()
                        .expect("array")
                        .iter()
                        .map(|x| x.as_u64().expect("id") as u32)
                        .collect()
                })
            };
            assert_eq!(v["add_bos"], serde_json::Value::Bool(false));
            Case {
                name: v["name"].as_str().expect("name").to_owned(),
                text: v["text"].as_str().expect("text").to_owned(),
                ids: ids("ids").expect("ids"),
                ids_no_parse_special: ids("ids_no_parse_special"),
            }
        })
        .collect()
}

#[test]
fn encodes_like_llama_cpp() {
    let cases = golden();
    assert!(cases.len() >= 10, "golden file has {} cases", cases.len());
    let mut tk = shared();
    for case in &cases {
        let ids = tk.encode(&case.text, true, false).expect("encode");
        assert_eq!(ids, case.ids, "case {} ({:?})", case.name, case.text);
        if let Some(expected) = &case.ids_no_parse_special {
            let ids = tk.encode(&case.text, false, false).expect("encode");
            assert_eq!(&ids, expected, "case {} without parse_special", case.name);
        }
        // SmolLM2 has add_bos_token = false, so add_special changes nothing.
        let ids = tk.encode(&case.text, true, true).expect("encode");
        assert_eq!(ids, case.ids, "case {} with add_special", case.name);
    }
}

#[test]
fn decode_inverts_encode() {
    let mut tk = shared();
    for case in golden() {
        let ids = tk.encode(&case.text, true, false).expect("encode");
        let text = tk.decode(&ids, false).expect("decode");
        assert_eq!(text, case.text, "case {}", case.name);
    }
    // Skipping specials drops control tokens only.
    let text = tk.decode(&[1, 4093, 2, 0], true).expect("decode");
    assert_eq!(text, "user");
}

#[test]
fn incremental_decoding_never_splits_a_character() {
    let texts = [
        "naïve café 日本語 🙂",
        "Emoji: 🙂🎉👩‍👩‍👧 and more 🚀!",
        "中文字符和日本語のテキスト、한국어도。",
        "Ñandú, façade, Ærøskøbing, Ελληνικά, русский",
        "<|im_start|>assistant\nDéjà vu 🙂<|im_end|>",
    ];
    let mut tk = shared();
    for text in texts {
        let ids = tk.encode(text, true, false).expect("encode");
        for skip_special in [false, true] {
            let full = tk.decode(&ids, skip_special).expect("decode");
            let decoder = tk.incremental_decoder(skip_special).expect("decoder");
            let mut streamed = String::new();
            for &id in &ids {
                let piece = tk.decode_next(&decoder, id).expect("push");
                assert!(
                    !piece.contains(char::REPLACEMENT_CHARACTER),
                    "broken character in piece {piece:?} of {text:?}"
                );
                streamed.push_str(&piece);
            }
            streamed.push_str(&tk.decode_finish(decoder).expect("finish"));
            assert_eq!(streamed, full, "text {text:?}, skip_special {skip_special}");
            if !skip_special {
                assert_eq!(streamed, text);
            }
        }
    }
}

#[test]
fn incremental_decoder_flushes_an_incomplete_tail() {
    let mut tk = shared();
    // "🙂" is several byte-level tokens; stop halfway.
    let ids = tk.encode("🙂", false, false).expect("encode");
    assert!(ids.len() > 1, "{ids:?}");
    let decoder = tk.incremental_decoder(false).expect("decoder");
    assert_eq!(tk.decode_next(&decoder, ids[0]).expect("push"), "");
    assert_eq!(tk.decode_finish(decoder).expect("finish"), "\u{FFFD}");
    // A decoder dropped without finishing is freed on a later call.
    let decoder = tk.incremental_decoder(false).expect("decoder");
    tk.decode_next(&decoder, ids[0]).expect("push");
    drop(decoder);
    assert_eq!(tk.encode("ok", false, false).expect("encode").len(), 1);
}

#[test]
fn renders_the_chat_template() {
    let mut tk = shared();
    let messages = [ChatMessage {
        role: "user".into(),
        content: "Hello".into(),
    }];
    let text = tk.apply_chat_template(&messages, true).expect("template");
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    );
    let text = tk.apply_chat_template(&messages, false).expect("template");
    assert!(
        text.ends_with("<|im_start|>user\nHello<|im_end|>\n"),
        "{text:?}"
    );
    // A conversation that starts with its own system message gets no default one.
    let messages = [
        ChatMessage {
            role: "system".into(),
            content: "Be brief.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "Hi".into(),
        },
    ];
    let text = tk.apply_chat_template(&messages, true).expect("template");
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}

#[test]
fn special_tokens_come_from_the_file() {
    let mut tk = shared();
    let special = tk.special_tokens().expect("special tokens");
    assert_eq!(special.bos, Some(1));
    assert_eq!(special.eos, Some(2));
    assert_eq!(special.unknown, Some(0));
    assert_eq!(special.padding, Some(2));
    assert!(!special.add_bos);
    assert!(
        special.end_of_turn.contains(&2),
        "{:?}",
        special.end_of_turn
    );
    assert_eq!(tk.vocab_size().expect("vocab size"), 49152);
    assert_eq!(tk.api_version(), Some("0.1.2"));
}

#[test]
fn guest_errors_are_reported_and_leave_the_instance_usable() {
    let mut tk = shared();
    match tk.decode(&[5, 49152], false) {
        Err(PluginError::Guest(TokenizerError::UnknownToken(49152))) => {}
        other => panic!("expected UnknownToken, got {other:?}"),
    }
    assert_eq!(tk.decode(&[19556], false).expect("decode"), "Hello");
}

#[test]
fn missing_chat_template_is_a_template_error() {
    let mut vocab = vocab();
    vocab.chat_template = None;
    let mut tk = TokenizerPlugin::load(runtime(), &plugin_path(), vocab).expect("load");
    let messages = [ChatMessage {
        role: "user".into(),
        content: "Hello".into(),
    }];
    match tk.apply_chat_template(&messages, true) {
        Err(PluginError::Guest(TokenizerError::Template(_))) => {}
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn unsupported_vocabularies_are_refused_clearly() {
    let mut vocab = vocab();
    vocab.model = "llama".into();
    match TokenizerPlugin::load(runtime(), &plugin_path(), vocab) {
        Err(PluginError::Guest(TokenizerError::InvalidVocabulary(m))) => {
            assert!(m.contains("unsupported tokenizer model"), "{m}")
        }
        other => panic!("expected InvalidVocabulary, got {other:?}"),
    }
    let mut vocab = self::vocab();
    vocab.pre = "no-such-pre".into();
    match TokenizerPlugin::load(runtime(), &plugin_path(), vocab) {
        Err(PluginError::Guest(TokenizerError::InvalidVocabulary(m))) => {
            assert!(
                m.contains("unsupported pre-tokenizer \"no-such-pre\""),
                "{m}"
            )
        }
        other => panic!("expected InvalidVocabulary, got {other:?}"),
    }
}

#[test]
fn invalid_wasm_is_a_compile_error() {
    let limits = Limits::default();
    let bad: [&[u8]; 3] = [
        b"definitely not wasm",
        // A core module header: not a component.
        b"\0asm\x01\0\0\0",
        // A component header followed by garbage.
        b"\0asm\x0d\0\x01\0\xff\xff\xff",
    ];
    for bytes in bad {
        match TokenizerPlugin::from_bytes(runtime(), "bad", bytes, vocab(), &limits) {
            Err(PluginError::Compile(_)) => {}
            other => panic!("expected a compile error for {bytes:?}, got {other:?}"),
        }
    }
    // A valid but empty component declares no API version, so it is not even compiled.
    match TokenizerPlugin::from_bytes(runtime(), "empty", b"\0asm\x0d\0\x01\0", vocab(), &limits) {
        Err(PluginError::Version(m)) => {
            assert!(m.contains("declares no textnlp:plugin API"), "{m}")
        }
        other => panic!("expected a version error, got {other:?}"),
    }
    match TokenizerPlugin::load(
        runtime(),
        std::path::Path::new("/no/such/plugin.wasm"),
        vocab(),
    ) {
        Err(PluginError::Io { .. }) => {}
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn a_tiny_memory_limit_is_a_clean_error() {
    for memory_bytes in [64 << 10, 4 << 20] {
        let limits = Limits {
            memory_bytes,
            ..Limits::default()
        };
        match TokenizerPlugin::load_with_limits(runtime(), &plugin_path(), vocab(), &limits) {
            Err(PluginError::Trap {
                kind: TrapKind::OutOfMemory,
                message,
                ..
            }) => assert!(message.contains("memory limit"), "{message}"),
            other => panic!("expected out-of-memory with {memory_bytes} bytes, got {other:?}"),
        }
    }
}

#[test]
fn a_short_deadline_is_a_timeout() {
    let limits = Limits {
        call_deadline: Duration::from_millis(10),
        ..Limits::default()
    };
    // Building a 49k-token vocabulary takes far longer than one 10 ms tick.
    match TokenizerPlugin::load_with_limits(runtime(), &plugin_path(), vocab(), &limits) {
        Err(PluginError::Trap {
            kind: TrapKind::Timeout,
            ..
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_runaway_call_times_out_and_poisons_the_instance() {
    let mut tk = TokenizerPlugin::load(runtime(), &plugin_path(), vocab()).expect("load");
    tk.set_call_deadline(Duration::from_millis(20));
    // Tens of megabytes take seconds to encode.
    let text = "The quick brown fox jumps over the lazy dog 12345. ".repeat(400_000);
    match tk.encode(&text, true, false) {
        Err(PluginError::Trap {
            kind: TrapKind::Timeout,
            message,
            ..
        }) => assert!(message.contains("deadline"), "{message}"),
        other => panic!("expected a timeout, got {:?}", other.map(|ids| ids.len())),
    }
    assert!(tk.is_poisoned());
    match tk.vocab_size() {
        Err(PluginError::Poisoned(_)) => {}
        other => panic!("expected Poisoned, got {other:?}"),
    }
    // Other instances are unaffected.
    assert_eq!(shared().vocab_size().expect("vocab size"), 49152);
}

#[test]
fn memory_use_is_well_under_the_default_limit() {
    let tk = shared();
    let peak = tk.memory_peak();
    eprintln!("tokenizer plugin peak linear memory: {} MiB", peak >> 20);
    assert!(
        peak > 0 && peak < Limits::default().memory_bytes / 2,
        "{peak}"
    );
}

#[test]
fn compiled_artifacts_persist_and_bad_ones_are_recompiled() {
    let dir = std::env::temp_dir().join(format!("textnlp-artifacts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let wasm = std::fs::read(plugin_path()).unwrap();
    let with_dir = || {
        PluginRuntime::new()
            .unwrap()
            .with_artifact_dir(Some(dir.clone()))
    };
    let artifacts = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>()
    };

    with_dir().compile(&wasm).expect("compiles");
    let files = artifacts();
    assert_eq!(files.len(), 1, "one artifact written: {files:?}");

    // A fresh runtime (a new process, in effect) loads the artifact and it works.
    let rt = with_dir();
    let limits = rt.limits().clone();
    let mut tok = TokenizerPlugin::from_bytes(&rt, "cached", &wasm, vocab(), &limits).unwrap();
    assert_eq!(
        tok.encode("Hello world", true, false).unwrap(),
        [19556, 905]
    );

    // A corrupted artifact is ignored and replaced, never executed.
    std::fs::write(&files[0], b"not an artifact").unwrap();
    let rt = with_dir();
    let mut tok = TokenizerPlugin::from_bytes(&rt, "recompiled", &wasm, vocab(), &limits).unwrap();
    assert_eq!(
        tok.encode("Hello world", true, false).unwrap(),
        [19556, 905]
    );
    assert!(
        std::fs::metadata(&files[0]).unwrap().len() > 1000,
        "artifact rewritten"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
