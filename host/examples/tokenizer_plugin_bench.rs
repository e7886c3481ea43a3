//! Prints the tokenizer plugin's costs: compile and load times, the overhead of one trivial
//! call into the sandbox, and encode/decode throughput.
//!
//!     cargo run --release -p textnlp-host --example tokenizer_plugin_bench [PLUGIN.wasm]
//!
//! Needs `scripts/setup.sh` (the installed model and plugin).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use textnlp_host::model::gguf::GgufFile;
use textnlp_host::model::vocab::vocabulary_from_gguf;
use textnlp_host::paths;
use textnlp_host::plugins::{PluginRuntime, TokenizerPlugin};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plugin = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(paths::tokenizer_plugin);
    let gguf = GgufFile::open(&paths::default_model())?;
    let vocab = vocabulary_from_gguf(gguf.metadata())?;
    println!(
        "plugin {} ({} bytes)",
        plugin.display(),
        std::fs::metadata(&plugin)?.len()
    );

    let runtime = PluginRuntime::new()?;
    let t = Instant::now();
    let component = runtime.load_component(&plugin)?;
    println!("compile:            {:>9.1} ms", ms(t.elapsed()));
    let imports: Vec<String> = component
        .component_type()
        .imports(runtime.engine())
        .map(|(name, _)| name.to_owned())
        .collect();
    println!("imports: {}", imports.join(", "));
    let t = Instant::now();
    let mut tk = TokenizerPlugin::load(&runtime, &plugin, vocab.clone())?;
    println!(
        "instantiate + load: {:>9.1} ms (compiled component cached; peak memory {} MiB)",
        ms(t.elapsed()),
        tk.memory_peak() >> 20
    );

    println!("(best of {REPEAT} runs each)");
    let n = 50_000;
    let secs = best(|| {
        for _ in 0..n {
            tk.vocab_size()?;
        }
        Ok(())
    })?;
    println!(
        "vocab-size call:    {:>9.2} µs per call",
        secs * 1e6 / n as f64
    );
    let secs = best(|| {
        for _ in 0..n {
            tk.encode("Hi", false, false)?;
        }
        Ok(())
    })?;
    println!(
        "encode(\"Hi\"):       {:>9.2} µs per call",
        secs * 1e6 / n as f64
    );

    let corpus = corpus(1 << 20);
    for chunk in [corpus.len(), 16 << 10, 1 << 10] {
        let pieces = split(&corpus, chunk);
        let mut tokens = 0;
        let secs = best(|| {
            tokens = 0;
            for piece in &pieces {
                tokens += tk.encode(piece, true, false)?.len();
            }
            Ok(())
        })?;
        println!(
            "encode {:>7} B/call: {:>7.2} MB/s, {:>9.0} tokens/s",
            chunk,
            corpus.len() as f64 / secs / 1e6,
            tokens as f64 / secs
        );
    }
    let ids = tk.encode(&corpus, true, false)?;
    let mut text = String::new();
    let secs = best(|| {
        text = tk.decode(&ids, false)?;
        Ok(())
    })?;
    assert_eq!(text, corpus);
    println!(
        "decode (one call):  {:>7.2} MB/s, {:>9.0} tokens/s",
        corpus.len() as f64 / secs / 1e6,
        ids.len() as f64 / secs
    );
    let mut streamed = String::with_capacity(corpus.len());
    let secs = best(|| {
        streamed.clear();
        let decoder = tk.incremental_decoder(false)?;
        for &id in &ids {
            streamed.push_str(&tk.decode_next(&decoder, id)?);
        }
        streamed.push_str(&tk.decode_finish(decoder)?);
        Ok(())
    })?;
    assert_eq!(streamed, corpus);
    println!(
        "decode_next:        {:>9.2} µs per token",
        secs * 1e6 / ids.len() as f64
    );
    println!("peak memory after the runs: {} MiB", tk.memory_peak() >> 20);
    Ok(())
}

const REPEAT: usize = 5;

/// The shortest of `REPEAT` runs, in seconds (the machine may be shared).
fn best(
    mut f: impl FnMut() -> Result<(), textnlp_host::plugins::PluginError>,
) -> Result<f64, textnlp_host::plugins::PluginError> {
    let mut best = f64::INFINITY;
    for _ in 0..REPEAT {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// About `size` bytes of mixed English prose, code, numbers and multi-byte text.
fn corpus(size: usize) -> String {
    let prose = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/model/perplexity_text.txt"
    ))
    .unwrap_or_else(|_| "The quick brown fox jumps over the lazy dog. ".repeat(80));
    let extra = "\nfn main() {\n    let x = vec![1, 2, 3];\n    println!(\"{:?}\", x);\n}\n\
                 Prices rose 12.5% to $1,234.56 in 2024. naïve café 日本語 🙂 Ελληνικά\n";
    let mut out = String::with_capacity(size + prose.len());
    while out.len() < size {
        out.push_str(&prose);
        out.push_str(extra);
    }
    out
}

/// Splits at char boundaries into pieces of about `chunk` bytes.
fn split(text: &str, chunk: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + chunk).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}
