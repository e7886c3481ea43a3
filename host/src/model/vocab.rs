//! The tokenizer description stored in a model file.
//!
//! The host never tokenizes itself: it reads the vocabulary from the GGUF metadata and hands it
//! to a tokenizer plugin (`crate::plugins::tokenizer`), which owns every tokenization rule.

use std::fmt;

use super::gguf::{GgufError, Metadata};

/// A model's vocabulary as its file describes it; mirrors the WIT record
/// `textnlp:plugin/tokenizer.vocabulary`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Vocabulary {
    /// `tokenizer.ggml.model`, e.g. "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`, the pre-tokenizer name, e.g. "smollm"; "default" when absent.
    pub pre: String,
    /// Token strings, indexed by id.
    pub tokens: Vec<String>,
    /// ggml token types per id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte); empty when the file has none.
    pub token_types: Vec<i32>,
    /// BPE merges as "left right"; empty when the file has none.
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unknown_id: Option<u32>,
    pub padding_id: Option<u32>,
    /// Whether a BOS token is prepended when encoding with special tokens.
    pub add_bos: bool,
    /// The Jinja chat template stored with the model, if any.
    pub chat_template: Option<String>,
}

impl fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vocabulary")
            .field("model", &self.model)
            .field("pre", &self.pre)
            .field("tokens", &self.tokens.len())
            .field("token_types", &self.token_types.len())
            .field("merges", &self.merges.len())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("unknown_id", &self.unknown_id)
            .field("padding_id", &self.padding_id)
            .field("add_bos", &self.add_bos)
            .field(
                "chat_template",
                &self.chat_template.as_ref().map(String::len),
            )
            .finish()
    }
}

/// Why a vocabulary could not be read from a model file.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    /// A key is missing or has the wrong type.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The keys are there but do not describe a usable vocabulary.
    #[error("invalid tokenizer metadata: {0}")]
    Invalid(String),
}

/// Reads the `tokenizer.*` keys of a GGUF file. Required: `tokenizer.ggml.model` and
/// `tokenizer.ggml.tokens`; everything else is optional. Special ids outside the vocabulary are
/// dropped with a warning (as llama.cpp does).
pub fn vocabulary_from_gguf(meta: &Metadata) -> Result<Vocabulary, VocabError> {
    let model = meta.get_str("tokenizer.ggml.model")?.to_owned();
    let tokens = meta.get_str_array("tokenizer.ggml.tokens")?.to_vec();
    if tokens.is_empty() {
        return Err(VocabError::Invalid("tokenizer.ggml.tokens is empty".into()));
    }
    if u32::try_from(tokens.len()).is_err() {
        return Err(VocabError::Invalid(format!("{} tokens", tokens.len())));
    }
    let token_types = meta
        .opt_i32_array("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    if !token_types.is_empty() && token_types.len() != tokens.len() {
        return Err(VocabError::Invalid(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            token_types.len(),
            tokens.len()
        )));
    }
    let special = |key: &str| -> Result<Option<u32>, VocabError> {
        let Some(value) = meta.get(key) else {
            return Ok(None);
        };
        let Some(id) = value.as_integer() else {
            return Err(VocabError::Invalid(format!(
                "{key} is a {}, not an integer",
                value.type_name()
            )));
        };
        match u32::try_from(id) {
            Ok(id) if (id as usize) < tokens.len() => Ok(Some(id)),
            _ => {
                tracing::warn!("{key} = {id} is outside the vocabulary; ignoring it");
                Ok(None)
            }
        }
    };
    Ok(Vocabulary {
        pre: meta
            .opt_str("tokenizer.ggml.pre")?
            .unwrap_or("default")
            .to_owned(),
        merges: meta
            .opt_str_array("tokenizer.ggml.merges")?
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
        bos_id: special("tokenizer.ggml.bos_token_id")?,
        eos_id: special("tokenizer.ggml.eos_token_id")?,
        unknown_id: special("tokenizer.ggml.unknown_token_id")?,
        padding_id: special("tokenizer.ggml.padding_token_id")?,
        add_bos: meta
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(false),
        chat_template: meta.opt_str("tokenizer.chat_template")?.map(str::to_owned),
        model,
        tokens,
        token_types,
    })
}

#[cfg(test)]
mod tests {
    use super::super::gguf::{Array, Value};
    use super::*;

    fn meta(pairs: Vec<(&str, Value)>) -> Metadata {
        let mut meta = Metadata::with_capacity(pairs.len());
        for (key, value) in pairs {
            meta.insert(key.to_owned(), value).expect("unique keys");
        }
        meta
    }

    fn strings(items: &[&str]) -> Value {
        Value::Array(Array::String(items.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn reads_every_tokenizer_key() {
        let meta = meta(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String("smollm".into())),
            (
                "tokenizer.ggml.tokens",
                strings(&["<s>", "</s>", "a", "b", "ab"]),
            ),
            (
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(vec![3, 3, 1, 1, 1])),
            ),
            ("tokenizer.ggml.merges", strings(&["a b"])),
            ("tokenizer.ggml.bos_token_id", Value::U32(0)),
            ("tokenizer.ggml.eos_token_id", Value::U64(1)),
            ("tokenizer.ggml.unknown_token_id", Value::I32(2)),
            ("tokenizer.ggml.padding_token_id", Value::U32(1)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ("tokenizer.chat_template", Value::String("{{ x }}".into())),
        ]);
        let v = vocabulary_from_gguf(&meta).expect("vocabulary");
        assert_eq!(v.model, "gpt2");
        assert_eq!(v.pre, "smollm");
        assert_eq!(v.tokens.len(), 5);
        assert_eq!(v.token_types, vec![3, 3, 1, 1, 1]);
        assert_eq!(v.merges, vec!["a b".to_string()]);
        assert_eq!(
            (v.bos_id, v.eos_id, v.unknown_id, v.padding_id),
            (Some(0), Some(1), Some(2), Some(1))
        );
        assert!(v.add_bos);
        assert_eq!(v.chat_template.as_deref(), Some("{{ x }}"));
    }

    #[test]
    fn optional_keys_may_be_absent_and_bad_ids_are_dropped() {
        let meta = meta(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", strings(&["a", "b"])),
            ("tokenizer.ggml.eos_token_id", Value::U32(7)),
            ("tokenizer.ggml.padding_token_id", Value::I32(-1)),
        ]);
        let v = vocabulary_from_gguf(&meta).expect("vocabulary");
        assert_eq!(v.pre, "default");
        assert!(v.token_types.is_empty() && v.merges.is_empty());
        assert_eq!((v.bos_id, v.eos_id, v.padding_id), (None, None, None));
        assert!(!v.add_bos);
        assert_eq!(v.chat_template, None);
    }

    #[test]
    fn missing_or_inconsistent_keys_are_errors() {
        let no_tokens = meta(vec![("tokenizer.ggml.model", Value::String("gpt2".into()))]);
        assert!(matches!(
            vocabulary_from_gguf(&no_tokens),
            Err(VocabError::Gguf(_))
        ));
        let bad_types = meta(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", strings(&["a", "b"])),
            (
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(vec![1])),
            ),
        ]);
        assert!(matches!(
            vocabulary_from_gguf(&bad_types),
            Err(VocabError::Invalid(_))
        ));
        let wrong_type = meta(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", strings(&["a"])),
            ("tokenizer.ggml.bos_token_id", Value::String("0".into())),
        ]);
        assert!(matches!(
            vocabulary_from_gguf(&wrong_type),
            Err(VocabError::Invalid(_))
        ));
    }
}
