//! `tokenizer-bpe`: the first-party textnlp tokenizer plugin for byte-level BPE vocabularies
//! (GGUF `tokenizer.ggml.model = "gpt2"`: GPT-2, SmolLM, StarCoder, Llama 3, Qwen 2, ...).
//!
//! Encoding runs the pipeline Hugging Face `tokenizers` runs for these vocabularies: special
//! tokens split out (leftmost-longest; control tokens only with `parse-special`, user-defined
//! tokens always, as llama.cpp does), the pre-tokenizer's pattern (`fancy-regex`, the same engine
//! and patterns as `tokenizers`), byte-level characters, then the `tokenizers` BPE model, with a
//! cache of recent pieces. It skips `tokenizers`' offset bookkeeping, which made its own
//! pipeline 2-3x slower; a test checks both give the same ids.
//!
//! Decoding is done here, at the byte level: every token maps to its bytes once at load time, so
//! `decode` and the incremental decoder are table look-ups and never split a UTF-8 character.
//! The chat template is rendered with `minijinja` (trim/lstrip blocks, as `transformers` does).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use aho_corasick::{AhoCorasick, MatchKind};
use fancy_regex::Regex;
use minijinja::value::Value;
use textnlp_plugin_sdk::tokenizer::{
    ChatMessage, GuestIncrementalDecoder, GuestTokenizer, IncrementalDecoder, SpecialTokens,
    Tokenizer, TokenizerError, TokenizerPlugin, Vocabulary,
};
use tokenizers::Model;
use tokenizers::models::bpe::{BPE, Vocab};

/// ggml token types (`tokenizer.ggml.token_type`).
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// Token texts that end a turn in chat use, besides the vocabulary's `eos`.
const END_OF_TURN_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eom_id|>",
];

/// The GPT-2 pattern as Hugging Face's `ByteLevel` pre-tokenizer writes it (llama.cpp's
/// "gpt-2" pattern plus a final `\s+`, which its hand-written splitter implies).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// The Llama 3 pre-tokenizer pattern (GGUF pre "llama-bpe").
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The Qwen 2 pre-tokenizer pattern: like Llama 3 but every digit alone.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

struct Plugin;

impl TokenizerPlugin for Plugin {
    type Tokenizer = BpeTokenizer;
    type IncrementalDecoder = StreamDecoder;
}

textnlp_plugin_sdk::register_tokenizer!(Plugin);

/// How a token is rendered when decoding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Render {
    /// Byte-level text: each char stands for one byte.
    ByteLevel,
    /// A special token (control/unknown): its text, or nothing when skipping specials.
    Special,
    /// A user-defined token: its text as written, always.
    Verbatim,
}

/// The bytes of every token, flattened.
struct Pieces {
    bytes: Vec<u8>,
    /// `offsets[id]..offsets[id + 1]` is token `id`'s range in `bytes`.
    offsets: Vec<u32>,
    special: Vec<bool>,
}

impl Pieces {
    fn build(tokens: &[String], render: &[Render]) -> Self {
        let table = ByteLevelTable::new();
        let mut bytes = Vec::with_capacity(tokens.iter().map(String::len).sum());
        let mut offsets = Vec::with_capacity(tokens.len() + 1);
        offsets.push(0);
        for (token, how) in tokens.iter().zip(render) {
            match how {
                Render::ByteLevel => token.chars().for_each(|c| match table.byte(c) {
                    Some(b) => bytes.push(b),
                    // Not a byte-level char: keep it as written.
                    None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }),
                Render::Special | Render::Verbatim => bytes.extend_from_slice(token.as_bytes()),
            }
            offsets.push(bytes.len() as u32);
        }
        let special = render.iter().map(|r| *r == Render::Special).collect();
        Pieces {
            bytes,
            offsets,
            special,
        }
    }

    fn len(&self) -> usize {
        self.special.len()
    }

    /// The bytes token `id` decodes to, or `None` for an id outside the vocabulary.
    fn get(&self, id: u32, skip_special: bool) -> Option<&[u8]> {
        let i = id as usize;
        if i >= self.len() {
            return None;
        }
        if skip_special && self.special[i] {
            return Some(&[]);
        }
        Some(&self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize])
    }

    fn append(
        &self,
        ids: &[u32],
        skip_special: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), TokenizerError> {
        for &id in ids {
            out.extend_from_slice(
                self.get(id, skip_special)
                    .ok_or(TokenizerError::UnknownToken(id))?,
            );
        }
        Ok(())
    }
}

/// GPT-2's reversible byte <-> printable-char mapping: bytes that are printable and not space
/// stand for themselves; the other 68 bytes are shifted to U+0100.. in byte order.
struct ByteLevelTable {
    /// `char_to_byte[c]` for `c < 0x144` (all mapped chars are below that).
    char_to_byte: [Option<u8>; 0x144],
}

impl ByteLevelTable {
    fn new() -> Self {
        let mut char_to_byte = [None; 0x144];
        let mut shifted = 0u32;
        for b in 0..=255u8 {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let c = if printable {
                u32::from(b)
            } else {
                shifted += 1;
                0xFF + shifted
            };
            char_to_byte[c as usize] = Some(b);
        }
        ByteLevelTable { char_to_byte }
    }

    fn byte(&self, c: char) -> Option<u8> {
        self.char_to_byte.get(c as usize).copied().flatten()
    }

    /// The char each byte stands for.
    fn byte_chars(&self) -> [char; 256] {
        let mut out = ['\0'; 256];
        for (c, b) in self.char_to_byte.iter().enumerate() {
            if let (Some(b), Some(c)) = (b, char::from_u32(c as u32)) {
                out[usize::from(*b)] = c;
            }
        }
        out
    }
}

/// A loaded byte-level BPE vocabulary.
pub struct BpeTokenizer {
    encoder: Encoder,
    pieces: Rc<Pieces>,
    special: SpecialTokens,
    /// The compiled chat template, or why there is none.
    chat: Result<ChatTemplate, String>,
}

struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos: String,
    eos: String,
}

fn invalid(msg: impl Into<String>) -> TokenizerError {
    TokenizerError::InvalidVocabulary(msg.into())
}

impl GuestTokenizer for BpeTokenizer {
    fn load(vocab: Vocabulary) -> Result<Tokenizer, TokenizerError> {
        let summary = format!(
            "{} tokens, {} merges, pre-tokenizer {:?}",
            vocab.tokens.len(),
            vocab.merges.len(),
            vocab.pre
        );
        let tokenizer = BpeTokenizer::new(vocab)?;
        textnlp_plugin_sdk::log::debug(&format!("loaded {summary}"));
        Ok(Tokenizer::new(tokenizer))
    }

    fn vocab_size(&self) -> u32 {
        self.pieces.len() as u32
    }

    fn special_tokens(&self) -> SpecialTokens {
        self.special.clone()
    }

    fn encode(
        &self,
        text: String,
        parse_special: bool,
        add_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let bos = self
            .special
            .bos
            .filter(|_| add_special && self.special.add_bos);
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        ids.extend(bos);
        self.encoder
            .encode(&text, parse_special, &mut ids)
            .map_err(TokenizerError::Encode)?;
        Ok(ids)
    }

    fn decode(&self, ids: Vec<u32>, skip_special: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::new();
        self.pieces.append(&ids, skip_special, &mut bytes)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn incremental_decoder(&self, skip_special: bool) -> IncrementalDecoder {
        IncrementalDecoder::new(StreamDecoder {
            pieces: Rc::clone(&self.pieces),
            skip_special,
            pending: RefCell::new(Vec::new()),
        })
    }

    fn apply_chat_template(
        &self,
        messages: Vec<ChatMessage>,
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let chat = self
            .chat
            .as_ref()
            .map_err(|e| TokenizerError::Template(e.clone()))?;
        let messages: Vec<Value> = messages
            .into_iter()
            .map(|m| {
                Value::from_object(BTreeMap::from([
                    ("role", Value::from(m.role)),
                    ("content", Value::from(m.content)),
                ]))
            })
            .collect();
        let template = chat
            .env
            .get_template("chat")
            .map_err(|e| TokenizerError::Template(describe(&e)))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => chat.bos.as_str(),
                eos_token => chat.eos.as_str(),
            })
            .map_err(|e| TokenizerError::Template(describe(&e)))
    }
}

impl BpeTokenizer {
    fn new(vocab: Vocabulary) -> Result<Self, TokenizerError> {
        if vocab.model != "gpt2" {
            return Err(invalid(format!(
                "unsupported tokenizer model {:?}: this plugin handles byte-level BPE (\"gpt2\")",
                vocab.model
            )));
        }
        let n = vocab.tokens.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(invalid(format!("vocabulary has {n} tokens")));
        }
        if !vocab.token_types.is_empty() && vocab.token_types.len() != n {
            return Err(invalid(format!(
                "{} token types for {n} tokens",
                vocab.token_types.len()
            )));
        }
        for (what, id) in [
            ("bos", vocab.bos_id),
            ("eos", vocab.eos_id),
            ("unknown", vocab.unknown_id),
            ("padding", vocab.padding_id),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(invalid(format!(
                    "{what} id {id} is outside the vocabulary ({n} tokens)"
                )));
            }
        }
        let token_type = |id: usize| vocab.token_types.get(id).copied().unwrap_or(1);
        let render: Vec<Render> = (0..n)
            .map(|id| match token_type(id) {
                TYPE_CONTROL | TYPE_UNKNOWN => Render::Special,
                TYPE_USER_DEFINED => Render::Verbatim,
                _ => Render::ByteLevel,
            })
            .collect();

        let encoder = Encoder::new(&vocab, token_type)?;

        let mut end_of_turn: Vec<u32> = vocab.eos_id.into_iter().collect();
        for (id, token) in vocab.tokens.iter().enumerate() {
            if END_OF_TURN_TOKENS.contains(&token.as_str()) && !end_of_turn.contains(&(id as u32)) {
                end_of_turn.push(id as u32);
            }
        }
        let special = SpecialTokens {
            bos: vocab.bos_id,
            eos: vocab.eos_id,
            unknown: vocab.unknown_id,
            padding: vocab.padding_id,
            end_of_turn,
            add_bos: vocab.add_bos && vocab.bos_id.is_some(),
        };

        let token_text = |id: Option<u32>| {
            id.map(|id| vocab.tokens[id as usize].clone())
                .unwrap_or_default()
        };
        let chat = match &vocab.chat_template {
            None => Err("the model has no chat template".to_owned()),
            Some(source) => ChatTemplate::compile(
                source.clone(),
                token_text(vocab.bos_id),
                token_text(vocab.eos_id),
            ),
        };

        Ok(BpeTokenizer {
            encoder,
            pieces: Rc::new(Pieces::build(&vocab.tokens, &render)),
            special,
            chat,
        })
    }
}

/// How text is cut into pieces before BPE, per GGUF `tokenizer.ggml.pre` (as llama.cpp and the
/// models' Hugging Face `tokenizer.json` define them).
enum Splitter {
    /// Every digit alone, then the pattern over the runs between digits (Hugging Face's
    /// `Sequence[Digits(individual_digits), ByteLevel(use_regex)]`).
    DigitsThen(Regex),
    /// The pattern alone (`ByteLevel(use_regex)`, or `Split(pattern, Isolated)` followed by
    /// `ByteLevel` without its own pattern).
    Pattern(Regex),
}

impl Splitter {
    fn for_pre(name: &str) -> Result<Self, TokenizerError> {
        let regex = |pattern: &str| {
            Regex::new(pattern).map_err(|e| invalid(format!("pre-tokenizer {name:?}: {e}")))
        };
        match name {
            "smollm" | "starcoder" | "refact" => Ok(Splitter::DigitsThen(regex(GPT2_PATTERN)?)),
            "gpt2" | "gpt-2" | "default" => Ok(Splitter::Pattern(regex(GPT2_PATTERN)?)),
            "llama3" | "llama-v3" | "llama-bpe" => Ok(Splitter::Pattern(regex(LLAMA3_PATTERN)?)),
            "qwen2" => Ok(Splitter::Pattern(regex(QWEN2_PATTERN)?)),
            other => Err(invalid(format!("unsupported pre-tokenizer {other:?}"))),
        }
    }

    /// Calls `f` on each piece of `text`, in order; the pieces cover `text` exactly.
    fn split(
        &self,
        text: &str,
        f: &mut impl FnMut(&str) -> Result<(), String>,
    ) -> Result<(), String> {
        match self {
            Splitter::Pattern(re) => split_isolated(re, text, f),
            Splitter::DigitsThen(re) => {
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if c.is_numeric() {
                        split_isolated(re, &text[start..i], f)?;
                        let end = i + c.len_utf8();
                        f(&text[i..end])?;
                        start = end;
                    }
                }
                split_isolated(re, &text[start..], f)
            }
        }
    }
}

/// Matches of `re` and the text between them, each a piece (empty ones skipped).
fn split_isolated(
    re: &Regex,
    text: &str,
    f: &mut impl FnMut(&str) -> Result<(), String>,
) -> Result<(), String> {
    let mut last = 0;
    for m in re.find_iter(text) {
        let m = m.map_err(|e| format!("pre-tokenizer pattern failed: {e}"))?;
        if m.start() > last {
            f(&text[last..m.start()])?;
        }
        if m.end() > m.start() {
            f(m.as_str())?;
        }
        last = m.end();
    }
    if last < text.len() {
        f(&text[last..])?;
    }
    Ok(())
}

/// Special-token matcher: leftmost-longest over the token texts.
struct SpecialMatcher {
    automaton: AhoCorasick,
    ids: Vec<u32>,
}

impl SpecialMatcher {
    fn new(tokens: Vec<(&str, u32)>) -> Result<Option<Self>, TokenizerError> {
        if tokens.is_empty() {
            return Ok(None);
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(tokens.iter().map(|(text, _)| text))
            .map_err(|e| invalid(format!("special tokens: {e}")))?;
        Ok(Some(SpecialMatcher {
            automaton,
            ids: tokens.into_iter().map(|(_, id)| id).collect(),
        }))
    }
}

/// Pieces longer than this (in bytes) are not cached.
const MAX_CACHED_PIECE: usize = 256;
/// The piece cache is emptied when it reaches this many entries.
const PIECE_CACHE_CAPACITY: usize = 32_768;

/// Text -> ids: special tokens, then the pre-tokenizer's pieces, each mapped to byte-level
/// characters and merged by Hugging Face's BPE model. This is the pipeline `tokenizers`
/// runs for these vocabularies (see the `reference` tests), without its offset bookkeeping.
struct Encoder {
    model: BPE,
    splitter: Splitter,
    /// Control and user-defined tokens (`parse-special`).
    all_specials: Option<SpecialMatcher>,
    /// User-defined tokens only (always matched).
    user_defined: Option<SpecialMatcher>,
    byte_chars: [char; 256],
    /// Ids of recently seen pieces.
    cache: RefCell<HashMap<Box<str>, Box<[u32]>>>,
}

impl Encoder {
    fn new(vocab: &Vocabulary, token_type: impl Fn(usize) -> i32) -> Result<Self, TokenizerError> {
        let splitter = Splitter::for_pre(&vocab.pre)?;
        let merges = vocab
            .merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| invalid(format!("merge {m:?} is not \"left right\"")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vocab = vocab
            .tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        let model = BPE::builder()
            .vocab_and_merges(ids, merges)
            .cache_capacity(0)
            .build()
            .map_err(|e| invalid(format!("bad BPE vocabulary: {e}")))?;

        let specials = |types: &[i32]| -> Vec<(&str, u32)> {
            vocab
                .tokens
                .iter()
                .enumerate()
                .filter(|&(id, text)| types.contains(&token_type(id)) && !text.is_empty())
                .map(|(id, text)| (text.as_str(), id as u32))
                .collect()
        };
        Ok(Encoder {
            model,
            splitter,
            all_specials: SpecialMatcher::new(specials(&[TYPE_CONTROL, TYPE_USER_DEFINED]))?,
            user_defined: SpecialMatcher::new(specials(&[TYPE_USER_DEFINED]))?,
            byte_chars: ByteLevelTable::new().byte_chars(),
            cache: RefCell::new(HashMap::new()),
        })
    }

    fn encode(&self, text: &str, parse_special: bool, ids: &mut Vec<u32>) -> Result<(), String> {
        let specials = if parse_special {
            &self.all_specials
        } else {
            &self.user_defined
        };
        let mut last = 0;
        if let Some(specials) = specials {
            for m in specials.automaton.find_iter(text) {
                self.encode_plain(&text[last..m.start()], ids)?;
                ids.push(specials.ids[m.pattern().as_usize()]);
                last = m.end();
            }
        }
        self.encode_plain(&text[last..], ids)
    }

    /// Encodes text that holds no special token.
    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let mut cache = self.cache.borrow_mut();
        let mut mapped = String::new();
        self.splitter.split(text, &mut |piece| {
            if let Some(hit) = cache.get(piece) {
                ids.extend_from_slice(hit);
                return Ok(());
            }
            mapped.clear();
            mapped.extend(piece.bytes().map(|b| self.byte_chars[usize::from(b)]));
            let tokens = self
                .model
                .tokenize(&mapped)
                .map_err(|e| format!("BPE failed on {piece:?}: {e}"))?;
            let piece_ids: Box<[u32]> = tokens.iter().map(|t| t.id).collect();
            ids.extend_from_slice(&piece_ids);
            if piece.len() <= MAX_CACHED_PIECE {
                if cache.len() >= PIECE_CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(piece.into(), piece_ids);
            }
            Ok(())
        })
    }
}

impl ChatTemplate {
    fn compile(source: String, bos: String, eos: String) -> Result<Self, String> {
        let mut env = minijinja::Environment::new();
        // As Hugging Face's `apply_chat_template` renders them.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| describe(&e))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| format!("cannot parse the chat template: {}", describe(&e)))?;
        Ok(ChatTemplate { env, bos, eos })
    }
}

/// A minijinja error with its causes.
fn describe(e: &minijinja::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// A streaming decoder: buffers bytes until they form complete UTF-8 characters.
pub struct StreamDecoder {
    pieces: Rc<Pieces>,
    skip_special: bool,
    pending: RefCell<Vec<u8>>,
}

impl GuestIncrementalDecoder for StreamDecoder {
    fn push(&self, id: u32) -> Result<String, TokenizerError> {
        let mut pending = self.pending.borrow_mut();
        self.pieces.append(&[id], self.skip_special, &mut pending)?;
        Ok(take_complete(&mut pending))
    }

    fn finish(&self) -> String {
        let mut pending = self.pending.borrow_mut();
        let mut text = take_complete(&mut pending);
        if !pending.is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
            pending.clear();
        }
        text
    }
}

/// Removes and returns the longest prefix of `buf` that is decided: complete characters, and
/// U+FFFD for each invalid sequence (as `String::from_utf8_lossy` would render it). Only an
/// incomplete character at the very end stays in `buf`.
fn take_complete(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut start = 0;
    while start < buf.len() {
        match std::str::from_utf8(&buf[start..]) {
            Ok(text) => {
                out.push_str(text);
                start = buf.len();
            }
            Err(e) => {
                let valid = start + e.valid_up_to();
                // SAFETY-free: the prefix was just validated.
                out.push_str(std::str::from_utf8(&buf[start..valid]).unwrap_or_default());
                match e.error_len() {
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        start = valid + bad;
                    }
                    None => {
                        start = valid;
                        break;
                    }
                }
            }
        }
    }
    buf.drain(..start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_a_bijection() {
        let t = ByteLevelTable::new();
        let mapped: Vec<u8> = (0..0x144u32)
            .filter_map(|c| t.byte(char::from_u32(c).unwrap()))
            .collect();
        assert_eq!(mapped.len(), 256);
        assert_eq!(t.byte('Ġ'), Some(b' '));
        assert_eq!(t.byte('Ċ'), Some(b'\n'));
        assert_eq!(t.byte('a'), Some(b'a'));
    }

    #[test]
    fn take_complete_holds_back_only_an_incomplete_tail() {
        let mut buf = "é".as_bytes()[..1].to_vec();
        assert_eq!(take_complete(&mut buf), "");
        buf.push("é".as_bytes()[1]);
        assert_eq!(take_complete(&mut buf), "é");
        assert!(buf.is_empty());
        let mut bad = vec![b'a', 0xFF, b'b', 0xE6, 0x97];
        assert_eq!(take_complete(&mut bad), "a\u{FFFD}b");
        assert_eq!(bad, vec![0xE6, 0x97]);
    }

    /// A small byte-level BPE vocabulary: specials, the 256 byte chars, and merges that make
    /// the pre-tokenizer's choices visible (digits, spaces, contractions, newlines).
    fn toy_vocab(pre: &str) -> Vocabulary {
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"]
            .map(String::from)
            .to_vec();
        let mut token_types = vec![3, 3, 3, 4];
        tokens.extend(
            ByteLevelTable::new()
                .byte_chars()
                .iter()
                .map(|c| c.to_string()),
        );
        token_types.resize(tokens.len(), 1);
        let merges: Vec<String> = [
            "Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ w", "o r", "Ġw or", "l d",
            "Ġwor ld", "1 2", "12 3", "Ġ 1", "Ġ Ġ", "ĠĠ Ġ", "Ċ Ċ", "' s", "' t", "l l", "' ll",
            "Ġ Ċ", "ç ½", "Ã ©", "Ġ c", "a f", "Ġc af", "ð Ł",
        ]
        .iter()
        .map(|m| m.to_string())
        .collect();
        for m in &merges {
            let (a, b) = m.split_once(' ').unwrap();
            let merged = format!("{a}{b}");
            if !tokens.contains(&merged) {
                tokens.push(merged);
                token_types.push(1);
            }
        }
        Vocabulary {
            model: "gpt2".into(),
            pre: pre.into(),
            tokens,
            token_types,
            merges,
            bos_id: Some(1),
            eos_id: Some(2),
            unknown_id: None,
            padding_id: None,
            add_bos: false,
            chat_template: None,
        }
    }

    /// Hugging Face's own pipeline for the same vocabulary: the reference for `Encoder`.
    fn reference(vocab: &Vocabulary) -> tokenizers::Tokenizer {
        use tokenizers::pre_tokenizers::PreTokenizerWrapper;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        use tokenizers::pre_tokenizers::digits::Digits;
        use tokenizers::pre_tokenizers::sequence::Sequence;
        use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
        use tokenizers::{AddedToken, SplitDelimiterBehavior};

        let byte_level = |re| PreTokenizerWrapper::from(ByteLevel::new(false, true, re));
        let split = |pattern: &str| {
            let split = Split::new(
                SplitPattern::Regex(pattern.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .unwrap();
            PreTokenizerWrapper::from(Sequence::new(vec![split.into(), byte_level(false)]))
        };
        let pre = match vocab.pre.as_str() {
            "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level(true)]).into(),
            "gpt2" => byte_level(true),
            "llama3" => split(LLAMA3_PATTERN),
            "qwen2" => split(QWEN2_PATTERN),
            other => panic!("{other}"),
        };
        let ids: Vocab = vocab
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = vocab
            .merges
            .iter()
            .map(|m| {
                let (a, b) = m.split_once(' ').unwrap();
                (a.to_owned(), b.to_owned())
            })
            .collect();
        let model = BPE::builder()
            .vocab_and_merges(ids, merges)
            .build()
            .unwrap();
        let mut tk = tokenizers::Tokenizer::new(model);
        tk.with_pre_tokenizer(Some(pre));
        let added = |ty: i32, special: bool| -> Vec<AddedToken> {
            (0..vocab.tokens.len())
                .filter(|&i| vocab.token_types[i] == ty)
                .map(|i| AddedToken::from(vocab.tokens[i].clone(), special).normalized(false))
                .collect()
        };
        tk.add_special_tokens(&added(TYPE_CONTROL, true));
        tk.add_tokens(&added(TYPE_USER_DEFINED, false));
        tk
    }

    #[test]
    fn encoder_matches_the_tokenizers_pipeline() {
        let texts = [
            "",
            "x",
            "The world, the weather: 123 and 12345 and 9x9.",
            "<|im_start|>user\nHi there<|im_end|>\n<|endoftext|>",
            "<tool>call(1)<tool><|im_end|><|im_end",
            "I'm sure you'll see they've DON'T won't it's",
            "   leading spaces, trailing   ",
            "tabs\t\tand\r\nnew lines\n\n\nend\n",
            "naïve café 日本語 🙂 Ελληνικά",
            "numbers ½ ² Ⅻ ٣ and 1,234.56%",
            "fn main() {\n    let x = vec![1, 2, 3];\n}\n",
            " \u{a0}\u{3000} mixed\u{2009}spaces",
        ];
        for pre in ["smollm", "gpt2", "llama3", "qwen2"] {
            let vocab = toy_vocab(pre);
            let token_type = |id: usize| vocab.token_types[id];
            let encoder = Encoder::new(&vocab, token_type).unwrap();
            let mut reference = reference(&vocab);
            for text in texts {
                for parse_special in [true, false] {
                    reference.set_encode_special_tokens(!parse_special);
                    let expected = reference
                        .encode_fast(text, false)
                        .unwrap()
                        .get_ids()
                        .to_vec();
                    // Twice: the second run comes from the piece cache.
                    for _ in 0..2 {
                        let mut ids = Vec::new();
                        encoder.encode(text, parse_special, &mut ids).unwrap();
                        assert_eq!(
                            ids, expected,
                            "pre {pre}, parse_special {parse_special}, {text:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_pre_tokenizers_and_models_are_refused() {
        let err = |v: Vocabulary| match BpeTokenizer::new(v) {
            Err(TokenizerError::InvalidVocabulary(m)) => m,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(err(toy_vocab("nope")).contains("unsupported pre-tokenizer \"nope\""));
        let mut v = toy_vocab("smollm");
        v.model = "llama".into();
        assert!(err(v).contains("unsupported tokenizer model \"llama\""));
    }
}
